//go:build unix

package eval

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// setUmask sets the process umask and returns a function restoring it.
func setUmask(mask int) func() {
	old := syscall.Umask(mask)
	return func() { syscall.Umask(old) }
}

// TestSaveCreatesOutAsMkdir: Save creates --out with 0777 less the umask,
// as mkdir does, and returns the files it wrote.
func TestSaveCreatesOutAsMkdir(t *testing.T) {
	defer setUmask(0o002)()
	dir := filepath.Join(t.TempDir(), "new", "out")
	files, err := (&LengthReport{Models: sampleLength()}).Save(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"length.json", "length.csv", "length.png"} {
		if i >= len(files) || files[i] != filepath.Join(dir, name) {
			t.Fatalf("files %v, want %s first", files, name)
		}
		if _, err := os.Stat(files[i]); err != nil {
			t.Error(err)
		}
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o775 {
			t.Errorf("%s: mode %v, want 0775 under umask 002", d, st.Mode().Perm())
		}
	}
}
