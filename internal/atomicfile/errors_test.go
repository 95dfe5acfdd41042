package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestErrorsNameTheFinalPathOnce(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.json")
	err := Write(p, func(f *os.File) error {
		// What a failing write of the temporary file returns.
		return &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	})
	if want := "write " + p + ": no space left on device"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Error("errors.Is(err, ENOSPC) is false")
	}
	_, err = Create(filepath.Join(dir, "missing", "b"))
	if want := "write " + filepath.Join(dir, "missing", "b") + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
	if got := entries(t, dir); len(got) != 0 {
		t.Errorf("left behind: %v", got)
	}
}

func TestRelocate(t *testing.T) {
	tmp, dst := filepath.Join("x", ".out.tmp-0123456789ab"), filepath.Join("x", "out")
	err := &Error{Path: filepath.Join(tmp, "model.safetensors"), Err: syscall.ENOSPC}
	if got, want := Relocate(err, tmp, dst).Error(), "write "+filepath.Join(dst, "model.safetensors")+": no space left on device"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := Relocate(&Error{Path: tmp, Err: syscall.EIO}, tmp, dst).Error(), "write "+dst+": input/output error"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, e := range []error{
		&Error{Path: filepath.Join("y", "z"), Err: syscall.EIO},
		fmt.Errorf("wrapped: %w", err),
		errors.New("plain"),
	} {
		if Relocate(e, tmp, dst) != e {
			t.Errorf("%v changed", e)
		}
	}
}

func TestIsTemporary(t *testing.T) {
	tests := []struct {
		name, base string
		want       bool
	}{
		{".out.tmp-0123456789ab", "out", true},
		{".out.tmp-0123456789ab.old", "out", true},
		{".out.tmp-0123456789ab", "", true},
		{".step_000010.partial.tmp-abcdefabcdef", "", true},
		{".out.tmp-0123456789ab", "other", false},
		{"out.tmp-0123456789ab", "out", false},
		{".out.tmp-0123456789a", "out", false},
		{".out.tmp-0123456789aB", "out", false},
		{".tmp-0123456789ab", "", false},
		{".ssmax.lock", "", false},
		{"out", "out", false},
	}
	for _, tc := range tests {
		if got := IsTemporary(tc.name, tc.base); got != tc.want {
			t.Errorf("IsTemporary(%q, %q) = %v", tc.name, tc.base, got)
		}
	}
	// The names this package makes are recognised.
	if name := filepath.Base(tempName("/a/out")); !IsTemporary(name, "out") {
		t.Errorf("IsTemporary(%q, out) is false", name)
	}
}

func TestRemoveTemporaries(t *testing.T) {
	parent := t.TempDir()
	dst := filepath.Join(parent, "out")
	keep := []string{"out", ".other.tmp-0123456789ab", "notes"}
	for _, name := range append([]string{".out.tmp-0123456789ab", ".out.tmp-ba9876543210.old"}, keep...) {
		if err := os.MkdirAll(filepath.Join(parent, name, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveTemporaries(dst); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, parent); fmt.Sprint(got) != fmt.Sprint([]string{".other.tmp-0123456789ab", "notes", "out"}) {
		t.Errorf("left %v", got)
	}
}
