package safetensors

import (
	"errors"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// TestWriteFileOnFullDisk writes a file that does not fit (testFullAt
// makes the file system "full" partway, with the errors the os package
// gives) by each way a tensor reaches the file: through the buffer
// (FromBytes), the file itself (Convert) and a kernel copy (FromFile). The
// error must name the final path (not the temporary one), the tensor and
// the cause once each, and nothing may be left behind.
func TestWriteFileOnFullDisk(t *testing.T) {
	srcDir := t.TempDir()
	src := filepath.Join(srcDir, "src.safetensors")
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	if err := WriteFile(src, nil, []WriteTensor{FromBytes("big", F16, []int64{int64(len(big) / 2)}, big)}); err != nil {
		t.Fatal(err)
	}
	f := mustOpen(t, src)
	defer f.Close()
	fromFile, err := FromFile(f, "big")
	if err != nil {
		t.Fatal(err)
	}
	converted, err := Convert(f, "big", BF16)
	if err != nil {
		t.Fatal(err)
	}
	small := FromBytes("small", U8, []int64{16}, make([]byte, 16))
	tests := []struct {
		name   string
		tensor WriteTensor
	}{
		{"buffered", FromBytes("big", F16, []int64{int64(len(big) / 2)}, big)},
		{"direct", converted},
		{"kernel copy", fromFile},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			testFullAt = 2 << 20
			defer func() { testFullAt = 0 }()
			dir := t.TempDir()
			path := filepath.Join(dir, "model-00001-of-00002.safetensors")
			err := WriteFile(path, nil, []WriteTensor{small, tc.tensor})
			want := "write " + path + `: tensor "big": no space left on device`
			if err == nil || err.Error() != want {
				t.Fatalf("error\n  %v\nwant\n  %s", err, want)
			}
			if !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("errors.Is(err, ENOSPC) is false")
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("left behind: %v", names)
			}
		})
	}
	t.Run("header", func(t *testing.T) {
		testFullAt = 4
		defer func() { testFullAt = 0 }()
		dir := t.TempDir()
		path := filepath.Join(dir, "model.safetensors")
		err := WriteFile(path, nil, []WriteTensor{small})
		if want := "write " + path + `: tensor "small": no space left on device`; err == nil || err.Error() != want {
			t.Fatalf("error %v, want %s", err, want)
		}
		if names := dirNames(t, dir); len(names) != 0 {
			t.Errorf("left behind: %v", names)
		}
	})
}

// TestWriteFileSourceError: a source that fails to read is named as such,
// the tensor once.
func TestWriteFileSourceError(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.safetensors")
	if err := WriteFile(src, nil, []WriteTensor{FromBytes("w", F32, []int64{4}, make([]byte, 16))}); err != nil {
		t.Fatal(err)
	}
	f := mustOpen(t, src)
	wt, err := Convert(f, "w", BF16)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(dir, "out.safetensors")
	err = WriteFile(out, nil, []WriteTensor{wt})
	want := "write " + out + `: tensor "w": convert from ` + src + ": " + ErrClosed.Error()
	if err == nil || err.Error() != want {
		t.Fatalf("error\n  %v\nwant\n  %s", err, want)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"src.safetensors"}) {
		t.Errorf("directory holds %v", names)
	}
}

// TestWriteFileLarge writes tensors larger than the write-back and kernel
// copy chunks by each path (buffered, direct, kernel copy) and reads them
// back.
func TestWriteFileLarge(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 3*copyChunk+4098)
	for i := range data {
		data[i] = byte(i*131 + i>>11)
	}
	shape := []int64{int64(len(data) / 2)}
	src := filepath.Join(dir, "src.safetensors")
	if err := WriteFile(src, nil, []WriteTensor{FromBytes("a", BF16, shape, data)}); err != nil {
		t.Fatal(err)
	}
	f := mustOpen(t, src)
	defer f.Close()
	copied, err := FromFile(f, "a")
	if err != nil {
		t.Fatal(err)
	}
	copied.Name = "copied"
	converted, err := Convert(f, "a", F16)
	if err != nil {
		t.Fatal(err)
	}
	converted.Name = "converted"
	dst := filepath.Join(dir, "dst.safetensors")
	if err := WriteFile(dst, nil, []WriteTensor{FromBytes("small", U8, []int64{3}, []byte{1, 2, 3}), copied, converted,
		FromBytes("buffered", BF16, shape, data)}); err != nil {
		t.Fatal(err)
	}
	g := mustOpen(t, dst)
	defer g.Close()
	want := make([]byte, len(data))
	convertHalf(BF16, F16, data, want)
	for name, w := range map[string][]byte{"copied": data, "buffered": data, "converted": want} {
		if got, err := g.Bytes(name); err != nil || !slices.Equal(got, w) {
			t.Errorf("%s: read back differs (%v)", name, err)
		}
	}
}
