package outlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestDirLockIsExclusive(t *testing.T) {
	if !locking {
		t.Skip("no file locking on this platform")
	}
	dir := filepath.Join(t.TempDir(), "run")
	l, err := Dir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, FileName)); strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Errorf("lock file holds %q, want our pid %d", b, os.Getpid())
	}
	// flock locks belong to an open file description: a second open in
	// this process is refused like another process would be.
	_, err = Dir(dir)
	var busy *BusyError
	if !errors.As(err, &busy) || !errors.Is(err, ErrBusy) {
		t.Fatalf("second lock: %v, want a BusyError", err)
	}
	want := fmt.Sprintf("%s is being written by another ssmax run (pid %d)", dir, os.Getpid())
	if err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Errorf("Release left %v in the directory", es)
	}
	l2, err := Dir(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Release()
}

func TestPathLockIsASibling(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "a", "b")
	dst := filepath.Join(parent, "ckpt")
	l, err := Path(dst + "/")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(parent, ".ckpt.ssmax.lock"); l.File() != want {
		t.Errorf("lock file %s, want %s", l.File(), want)
	}
	if _, err := os.Lstat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Path created the destination: %v", err)
	}
	if locking {
		if _, err := Path(dst); !errors.Is(err, ErrBusy) || !strings.HasPrefix(err.Error(), dst+" is being written") {
			t.Errorf("second lock: %v", err)
		}
	}
	l.Release()
	if es, _ := os.ReadDir(parent); len(es) != 0 {
		t.Errorf("Release left %v beside the destination", es)
	}
	for _, bad := range []string{"/", ".", ".."} {
		if l, err := Path(bad); err == nil {
			l.Release()
			t.Errorf("Path(%q) succeeded", bad)
		}
	}
}

// TestRemovalIsNotRacy has many goroutines take, hold and release (which
// removes the lock file) one output's lock at once: never two holders.
func TestRemovalIsNotRacy(t *testing.T) {
	if !locking {
		t.Skip("no file locking on this platform")
	}
	dir := t.TempDir()
	var holders, taken atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				l, err := Dir(dir)
				if errors.Is(err, ErrBusy) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if n := holders.Add(1); n > 1 {
					t.Errorf("%d runs hold the lock at once", n)
				}
				taken.Add(1)
				holders.Add(-1)
				if err := l.Release(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if taken.Load() == 0 {
		t.Error("nobody ever got the lock")
	}
}
