package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Error is the error of a write that failed: the file or directory being
// written, by its final path (never the temporary sibling's), and the
// cause, each named once: "write DIR/model.safetensors: tensor "x": no
// space left on device".
type Error struct {
	Path string
	Err  error
}

func (e *Error) Error() string { return "write " + e.Path + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// wrap returns err as an *Error for path, with the operating system's
// path and operation names removed from the cause (see Cause); an *Error
// already is one and is returned unchanged.
func wrap(path string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Path: path, Err: Cause(err)}
}

// Cause strips what the os package adds around a system call's error (the
// temporary path and the operation of an *fs.PathError, *os.LinkError or
// *os.SyscallError): a writer that names its file once reports "no space
// left on device", not "write .x.tmp-1a2b: no space left on device". An
// error that is none of these is returned as is. errors.Is keeps working
// on the result (syscall.ENOSPC, fs.ErrExist, ...).
func Cause(err error) error {
	switch e := err.(type) {
	case *fs.PathError:
		return e.Err
	case *os.LinkError:
		return e.Err
	case *os.SyscallError:
		return e.Err
	}
	return err
}

// Relocate returns err with its path moved from under the directory from
// (a temporary directory being filled) to the same name under to (the
// directory it will be renamed to), so that a writer filling a temporary
// directory reports the final paths. Only an err that is itself an *Error
// (as the writers return them) is changed: the message of an error
// wrapping one is already made.
func Relocate(err error, from, to string) error {
	e, ok := err.(*Error)
	if !ok {
		return err
	}
	rel, rerr := filepath.Rel(from, e.Path)
	if rerr != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return err
	}
	return &Error{Path: filepath.Join(to, rel), Err: e.Err}
}

// IsTemporary reports whether name is a temporary sibling this package
// makes for an output named base: ".BASE.tmp-" and 12 hex digits, with
// ".old" appended for a directory moved aside by CommitDir. With base ""
// it reports whether name is the temporary of any output.
func IsTemporary(name, base string) bool {
	rest, ok := strings.CutPrefix(name, ".")
	if !ok {
		return false
	}
	rest = strings.TrimSuffix(rest, ".old")
	i := strings.LastIndex(rest, ".tmp-")
	if i < 1 || base != "" && rest[:i] != base {
		return false
	}
	rest = rest[i+len(".tmp-"):]
	if len(rest) != 12 {
		return false
	}
	for _, c := range rest {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// RemoveTemporaries removes the temporary siblings of dst (see
// IsTemporary) that a writer killed before it could clean up left in
// dst's parent. Only call it holding the lock of dst (package outlock):
// otherwise they may belong to a writer still at work.
func RemoveTemporaries(dst string) error {
	clean := filepath.Clean(dst)
	dir, base := filepath.Dir(clean), filepath.Base(clean)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range entries {
		if IsTemporary(e.Name(), base) {
			errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
		}
	}
	return errors.Join(errs...)
}
