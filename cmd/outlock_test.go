//go:build unix && !aix

package cmd

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/internal/outlock"
)

// TestOneRunPerOutput: while another run holds the lock of an output
// (taken here, so the holder's pid is this process's), convert, finetune,
// pretrain and eval on that output exit 1 with one line naming it and the
// pid, having written nothing; once it is released they run, and leave no
// lock file behind.
func TestOneRunPerOutput(t *testing.T) {
	corpus := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(corpus, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog\n", 40)), 0o644); err != nil {
		t.Fatal(err)
	}
	llama := filepath.Join(fixtures, "llama-tiny-ssmax-bias")
	train := []string{"--tokenizer", "bytes", "--data", corpus, "--steps", "1", "--batch-size", "1", "--seq-len", "16",
		"--val-fraction", "0", "--eval-every", "0"}
	commands := []struct {
		name string
		dir  bool // the lock is in the output directory, not beside it
		args func(out string) []string
	}{
		{"convert", false, func(out string) []string {
			return []string{"-q", "convert", filepath.Join(fixtures, "llama-tiny"), out}
		}},
		{"finetune", true, func(out string) []string {
			return append([]string{"-q", "finetune", "--model", llama, "--out", out}, train...)
		}},
		{"pretrain", true, func(out string) []string {
			return append([]string{"-q", "pretrain", "--arch", "../configs/models/gpt2-rope-tiny.yaml", "--out", out}, train...)
		}},
		{"eval", true, func(out string) []string {
			return []string{"-q", "eval", "attention", "--model", llama, "--tokenizer", "bytes",
				"--haystack", filepath.Join(runtime.GOROOT(), "src", "fmt"), "--glob", "*.go", "--length", "100", "--out", out}
		}},
	}
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			parent := t.TempDir()
			out := filepath.Join(parent, "out")
			var lock *outlock.Lock
			var err error
			if c.dir {
				lock, err = outlock.Dir(out)
			} else {
				lock, err = outlock.Path(out)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer lock.Release()
			stdout, errs, code := run(t, c.args(out)...)
			want := fmt.Sprintf("ssmax: %s is being written by another ssmax run (pid %d)\n", out, os.Getpid())
			if code != 1 || errs != want || stdout != "" {
				t.Fatalf("with the lock held: exit %d, stderr %q, stdout %q; want exit 1, stderr %q", code, errs, stdout, want)
			}
			if names := list(t, parent); c.dir && fmt.Sprint(names) != "[out out/.ssmax.lock]" ||
				!c.dir && fmt.Sprint(names) != "[.out.ssmax.lock]" {
				t.Errorf("the refused run changed the output: %v", names)
			}
			lock.Release()
			if _, errs, code := run(t, c.args(out)...); code != 0 {
				t.Fatalf("after release: exit %d: %s", code, errs)
			}
			for _, name := range list(t, parent) {
				if strings.HasSuffix(name, ".lock") {
					t.Errorf("lock file %s left behind", name)
				}
			}
		})
	}
}

// list returns the paths under dir, relative to it, in lexical order.
func list(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}
