package finetune_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// ssmaxBinary builds ssmax once for the package's tests and returns its
// path.
func ssmaxBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "finetune-test-"); buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(buildDir, "ssmax"), "..").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "ssmax")
}

// TestSecondRunOnOneOutput: a pretraining run (a process, paused after
// step 7 with a complete step_000005) holds its --out; a second run on the
// same --out exits 1 at once with one line naming the directory and the
// first's pid, and the first's output is unharmed (no metrics truncated,
// nothing rewritten). After the first is SIGKILLed, its lock file is
// stale but does not block: a resumed run proceeds to the end and removes
// it.
func TestSecondRunOnOneOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ssmax and trains a small run")
	}
	if runtime.GOOS == "windows" || runtime.GOOS == "aix" {
		t.Skip("no output locks on " + runtime.GOOS)
	}
	bin := ssmaxBinary(t)
	out := filepath.Join(t.TempDir(), "run")
	args := func(extra ...string) []string {
		return append([]string{"--quiet", "pretrain", "--arch", "../configs/models/gpt2-rope-tiny.yaml",
			"--data", goText(), "--glob", "*.go", "--out", out, "--steps", "10", "--batch-size", "2", "--seq-len", "64",
			"--lr", "3e-3", "--warmup", "2", "--eval-every", "5", "--eval-batches", "2", "--save-every", "5"}, extra...)
	}
	first := exec.Command(bin, args()...)
	first.Env = append(os.Environ(), "SSMAX_TEST_PAUSE_AT_STEP=7")
	stderr, err := first.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(5*time.Minute, func() { first.Process.Kill() })
	defer timer.Stop()
	defer first.Process.Kill()
	sc := bufio.NewScanner(stderr)
	paused := false
	for !paused && sc.Scan() {
		paused = strings.HasPrefix(sc.Text(), "paused after step 7")
	}
	if !paused {
		first.Wait()
		t.Fatal("the first run ended without pausing")
	}
	before := snapshot(t, out)

	second := exec.Command(bin, args()...)
	var errb bytes.Buffer
	second.Stderr = &errb
	start := time.Now()
	err = second.Run()
	took := time.Since(start)
	want := fmt.Sprintf("ssmax: %s is being written by another ssmax run (pid %d)\n", out, first.Process.Pid)
	if err == nil || second.ProcessState.ExitCode() != 1 || errb.String() != want {
		t.Fatalf("second run: %v, stderr %q; want exit 1 and %q", err, errb.String(), want)
	}
	t.Logf("the second run was refused in %v", took.Round(time.Millisecond))
	if after := snapshot(t, out); after != before {
		t.Errorf("the refused run changed the first's output:\n%s\nwas\n%s", after, before)
	}

	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	if _, err := os.Stat(filepath.Join(out, ".ssmax.lock")); err != nil {
		t.Fatalf("no stale lock file after SIGKILL: %v", err)
	}
	if b, err := exec.Command(bin, args("--resume")...).CombinedOutput(); err != nil {
		t.Fatalf("run after the first was killed: %v\n%s", err, b)
	}
	if n := metricLines(filepath.Join(out, "metrics.jsonl")); n != 10 {
		t.Errorf("%d metric lines after resuming, want 10", n)
	}
	if _, err := os.Stat(filepath.Join(out, "final", "config.json")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(out, ".ssmax.lock")); err == nil {
		t.Error("the finished run left its lock file")
	}
}

// snapshot describes every file under dir: path, size, modification time
// and, for metrics.jsonl and run_config.json, content.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "%s %d %s\n", rel, st.Size(), st.ModTime().Format(time.RFC3339Nano))
		if rel == "metrics.jsonl" || rel == "run_config.json" {
			c, _ := os.ReadFile(p)
			b.Write(c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
