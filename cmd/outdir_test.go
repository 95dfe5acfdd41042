//go:build unix

package cmd

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// TestOutDirsFollowUmask: the --out directories finetune and eval create
// (and their missing parents) get what mkdir gives, 0777 less the umask.
func TestOutDirsFollowUmask(t *testing.T) {
	corpus := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(corpus, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog\n", 40)), 0o644); err != nil {
		t.Fatal(err)
	}
	llama := filepath.Join(fixtures, "llama-tiny-ssmax-bias")
	commands := []struct {
		name string
		args func(out string) []string
	}{
		{"finetune", func(out string) []string {
			return []string{"-q", "finetune", "--model", llama, "--tokenizer", "bytes", "--data", corpus, "--out", out,
				"--steps", "1", "--batch-size", "1", "--seq-len", "16", "--val-fraction", "0", "--eval-every", "0"}
		}},
		{"eval", func(out string) []string {
			return []string{"-q", "eval", "attention", "--model", llama, "--tokenizer", "bytes",
				"--haystack", filepath.Join(runtime.GOROOT(), "src", "fmt"), "--glob", "*.go", "--length", "100", "--out", out}
		}},
	}
	for _, umask := range []int{0o002, 0o027} {
		for _, cmd := range commands {
			t.Run(fmt.Sprintf("%s/umask %#o", cmd.name, umask), func(t *testing.T) {
				old := syscall.Umask(umask)
				defer syscall.Umask(old)
				out := filepath.Join(t.TempDir(), "new", "out")
				if _, errs, code := run(t, cmd.args(out)...); code != 0 {
					t.Fatalf("exit %d: %s", code, errs)
				}
				want := os.FileMode(0o777 &^ umask)
				for _, d := range []string{out, filepath.Dir(out)} {
					st, err := os.Stat(d)
					if err != nil {
						t.Fatal(err)
					}
					if st.Mode().Perm() != want {
						t.Errorf("%s: mode %v, want %v", d, st.Mode().Perm(), want)
					}
				}
			})
		}
	}
}
