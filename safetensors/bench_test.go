package safetensors

import (
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// benchFile writes a synthetic ~64 MB file of 16 F32 tensors of 4 MiB.
func benchFile(b *testing.B) string {
	b.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	var ws []WriteTensor
	for i := range 16 {
		data := make([]byte, 4<<20)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		ws = append(ws, FromBytes(fmt.Sprintf("layers.%d.weight", i), F32, []int64{1024, 1024}, data))
	}
	path := filepath.Join(b.TempDir(), "src.safetensors")
	if err := WriteFile(path, Metadata{{"format", "pt"}}, ws); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkWriteFileCopy copies a ~64 MB file tensor by tensor with
// WriteFile and FromFile (the path of `ssmax convert` when no dtype changes).
// "kernel" is the default (copy_file_range / sendfile on Linux); "userspace"
// hides the destination file from CopyTensor to force a buffered copy.
func BenchmarkWriteFileCopy(b *testing.B) {
	src := benchFile(b)
	f, err := Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	out := filepath.Join(b.TempDir(), "out.safetensors")
	for _, mode := range []string{"kernel", "userspace"} {
		b.Run(mode, func(b *testing.B) {
			ws := fileTensors(b, f)
			if mode == "userspace" {
				for i := range ws {
					name := ws[i].Name
					ws[i].Write = func(w io.Writer) error {
						_, err := f.CopyTensor(struct{ io.Writer }{w}, name)
						return err
					}
				}
			}
			b.SetBytes(f.Size())
			b.ResetTimer()
			for b.Loop() {
				if err := WriteFile(out, f.Metadata(), ws); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkConvertBF16 re-encodes the same file from F32 to BF16.
func BenchmarkConvertBF16(b *testing.B) {
	src := benchFile(b)
	f, err := Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var ws []WriteTensor
	for _, ti := range f.Tensors() {
		w, err := Convert(f, ti.Name, BF16)
		if err != nil {
			b.Fatal(err)
		}
		ws = append(ws, w)
	}
	out := filepath.Join(b.TempDir(), "out.safetensors")
	b.SetBytes(f.Size())
	b.ResetTimer()
	for b.Loop() {
		if err := WriteFile(out, f.Metadata(), ws); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseHeader parses the gpt2-tiny header (28 tensors).
func BenchmarkParseHeader(b *testing.B) {
	content := mustRead(b, gpt2Model)
	header := content[8 : 8+gpt2Header]
	dataSize := int64(len(content) - 8 - gpt2Header)
	b.SetBytes(int64(len(header)))
	for b.Loop() {
		if _, err := ParseHeader(header, dataSize); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeBF16 encodes 1M float32 values.
func BenchmarkEncodeBF16(b *testing.B) {
	src := make([]float32, 1<<20)
	for i := range src {
		src[i] = float32(i) * 0.001
	}
	dst := make([]byte, 2*len(src))
	b.SetBytes(int64(4 * len(src)))
	for b.Loop() {
		EncodeFloat32(BF16, src, dst)
	}
}

// BenchmarkEncodeF16 encodes 1M float32 values.
func BenchmarkEncodeF16(b *testing.B) {
	src := make([]float32, 1<<20)
	for i := range src {
		src[i] = float32(i) * 0.001
	}
	dst := make([]byte, 2*len(src))
	b.SetBytes(int64(4 * len(src)))
	for b.Loop() {
		EncodeFloat32(F16, src, dst)
	}
}
