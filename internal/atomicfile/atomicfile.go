// Package atomicfile writes files and directories so that readers see them
// complete or not at all: everything is written under a temporary sibling
// name, fsynced, renamed into place, and the parent directory is fsynced so
// the rename survives a crash. Every writer of ssmax (checkpoints, token
// files, trainer state, reports, run configurations) goes through it.
//
// New files get mode 0666 and new directories 0777, both filtered by the
// process umask as the kernel applies it: the permissions `touch` and
// `mkdir` would give.
//
// Errors are *Error values that name the output by its final path, never
// the temporary sibling's, and the cause once: "write DIR/config.json: no
// space left on device" (see Cause and Relocate for writers built on top).
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// tempName returns a fresh hidden sibling name for path:
// dir/.base.tmp-<random>.
func tempName(path string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	dir, base := filepath.Split(filepath.Clean(path))
	return filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(b[:]))
}

// File is a file being written under a temporary name; Commit puts it in
// place, Abort discards it.
type File struct {
	*os.File
	path string
	done bool
}

// Create starts writing path: it creates a temporary sibling file (mode
// 0666 filtered by the umask). Write to it, then call Commit, or Abort on
// failure (Abort after Commit does nothing, so `defer f.Abort()` is safe).
func Create(path string) (*File, error) {
	for range 8 {
		f, err := os.OpenFile(tempName(path), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, wrap(path, err)
		}
		return &File{File: f, path: path}, nil
	}
	return nil, &Error{Path: path, Err: errors.New("cannot create a temporary file beside it")}
}

// Path is the final path the file is committed to.
func (f *File) Path() string { return f.path }

// Commit fsyncs and closes the temporary file, renames it to the final
// path (replacing a file there) and fsyncs the directory.
func (f *File) Commit() error {
	if f.done {
		return &Error{Path: f.path, Err: errors.New("already committed or aborted")}
	}
	f.done = true
	tmp := f.Name()
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, f.path)
	}
	if err != nil {
		os.Remove(tmp)
		return wrap(f.path, err)
	}
	return wrap(f.path, syncDir(filepath.Dir(f.path)))
}

// Abort closes and removes the temporary file. It does nothing after
// Commit or a previous Abort.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	os.Remove(f.Name())
}

// Write creates path atomically with the content fill writes.
func Write(path string, fill func(f *os.File) error) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := fill(f.File); err != nil {
		return wrap(path, err)
	}
	return f.Commit()
}

// WriteFile creates path atomically holding data.
func WriteFile(path string, data []byte) error {
	return Write(path, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// SyncDir fsyncs a directory so that entries created or renamed in it are
// durable. File systems that cannot sync a directory (EINVAL) are not an
// error.
func SyncDir(dir string) error {
	return wrap(dir, syncDir(dir))
}

// syncDir is SyncDir with the cause alone as its error.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", Cause(err))
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !ignorableSyncError(err) {
		return fmt.Errorf("sync directory: %w", Cause(err))
	}
	return nil
}

// MkdirTemp creates an empty temporary sibling directory of dst (mode 0777
// filtered by the umask, as mkdir gives), creating dst's parent directories
// as needed. Fill it, then CommitDir it to dst or RemoveAll it.
func MkdirTemp(dst string) (string, error) {
	parent := filepath.Dir(filepath.Clean(dst))
	if err := os.MkdirAll(parent, 0o777); err != nil {
		return "", &Error{Path: dst, Err: err} // "mkdir PARENT: ..."
	}
	for range 8 {
		tmp := tempName(dst)
		err := os.Mkdir(tmp, 0o777)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", wrap(dst, err)
		}
		return tmp, nil
	}
	return "", &Error{Path: dst, Err: errors.New("cannot create a temporary directory beside it")}
}

// ErrExists reports a destination that exists when replacing was not asked
// for.
var ErrExists = errors.New("exists")

// CommitDir fsyncs the finished directory tmp and renames it to dst, then
// fsyncs the parent. An existing dst is an error wrapping ErrExists unless
// replace is set; then it is moved aside first and removed only after the
// rename worked, so a failure leaves the old dst in place. Files inside
// tmp must already be synced (File.Commit and safetensors writers do).
func CommitDir(tmp, dst string, replace bool) error {
	if err := syncDir(tmp); err != nil {
		return &Error{Path: dst, Err: err}
	}
	parent := filepath.Dir(filepath.Clean(dst))
	if _, err := os.Lstat(dst); err == nil {
		if !replace {
			return &Error{Path: dst, Err: ErrExists}
		}
		old := tmp + ".old"
		if err := os.Rename(dst, old); err != nil {
			return &Error{Path: dst, Err: fmt.Errorf("move the existing one aside: %w", Cause(err))}
		}
		if err := os.Rename(tmp, dst); err != nil {
			os.Rename(old, dst)
			return &Error{Path: dst, Err: fmt.Errorf("rename into place: %w", Cause(err))}
		}
		if err := syncDir(parent); err != nil {
			return &Error{Path: dst, Err: err}
		}
		if err := os.RemoveAll(old); err != nil {
			return &Error{Path: dst, Err: fmt.Errorf("remove the replaced directory: %w", Cause(err))}
		}
		return nil
	}
	if err := os.Rename(tmp, dst); err != nil {
		return &Error{Path: dst, Err: fmt.Errorf("rename into place: %w", Cause(err))}
	}
	if err := syncDir(parent); err != nil {
		return &Error{Path: dst, Err: err}
	}
	return nil
}
