// Package outlock lets one ssmax run at a time write an output: a training
// or evaluation --out directory, or a convert destination.
//
// A run takes an exclusive lock on a lock file before it writes anything
// and holds it until it ends. A second run asking for the same output fails
// at once with a *BusyError naming the output and the holder's process id,
// which the holder writes into the lock file once it has the lock. The lock
// is flock(2) on Unix: the kernel drops it when the holder exits, however
// it exits, so a lock left by a killed run never blocks the next one.
//
// Lock files: Dir locks an existing or new directory with the file
// .ssmax.lock inside it; Path locks a path that may not exist yet (a
// checkpoint convert is about to create) with the hidden sibling
// .NAME.ssmax.lock in its parent, so the lock never ends up inside the
// output. Release removes the lock file while still holding the lock, and
// Lock re-checks after locking that the file it locked is still the one at
// the path (it retries otherwise), so removing it is not racy: two runs
// never hold locks on two different files for one output. A run killed
// with SIGKILL leaves its lock file behind: a hidden file of a few bytes,
// unlocked, that the next run locks and removes.
//
// On platforms without flock (Windows, AIX, Plan 9, wasm) locking does
// nothing: Lock always succeeds and concurrent runs are not detected there.
package outlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// FileName is the lock file Dir creates in the directory it locks.
const FileName = ".ssmax.lock"

// ErrBusy is wrapped by the error of a lock held by another run.
var ErrBusy = errors.New("in use by another ssmax run")

// BusyError reports an output that another run is writing.
type BusyError struct {
	// Output is the directory or checkpoint path as the caller named it.
	Output string
	// PID is the holder's process id, 0 when it could not be read.
	PID int
}

func (e *BusyError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("%s is being written by another ssmax run (pid %d)", e.Output, e.PID)
	}
	return fmt.Sprintf("%s is being written by another ssmax run (pid unknown)", e.Output)
}

// Is makes errors.Is(err, ErrBusy) true for a *BusyError.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// Lock is a held lock; Release it when the run ends.
type Lock struct {
	f    *os.File
	path string
}

// Dir creates dir if needed (mode 0777 less the umask, as mkdir gives) and
// locks it for writing with the file dir/.ssmax.lock. It fails with a
// *BusyError when another run holds the lock.
func Dir(dir string) (*Lock, error) {
	for range 8 {
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return nil, err
		}
		l, err := lock(filepath.Join(dir, FileName), dir)
		if errors.Is(err, os.ErrNotExist) {
			continue // dir removed under us (an evaluation cleaning up): make it again
		}
		return l, err
	}
	return nil, fmt.Errorf("lock %s: the directory keeps disappearing", dir)
}

// Path locks p, which need not exist, for writing with the lock file
// .NAME.ssmax.lock beside it (NAME its base name), creating p's parent
// directories as needed. It fails with a *BusyError when another run holds
// the lock.
func Path(p string) (*Lock, error) {
	clean := filepath.Clean(p)
	dir, base := filepath.Split(clean)
	if dir == "" {
		dir = "."
	}
	if base == "" || base == "." || base == ".." || clean == dir {
		return nil, fmt.Errorf("lock %s: not a path with a name", p)
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, err
	}
	return lock(filepath.Join(dir, "."+base+".ssmax.lock"), p)
}

// File is the lock file's path.
func (l *Lock) File() string { return l.path }

// Release removes the lock file and releases the lock. It does nothing on a
// nil Lock or after a first Release.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	var err error
	if locking {
		// Remove while holding the lock: a run that opened this file
		// meanwhile gets the lock once we close it, sees that the path no
		// longer names its file and starts again with a fresh one.
		err = ignoreNotExist(os.Remove(l.path))
		if cerr := l.f.Close(); err == nil {
			err = cerr
		}
	} else {
		// No lock to keep; an open file cannot always be removed (Windows).
		err = l.f.Close()
		if rerr := ignoreNotExist(os.Remove(l.path)); err == nil {
			err = rerr
		}
	}
	l.f = nil
	return err
}

func ignoreNotExist(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// lock takes the lock file path for output.
func lock(path, output string) (*Lock, error) {
	for range 16 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", output, err)
		}
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", output, err)
		}
		if !ok {
			pid := readPID(f)
			f.Close()
			return nil, &BusyError{Output: output, PID: pid}
		}
		// The holder we waited for may have removed the file before we
		// locked it: then we hold a lock on an unlinked file, and the path
		// names another file or none. Start again.
		st, err1 := f.Stat()
		cur, err2 := os.Stat(path)
		if err1 != nil || err2 != nil || !os.SameFile(st, cur) {
			f.Close()
			continue
		}
		if err := writePID(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", output, err)
		}
		return &Lock{f: f, path: path}, nil
	}
	return nil, fmt.Errorf("lock %s: the lock file %s keeps being replaced", output, path)
}

// writePID replaces the content of the locked file f with this process's id.
func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// readPID reads the holder's process id from f, waiting briefly for a
// holder that has just taken the lock to write it; 0 if none shows up.
func readPID(f *os.File) int {
	for i := 0; ; i++ {
		var b [32]byte
		n, _ := f.ReadAt(b[:], 0)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n]))); err == nil && pid > 0 {
			return pid
		}
		if i == 20 {
			return 0
		}
		time.Sleep(5 * time.Millisecond)
	}
}
