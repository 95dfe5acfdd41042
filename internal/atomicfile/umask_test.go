//go:build unix

package atomicfile

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestPermissionsFollowUmask checks that files and directories get what
// touch and mkdir would give, not os.CreateTemp's 0600 or os.MkdirTemp's
// 0700.
func TestPermissionsFollowUmask(t *testing.T) {
	for _, umask := range []int{0o022, 0o002, 0o077} {
		old := syscall.Umask(umask)
		dir := t.TempDir()
		dst := filepath.Join(dir, "out")
		tmp, err := MkdirTemp(dst)
		if err == nil {
			err = WriteFile(filepath.Join(tmp, "f"), []byte("x"))
		}
		if err == nil {
			err = CommitDir(tmp, dst, false)
		}
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := os.Stat(dst); st.Mode().Perm() != os.FileMode(0o777&^umask) {
			t.Errorf("umask %03o: directory mode %v, want %v", umask, st.Mode().Perm(), os.FileMode(0o777&^umask))
		}
		if st, _ := os.Stat(filepath.Join(dst, "f")); st.Mode().Perm() != os.FileMode(0o666&^umask) {
			t.Errorf("umask %03o: file mode %v, want %v", umask, st.Mode().Perm(), os.FileMode(0o666&^umask))
		}
	}
}
