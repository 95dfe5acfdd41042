package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteFileReplacesAndLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.json")
	for _, content := range []string{"first", "second"} {
		if err := WriteFile(p, []byte(content)); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != content {
			t.Fatalf("read %q, %v; want %q", b, err, content)
		}
	}
	if got := entries(t, dir); len(got) != 1 || got[0] != "a.json" {
		t.Errorf("directory holds %v", got)
	}
}

func TestFailedWriteKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a")
	if err := WriteFile(p, []byte("old")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(p, func(f *os.File) error {
		f.WriteString("half")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want boom", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("file now %q", b)
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("temporary file left: %v", got)
	}
}

func TestAbortAfterCommitIsHarmless(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(filepath.Join(dir, "x"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("x")
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Abort()
	if err := f.Commit(); err == nil {
		t.Error("second Commit succeeded")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "x")); string(b) != "x" {
		t.Errorf("content %q", b)
	}
}

func TestCommitDir(t *testing.T) {
	tests := []struct {
		name     string
		existing bool
		replace  bool
		wantErr  error
		want     string
	}{
		{"new", false, false, nil, "new"},
		{"exists", true, false, ErrExists, "old"},
		{"replace", true, true, nil, "new"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "out")
			if tc.existing {
				os.Mkdir(dst, 0o755)
				os.WriteFile(filepath.Join(dst, "f"), []byte("old"), 0o644)
			}
			tmp, err := MkdirTemp(dst)
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteFile(filepath.Join(tmp, "f"), []byte("new")); err != nil {
				t.Fatal(err)
			}
			err = CommitDir(tmp, dst, tc.replace)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				os.RemoveAll(tmp)
			}
			if b, _ := os.ReadFile(filepath.Join(dst, "f")); string(b) != tc.want {
				t.Errorf("dst holds %q, want %q", b, tc.want)
			}
			if got := entries(t, parent); len(got) != 1 || got[0] != "out" {
				t.Errorf("parent holds %v", got)
			}
		})
	}
}
