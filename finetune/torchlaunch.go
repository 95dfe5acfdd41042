package finetune

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ssmax/ssmax/internal/atomicfile"
	"github.com/ssmax/ssmax/python"
)

// torchEventPrefix starts the lines rank 0 prints for ssmax on stdout: a
// JSON event follows (python/ssmax_torch/train.py, emit).
const torchEventPrefix = "@ssmax "

// torchEvent is one line of the workers' progress protocol.
type torchEvent struct {
	Event   string   `json:"event"`
	Message string   `json:"message"`
	First   int      `json:"first"`
	Total   int      `json:"total"`
	Info    string   `json:"info"`
	Metrics *Metrics `json:"metrics"`
	ValLoss *float64 `json:"val_loss"`
	Steps   int      `json:"steps"`
	Final   string   `json:"final"`
	Loss    float64  `json:"last_loss"`
}

// minPython and minTorch are the oldest versions ssmax_torch supports.
var (
	minPython = [2]int{3, 9}
	minTorch  = [2]int{1, 13}
)

// installHint says how to get PyTorch, in one line.
const installHint = "install PyTorch for it (Debian/Ubuntu: apt-get install python3-torch; elsewhere: python3 -m pip install torch) or give --python a Python that has it"

// findPython returns the interpreter to run and checks that it imports
// torch: the given one, else the one torchrun on PATH runs, else python3.
func findPython(given string) (string, error) {
	py := given
	if py == "" {
		if tr, err := exec.LookPath("torchrun"); err == nil {
			py = shebangPython(tr)
		}
	}
	if py == "" {
		py = "python3"
	}
	path, err := exec.LookPath(py)
	if err != nil {
		return "", fmt.Errorf("--python %s: not found: %s", py, installHint)
	}
	out, err := exec.Command(path, "-c", "import sys, torch; print(sys.version_info[0], sys.version_info[1], torch.__version__)").Output()
	if err != nil {
		return "", fmt.Errorf("%s cannot import torch: %s", path, installHint)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return "", fmt.Errorf("%s: unexpected answer %q to a version query", path, out)
	}
	if v := [2]int{atoi(f[0]), atoi(f[1])}; older(v, minPython) {
		return "", fmt.Errorf("%s is Python %d.%d: ssmax_torch needs Python %d.%d or newer", path, v[0], v[1], minPython[0], minPython[1])
	}
	if v := versionPair(f[2]); older(v, minTorch) {
		return "", fmt.Errorf("%s has PyTorch %s: ssmax_torch needs %d.%d or newer", path, f[2], minTorch[0], minTorch[1])
	}
	return path, nil
}

// shebangPython returns the interpreter of a script's #! line ("" if none).
func shebangPython(script string) string {
	f, err := os.Open(script)
	if err != nil {
		return ""
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	fields := strings.Fields(strings.TrimPrefix(line, "#!"))
	if !strings.HasPrefix(line, "#!") || len(fields) == 0 {
		return ""
	}
	if filepath.Base(fields[0]) == "env" && len(fields) > 1 {
		return fields[1]
	}
	if strings.Contains(filepath.Base(fields[0]), "python") {
		return fields[0]
	}
	return ""
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// versionPair reads "major.minor" from a version string like 1.13.0a0+git.
func versionPair(v string) [2]int {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return [2]int{atoi(v), 0}
	}
	minor := parts[1]
	for i, r := range minor {
		if r < '0' || r > '9' {
			minor = minor[:i]
			break
		}
	}
	return [2]int{atoi(parts[0]), atoi(minor)}
}

func older(v, min [2]int) bool { return v[0] < min[0] || (v[0] == min[0] && v[1] < min[1]) }

// writePythonPackage writes the embedded ssmax_torch package into dir.
func writePythonPackage(dir string) error {
	return fs.WalkDir(python.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := python.Files.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o777); err != nil {
			return err
		}
		return atomicfile.WriteFile(dst, b)
	})
}

// torchArgs is the command line of the launcher (torch.distributed.run,
// through ssmax_torch.launch) for this node.
func torchArgs(node string, o TorchOptions) ([]string, error) {
	addr, port := o.MasterAddr, o.MasterPort
	if addr == "" {
		addr = "127.0.0.1"
	}
	if port == 0 {
		if o.NNodes > 1 {
			port = 29500 // torchrun's default
		} else {
			p, err := freePort()
			if err != nil {
				return nil, err
			}
			port = p
		}
	}
	return []string{"-m", "ssmax_torch.launch",
		"--nnodes", strconv.Itoa(o.NNodes), "--node_rank", strconv.Itoa(o.NodeRank),
		"--nproc_per_node", strconv.Itoa(o.NProcPerNode),
		"--master_addr", addr, "--master_port", strconv.Itoa(port),
		"--module", "ssmax_torch.train", "--run", filepath.Join(node, "run.json")}, nil
}

// launchTorch runs the workers and turns their events into hooks calls.
func (t *trainer) launchTorch(ctx context.Context, py, node string, o TorchOptions) (*Result, error) {
	args, err := torchArgs(node, o)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(py, args...)
	env := os.Environ()
	pp := filepath.Join(node, "python")
	if old := os.Getenv("PYTHONPATH"); old != "" {
		pp += string(os.PathListSeparator) + old
	}
	env = append(env, "PYTHONPATH="+pp, "PYTHONUNBUFFERED=1")
	if os.Getenv("OMP_NUM_THREADS") == "" {
		// torchrun would set 1 per process; the node's cores shared out
		// serve CPU runs better (GPU runs barely use them).
		env = append(env, "OMP_NUM_THREADS="+strconv.Itoa(max(1, runtime.NumCPU()/o.NProcPerNode)))
	}
	cmd.Env = env
	cmd.SysProcAttr = torchProcAttr()
	var output io.Writer = io.Discard
	if o.Output != nil {
		output = o.Output
	}
	tail := &tailWriter{max: 20}
	cmd.Stderr = io.MultiWriter(output, tail)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", py, err)
	}
	// Ctrl-C or a cancelled context stops the launcher's process group
	// (the launcher stops its workers); a killed ssmax takes the launcher
	// with it (torchProcAttr), whose workers follow (train.py).
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			stopTorch(cmd.Process, false)
			select {
			case <-stopped:
			case <-time.After(30 * time.Second):
				stopTorch(cmd.Process, true)
			}
		case <-stopped:
		}
	}()
	res, workerErr := t.readEvents(stdout, output)
	io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	close(stopped)
	if cerr := ctx.Err(); cerr != nil {
		return nil, cerr
	}
	if workerErr != nil {
		return nil, workerErr
	}
	if err != nil {
		return nil, fmt.Errorf("torch run failed (%v)%s", err, tail.last())
	}
	if res.Final == "" {
		return nil, fmt.Errorf("torch run ended without writing final/%s", tail.last())
	}
	return res, nil
}

// readEvents reads the workers' stdout until it closes: events go to the
// hooks, other lines to output. It returns the result of the done event,
// and the first error event as an error.
func (t *trainer) readEvents(r io.Reader, output io.Writer) (*Result, error) {
	res := &Result{}
	var firstErr error
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		js, ok := strings.CutPrefix(line, torchEventPrefix)
		if !ok {
			fmt.Fprintln(output, line)
			continue
		}
		var ev torchEvent
		if err := json.Unmarshal([]byte(js), &ev); err != nil {
			fmt.Fprintln(output, line)
			continue
		}
		switch ev.Event {
		case "log":
			t.log("%s", ev.Message)
		case "first_val":
			res.FirstValLoss = ev.ValLoss
			if ev.ValLoss != nil {
				t.log("validation loss before training: %.4f", *ev.ValLoss)
			}
		case "start":
			if t.hooks.Start != nil {
				t.hooks.Start(ev.First, ev.Total, ev.Info)
			}
		case "step":
			if ev.Metrics == nil {
				continue
			}
			if ev.Metrics.ValLoss != nil {
				v := *ev.Metrics.ValLoss
				res.ValLoss = &v
			}
			res.LastLoss = ev.Metrics.Loss
			if t.hooks.Step != nil {
				t.hooks.Step(*ev.Metrics, t.total)
			}
		case "done":
			res.Steps, res.Final, res.LastLoss = ev.Steps, ev.Final, ev.Loss
		case "error":
			if firstErr == nil {
				firstErr = errors.New(ev.Message)
			}
		}
	}
	return res, firstErr
}

// tailWriter keeps the last lines written to it.
type tailWriter struct {
	mu    sync.Mutex
	max   int
	lines []string
	part  string
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.part + string(p)
	parts := strings.Split(s, "\n")
	w.part = parts[len(parts)-1]
	for _, l := range parts[:len(parts)-1] {
		if strings.TrimSpace(l) == "" {
			continue
		}
		w.lines = append(w.lines, l)
		if len(w.lines) > w.max {
			w.lines = w.lines[1:]
		}
	}
	return len(p), nil
}

// last returns ": <the last non-empty line>", or "".
func (w *tailWriter) last() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.part != "" {
		return ": " + strings.TrimSpace(w.part)
	}
	if len(w.lines) == 0 {
		return ""
	}
	return ": " + strings.TrimSpace(w.lines[len(w.lines)-1])
}
