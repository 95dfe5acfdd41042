package finetune_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKillAndResume kills a training process with SIGKILL partway (no
// chance to clean up) and resumes it: the loss sequence must equal that of
// an uninterrupted run with the same seed.
func TestKillAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ssmax and trains three small runs")
	}
	base := t.TempDir()
	bin := filepath.Join(base, "ssmax")
	build := exec.Command("go", "build", "-o", bin, "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
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
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if n := metricLines(filepath.Join(killed, "metrics.jsonl")); n >= 12 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the run made no progress")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(killed, "final")); err == nil {
		t.Skip("the run finished before it could be killed")
	}
	if out, err := exec.Command(bin, args(killed, "--resume")...).CombinedOutput(); err != nil {
		t.Fatalf("resumed run: %v\n%s", err, out)
	}
	sameLosses(t, readMetrics(t, whole), readMetrics(t, killed))
}

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
