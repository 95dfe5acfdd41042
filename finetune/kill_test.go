package finetune_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killAfterStep is where the killed run stops: past the step_000010
// checkpoint, with two metric lines beyond it that resuming must drop.
const killAfterStep = 12

// TestKillAndResume kills a training process with SIGKILL partway (no
// chance to clean up) and resumes it: the loss sequence must equal that of
// an uninterrupted run with the same seed. The kill point does not depend
// on the machine's speed: SSMAX_TEST_PAUSE_AT_STEP (cmd/train.go) makes the
// run wait, once step 12 is complete, until it is killed.
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ssmax and trains three small runs")
	}
	base := t.TempDir()
	bin := ssmaxBinary(t)
	args := func(out string, extra ...string) []string {
		return append([]string{"--quiet", "pretrain", "--arch", "../configs/models/gpt2-rope-tiny.yaml",
			"--data", goText(), "--glob", "*.go", "--out", out, "--steps", "40", "--batch-size", "2", "--seq-len", "64",
			"--lr", "3e-3", "--warmup", "2", "--eval-every", "5", "--eval-batches", "2", "--save-every", "5", "--keep", "2"}, extra...)
	}
	whole, killed := filepath.Join(base, "whole"), filepath.Join(base, "killed")
	if out, err := exec.Command(bin, args(whole)...).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, args(killed)...)
	cmd.Env = append(os.Environ(), "SSMAX_TEST_PAUSE_AT_STEP="+itoa(killAfterStep))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The test's deadline, not the run's speed, bounds the wait.
	timer := time.AfterFunc(5*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	paused, sc := false, bufio.NewScanner(stderr)
	var lines []string
	for !paused && sc.Scan() {
		lines = append(lines, sc.Text())
		paused = strings.HasPrefix(sc.Text(), "paused after step "+itoa(killAfterStep))
	}
	if !paused {
		cmd.Wait()
		t.Fatalf("the run ended without pausing at step %d:\n%s", killAfterStep, strings.Join(lines, "\n"))
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the run was not killed: %v", err)
	}
	if n := metricLines(filepath.Join(killed, "metrics.jsonl")); n != killAfterStep {
		t.Fatalf("killed at step %d with %d metric lines", killAfterStep, n)
	}
	if _, err := os.Stat(filepath.Join(killed, "step_000010", "DONE")); err != nil {
		t.Fatalf("no complete checkpoint before the kill: %v", err)
	}
	if _, err := os.Stat(filepath.Join(killed, "final")); err == nil {
		t.Fatal("the killed run wrote final/")
	}
	if out, err := exec.Command(bin, args(killed, "--resume")...).CombinedOutput(); err != nil {
		t.Fatalf("resumed run: %v\n%s", err, out)
	}
	sameLosses(t, readMetrics(t, whole), readMetrics(t, killed))
}

func itoa(i int) string { return strconv.Itoa(i) }

func metricLines(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			n++
		}
	}
	return n
}
