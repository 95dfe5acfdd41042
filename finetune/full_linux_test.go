//go:build linux

package finetune_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/ssmax/ssmax/finetune"
)

// TestSaveOnFullDisk trains with --out on a 1 MB tmpfs, too small for the
// first checkpoint: the run stops with one line naming the checkpoint file
// by its final path (not the hidden directory it is staged in), the tensor
// and the cause, and leaves no partial checkpoint, temporary file or lock
// behind. Needs the right to mount (root); skipped otherwise.
func TestSaveOnFullDisk(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v", err)
	}
	defer syscall.Unmount(mnt, 0)
	out := filepath.Join(mnt, "run")
	c := tinyPretrain(out)
	c.Steps, c.SaveEvery, c.EvalEvery, c.ValFraction = 3, 1, 0, 0
	_, err := finetune.Run(context.Background(), c, finetune.Hooks{})
	if err == nil {
		t.Fatal("the run fitted in 1 MB")
	}
	want := regexp.MustCompile(`^write ` + regexp.QuoteMeta(out) + `/step_000001/[a-z_/]+\.safetensors: tensor "[^"]+": no space left on device$`)
	if !want.MatchString(err.Error()) {
		t.Errorf("error\n  %v\ndoes not match\n  %s", err, want)
	}
	es, _ := os.ReadDir(out)
	for _, e := range es {
		if strings.HasPrefix(e.Name(), ".") || strings.HasPrefix(e.Name(), "step_") {
			t.Errorf("left in --out: %s", e.Name())
		}
	}
}
