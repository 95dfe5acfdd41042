//go:build linux

package convert_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/convert"
	"github.com/ssmax/ssmax/internal/testckpt"
	"github.com/ssmax/ssmax/safetensors"
)

// smallFS mounts a tmpfs of size bytes and returns its path, or skips the
// test when this process may not mount (not root, no CAP_SYS_ADMIN).
func smallFS(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	return dir
}

// TestConvertOnFullDisk converts a two-shard checkpoint of about 13 MB onto
// a 6 MB file system: the conversion fails with one line naming the final
// shard path (not the temporary directory's), the tensor and the cause,
// once each, and nothing is left on the file system: no destination, no
// temporary directory, no lock file.
func TestConvertOnFullDisk(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	cfg := testckpt.Clone(testckpt.Configs[arch.Llama])
	cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"] = 256, 512, 4, 2048
	testckpt.MustWrite(t, src, cfg, testckpt.Options{DType: safetensors.F32, ShardSize: 8 << 20})
	mnt := smallFS(t, "6m")
	dst := filepath.Join(mnt, "dst")
	_, err := convert.Run(context.Background(), convert.Options{Src: src, Dst: dst, Variant: "ssmax", Init: convert.InitMatch})
	if err == nil {
		t.Fatal("the conversion fitted in 6 MB")
	}
	want := regexp.MustCompile(`^write ` + regexp.QuoteMeta(dst) + `/model-0000[12]-of-00002\.safetensors: tensor "[^"]+": no space left on device$`)
	if !want.MatchString(err.Error()) {
		t.Errorf("error\n  %v\ndoes not match\n  %s", err, want)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Error("errors.Is(err, ENOSPC) is false")
	}
	if es, _ := os.ReadDir(mnt); len(es) != 0 {
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		t.Errorf("left on the file system: %v", names)
	}
}
