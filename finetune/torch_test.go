package finetune_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ssmax/ssmax/finetune"
	"github.com/ssmax/ssmax/safetensors"
)

// torchPython returns a Python that imports torch, or skips the test: the
// torch engine's tests need PyTorch (CI installs Debian's python3-torch).
func torchPython(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if err := exec.Command(py, "-c", "import torch").Run(); err == nil {
			return py
		}
	}
	t.Skip("no Python with torch (apt-get install python3-torch)")
	return ""
}

// torchConfig is a small pretraining run that goes through every part of
// a training step: a preset created by Go, gradient accumulation, a batch
// of 3 rows split over 2 processes (2 + 1), validation, checkpoints with
// pruning, and the switch to SSMax (bias variant, own learning rate)
// halfway: new parameters, a new optimizer group, another checkpoint layout.
func torchConfig(out string) finetune.Config {
	c := finetune.Defaults()
	c.Arch = "../configs/models/gpt2-rope-tiny.yaml"
	c.Data, c.Glob, c.Out = goText(), "*.go", out
	c.Steps, c.BatchSize, c.SeqLen, c.GradAccum = 6, 3, 64, 2
	c.LR, c.MinLR, c.Warmup, c.SSMaxLR = 3e-3, 3e-4, 2, 1e-2
	c.EvalEvery, c.EvalBatches, c.SaveEvery, c.Keep = 3, 2, 2, 2
	c.SwitchToSSMaxAt, c.Variant, c.Init = 3, "bias", "const"
	s, b := 0.3, 0.05
	c.S, c.B = &s, &b
	return c
}

// torchArgs is torchConfig as a command line.
func torchArgs(out string, extra ...string) []string {
	return append([]string{"--quiet", "pretrain", "--arch", "../configs/models/gpt2-rope-tiny.yaml",
		"--data", goText(), "--glob", "*.go", "--out", out, "--steps", "6", "--batch-size", "3", "--seq-len", "64",
		"--grad-accum", "2", "--lr", "3e-3", "--min-lr", "3e-4", "--warmup", "2", "--ssmax-lr", "1e-2",
		"--eval-every", "3", "--eval-batches", "2", "--save-every", "2", "--keep", "2",
		"--switch-to-ssmax-at", "3", "--variant", "bias", "--init", "const", "--s", "0.3", "--b", "0.05"}, extra...)
}

// near reports whether a and b agree within rel (relative).
func near(a, b, rel float64) bool { return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b)) }

// sameRun compares two runs' metrics within rel: losses, gradient norms,
// learning rates, validation losses and mean s.
func sameRun(t *testing.T, what string, a, b []record, rel float64) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d metric lines vs %d", what, len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		ok := x.Step == y.Step && near(x.Loss, y.Loss, rel) && near(x.GradNorm, y.GradNorm, rel) && x.LR == y.LR &&
			(x.ValLoss == nil) == (y.ValLoss == nil) && len(x.SMean) == len(y.SMean)
		if ok && x.ValLoss != nil {
			ok = near(*x.ValLoss, *y.ValLoss, rel)
		}
		for j := range x.SMean {
			ok = ok && near(x.SMean[j], y.SMean[j], rel)
		}
		if !ok {
			t.Fatalf("%s: step %d differs beyond %g:\n%+v\n%+v", what, x.Step, rel, x, y)
		}
	}
}

// TestTorchEngine trains the same run with spago in this process and with
// PyTorch (2 gloo processes): the per-step losses agree (1e-3 relative);
// final/ is laid out as spago lays it out and scores the same with `ssmax
// score`; its step_000004 resumes in the spago engine. Then a torch run killed with SIGKILL after step 5 (past its
// step_000004 checkpoint, one metrics line beyond it) leaves no process
// behind and, resumed, gives the uninterrupted run's losses.
func TestTorchEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three 2-process PyTorch runs")
	}
	py := torchPython(t)
	base := t.TempDir()
	spago, torch, killed := filepath.Join(base, "spago"), filepath.Join(base, "torch"), filepath.Join(base, "killed")
	if _, err := finetune.Run(context.Background(), torchConfig(spago), finetune.Hooks{}); err != nil {
		t.Fatal(err)
	}
	o := finetune.DefaultTorchOptions()
	o.NProcPerNode, o.Python = 2, py
	var stderr bytes.Buffer
	o.Output = &stderr
	start := time.Now()
	res, err := finetune.RunTorch(context.Background(), torchConfig(torch), o, finetune.Hooks{})
	if err != nil {
		t.Fatalf("torch run: %v\n%s", err, stderr.String())
	}
	t.Logf("torch run: %d steps in %s", res.Steps, time.Since(start).Round(time.Second))
	if res.Final != filepath.Join(torch, "final") || res.Steps != 6 {
		t.Fatalf("result %+v", res)
	}
	want := readMetrics(t, spago)
	got := readMetrics(t, torch)
	sameRun(t, "torch vs spago", want, got, 1e-3)
	if got[5].SMean == nil || got[1].SMean != nil {
		t.Fatalf("s_mean before and after the switch: %v, %v", got[1].SMean, got[5].SMean)
	}
	sameLayout(t, filepath.Join(spago, "final"), filepath.Join(torch, "final"))
	for _, dir := range []string{"step_000002", "step_000004"} {
		if _, err := os.Stat(filepath.Join(torch, dir, "DONE")); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		sameLayout(t, filepath.Join(spago, dir), filepath.Join(torch, dir))
	}

	// A torch step directory resumes in the spago engine.
	cross := filepath.Join(base, "cross")
	if err := os.CopyFS(cross, os.DirFS(torch)); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(cross, "final"))
	cfg := torchConfig(cross)
	cfg.Resume = true
	if _, err := finetune.Run(context.Background(), cfg, finetune.Hooks{}); err != nil {
		t.Fatalf("spago resuming a torch run: %v", err)
	}
	sameRun(t, "spago resuming torch's step_000004 vs spago", want, readMetrics(t, cross), 1e-3)

	bin := filepath.Join(base, "ssmax")
	if out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	scoreSame(t, bin, filepath.Join(spago, "final"), filepath.Join(torch, "final"))

	args := torchArgs(killed, "--engine", "torch", "--nproc-per-node", "2", "--python", py)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "SSMAX_TEST_PAUSE_AT_STEP=5")
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(5*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	paused, sc := false, bufio.NewScanner(pipe)
	var lines []string
	for !paused && sc.Scan() {
		lines = append(lines, sc.Text())
		paused = strings.HasPrefix(sc.Text(), "paused after step 5")
	}
	if !paused {
		cmd.Wait()
		t.Fatalf("the run ended without pausing at step 5:\n%s", strings.Join(lines, "\n"))
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	noProcessesLeft(t, killed)
	if n := metricLines(filepath.Join(killed, "metrics.jsonl")); n != 5 {
		t.Fatalf("killed after step 5 with %d metric lines", n)
	}
	if _, err := os.Stat(filepath.Join(killed, "step_000004", "DONE")); err != nil {
		t.Fatalf("no complete checkpoint before the kill: %v", err)
	}
	if _, err := os.Stat(filepath.Join(killed, "final")); err == nil {
		t.Fatal("the killed run wrote final/")
	}
	if out, err := exec.Command(bin, append(args, "--resume")...).CombinedOutput(); err != nil {
		t.Fatalf("resumed run: %v\n%s", err, out)
	}
	sameRun(t, "resumed torch vs uninterrupted torch", got, readMetrics(t, killed), 1e-6)
}

// sameLayout checks that two checkpoint directories hold the same files,
// config.json byte for byte, and weight files with identical headers (so
// the same tensors, order, dtypes, shapes and metadata); the trainer
// states hold the same tensors.
func sameLayout(t *testing.T, want, got string) {
	t.Helper()
	list := func(dir string) []string {
		var out []string
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(dir, p)
				out = append(out, rel)
			}
			return nil
		})
		return out
	}
	if a, b := list(want), list(got); strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("%s holds %v, %s holds %v", want, a, got, b)
	}
	for _, f := range list(want) {
		switch {
		case f == "config.json" || f == "DONE":
			a, _ := os.ReadFile(filepath.Join(want, f))
			b, _ := os.ReadFile(filepath.Join(got, f))
			if !bytes.Equal(a, b) {
				t.Errorf("%s differs:\n%s\n%s", f, a, b)
			}
		case strings.HasSuffix(f, ".safetensors"):
			if a, b := header(t, filepath.Join(want, f)), header(t, filepath.Join(got, f)); a != b {
				t.Errorf("%s: headers differ:\n%s\n%s", f, a, b)
			}
		}
	}
}

func header(t *testing.T, path string) string {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	for _, m := range f.Metadata() {
		fmt.Fprintf(&b, "%s=%s ", m.Key, m.Value)
	}
	for _, ti := range f.Tensors() {
		fmt.Fprintf(&b, "%s:%s%v@%d+%d ", ti.Name, ti.DType, ti.Shape, ti.Offset, ti.Size)
	}
	return b.String()
}

// scoreSame scores one text with both checkpoints through `ssmax score`.
func scoreSame(t *testing.T, bin, a, b string) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(goText(), "print.go"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range src[:200] {
		ids = append(ids, strconv.Itoa(int(c)))
	}
	tokens := filepath.Join(t.TempDir(), "tokens.txt")
	if err := os.WriteFile(tokens, []byte(strings.Join(ids, " ")), 0o644); err != nil {
		t.Fatal(err)
	}
	score := func(model string) float64 {
		out, err := exec.Command(bin, "score", "--model", model, "--tokens", tokens, "--json").Output()
		if err != nil {
			t.Fatalf("score %s: %v", model, err)
		}
		var s struct {
			MeanLoss float64 `json:"mean_loss"`
		}
		if err := json.Unmarshal(out, &s); err != nil {
			t.Fatal(err)
		}
		return s.MeanLoss
	}
	if x, y := score(a), score(b); !near(x, y, 1e-3) {
		t.Fatalf("ssmax score: spago's final/ %.6f, torch's %.6f", x, y)
	}
}

// noProcessesLeft waits until no process mentions dir on its command line
// (the launcher and workers of a killed run die with it); any left are
// killed and fail the test.
func noProcessesLeft(t *testing.T, dir string) {
	t.Helper()
	find := func() []int {
		var pids []int
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err == nil && bytes.Contains(b, []byte(dir)) {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		pids := find()
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				if p, err := os.FindProcess(pid); err == nil {
					p.Kill()
				}
			}
			t.Fatalf("processes %v outlived the killed run", pids)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
