//go:build unix

package convert_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/convert"
	"github.com/ssmax/ssmax/model"
)

// TestOutputPermissionsFollowUmask: convert's DST and a saved model get the
// permissions mkdir and touch give under the umask (DST used to be 0700,
// the mode of the temporary directory it was renamed from).
func TestOutputPermissionsFollowUmask(t *testing.T) {
	for _, umask := range []int{0o022, 0o002} {
		base := t.TempDir()
		dst := filepath.Join(base, "converted")
		saved := filepath.Join(base, "saved")
		old := syscall.Umask(umask)
		_, err := convert.Run(context.Background(), convert.Options{Src: filepath.Join(fixtures, "llama-tiny"), Dst: dst, Variant: attnscale.SSMax, Init: convert.InitMatch})
		if err == nil {
			var m *model.Model
			if m, err = model.Open(dst, "", model.Options{}); err == nil {
				err = m.Save(saved, model.SaveOptions{})
			}
		}
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		for _, dir := range []string{dst, saved} {
			st, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := st.Mode().Perm(), os.FileMode(0o777&^umask); got != want {
				t.Errorf("umask %03o: %s has mode %v, want %v", umask, dir, got, want)
			}
			for _, f := range []string{"config.json", "model.safetensors"} {
				st, err := os.Stat(filepath.Join(dir, f))
				if err != nil {
					t.Fatal(err)
				}
				if got, want := st.Mode().Perm(), os.FileMode(0o666&^umask); got != want {
					t.Errorf("umask %03o: %s/%s has mode %v, want %v", umask, dir, f, got, want)
				}
			}
		}
	}
}
