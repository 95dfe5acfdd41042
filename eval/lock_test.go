package eval

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/ssmax/ssmax/internal/outlock"
)

// TestLockOut: the lock of a report directory excludes a second
// evaluation (where file locking exists); releasing it removes the lock
// file, and the directory too when LockOut made it and nothing was
// written (a failed evaluation leaves no empty --out).
func TestLockOut(t *testing.T) {
	parent := t.TempDir()
	out := filepath.Join(parent, "a", "out")
	release, err := LockOut(out)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && runtime.GOOS != "aix" {
		if _, err := LockOut(out); !errors.Is(err, outlock.ErrBusy) {
			t.Errorf("second LockOut: %v, want busy", err)
		}
	}
	release()
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the empty --out LockOut made is still there: %v", err)
	}

	release, err = LockOut(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "length.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	release()
	es, err := os.ReadDir(out)
	if err != nil || len(es) != 1 || es[0].Name() != "length.json" {
		t.Errorf("--out holds %v (%v), want only the report", es, err)
	}
}
