package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fixtures copied from /work/shared/fixtures (written by the reference
// PyTorch implementation through the Hugging Face safetensors library).
const (
	gpt2Model   = "testdata/gpt2-tiny/model.safetensors"
	gpt2Golden  = "testdata/gpt2-tiny/golden.safetensors"
	llamaModel  = "testdata/llama-tiny/model.safetensors"
	gpt2Header  = 2624
	gpt2Tensors = 28
)

var fixtures = []string{gpt2Model, gpt2Golden, llamaModel}

// rawFile returns the bytes of a safetensors file with the given header
// (used verbatim, no padding) and data.
func rawFile(header string, data []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

// writeTemp writes content to a new file in a temporary directory and
// returns its path.
func writeTemp(t testing.TB, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// mustOpen opens path or fails the test, closing the file at cleanup.
func mustOpen(t testing.TB, path string) *File {
	t.Helper()
	f, err := Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkErr asserts that err wraps every sentinel of want, is on one line and
// mentions each of the substrings.
func checkErr(t *testing.T, err error, want []error, mentions ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Errorf("error %q does not wrap %q", err, w)
		}
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\n\r") {
		t.Errorf("error message is not one line: %q", msg)
	}
	for _, m := range mentions {
		if !strings.Contains(msg, m) {
			t.Errorf("error %q does not mention %q", msg, m)
		}
	}
}

// fileTensors returns FromFile for every tensor of f, in order.
func fileTensors(t testing.TB, f *File) []WriteTensor {
	t.Helper()
	var ws []WriteTensor
	for _, ti := range f.Tensors() {
		w, err := FromFile(f, ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	return ws
}

// f32bytes encodes vals as little-endian F32.
func f32bytes(vals ...float32) []byte {
	var buf bytes.Buffer
	for _, v := range vals {
		binary.Write(&buf, binary.LittleEndian, v)
	}
	return buf.Bytes()
}

// dirNames lists the names in dir.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}
