package safetensors

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// sentinels are the errors a header or file can be rejected with.
var sentinels = []error{
	ErrTruncated, ErrHeaderTooLarge, ErrHeaderLength, ErrInvalidUTF8, ErrInvalidHeader,
	ErrMetadata, ErrUnknownDType, ErrShapeMismatch, ErrOverflow, ErrOffsets, ErrGap,
	ErrOverlap, ErrTrailingBytes, ErrDuplicateName,
}

// checkHeader asserts the invariants of a successfully parsed header and that
// EncodeHeader writes it back to a header that parses to the same thing.
func checkHeader(t *testing.T, h *Header, dataSize int64) {
	t.Helper()
	var pos int64
	names := map[string]bool{}
	var ws []WriteTensor
	for _, ti := range h.Tensors {
		if names[ti.Name] {
			t.Fatalf("duplicate name %q accepted", ti.Name)
		}
		names[ti.Name] = true
		if ti.Offset != pos || ti.Size < 0 {
			t.Fatalf("tensor %q at [%d,+%d], want offset %d", ti.Name, ti.Offset, ti.Size, pos)
		}
		size, err := ti.DType.ByteSize(ti.Shape)
		if err != nil || size != ti.Size {
			t.Fatalf("tensor %q: size %d, shape gives %d, %v", ti.Name, ti.Size, size, err)
		}
		pos += ti.Size
		ws = append(ws, WriteTensor{Name: ti.Name, DType: ti.DType, Shape: ti.Shape, Size: ti.Size})
	}
	if pos != dataSize {
		t.Fatalf("tensors cover %d bytes of %d", pos, dataSize)
	}
	enc, err := EncodeHeader(h.Metadata, ws)
	if err != nil {
		t.Fatalf("EncodeHeader of a valid header: %v", err)
	}
	h2, err := ParseHeader(enc[8:], dataSize)
	if err != nil {
		t.Fatalf("re-encoded header %q does not parse: %v", enc, err)
	}
	if len(h2.Tensors) == 0 && len(h.Tensors) == 0 {
		h2.Tensors = h.Tensors // nil and empty are the same list
	}
	if !reflect.DeepEqual(h, h2) {
		t.Fatalf("re-encoded header differs:\n%#v\n%#v", h, h2)
	}
	enc2, _ := EncodeHeader(h2.Metadata, ws)
	if !bytes.Equal(enc, enc2) {
		t.Fatalf("EncodeHeader is not stable: %q vs %q", enc, enc2)
	}
}

// checkRejection asserts that err wraps a known sentinel and is one line.
func checkRejection(t *testing.T, err error) {
	t.Helper()
	known := false
	for _, s := range sentinels {
		if errors.Is(err, s) {
			known = true
			break
		}
	}
	if !known {
		t.Fatalf("error %q wraps no sentinel", err)
	}
	if bytes.ContainsAny([]byte(err.Error()), "\n\r") {
		t.Fatalf("error message is not one line: %q", err)
	}
}

// FuzzParseHeader feeds arbitrary headers and data sizes to ParseHeader. It
// must never panic; a rejection must wrap a sentinel; an accepted header
// must tile the data section and survive EncodeHeader unchanged. The seed
// corpus is in testdata/fuzz/FuzzParseHeader.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte(`{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`), int64(8))
	f.Fuzz(func(t *testing.T, header []byte, dataSize int64) {
		h, err := ParseHeader(header, dataSize)
		if err != nil {
			if h != nil {
				t.Fatal("header returned with an error")
			}
			checkRejection(t, err)
			return
		}
		checkHeader(t, h, dataSize)
	})
}

// FuzzOpen feeds whole files to Open. The same rules apply as for
// FuzzParseHeader; an accepted file must also give every tensor's bytes
// through Bytes, CopyTensor (to a buffer and to a file) and a WriteFile round
// trip that is byte-identical to its canonical re-encoding. The seed corpus
// is in testdata/fuzz/FuzzOpen.
func FuzzOpen(f *testing.F) {
	f.Add(rawFile(`{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}`, []byte{1, 2, 3}))
	f.Fuzz(func(t *testing.T, content []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "f.safetensors")
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		sf, err := Open(path)
		if err != nil {
			checkRejection(t, err)
			if !bytes.HasPrefix([]byte(err.Error()), []byte(path+": ")) {
				t.Fatalf("error %q does not start with the path", err)
			}
			return
		}
		defer sf.Close()
		h := &Header{Metadata: sf.Metadata(), Tensors: sf.Tensors()}
		checkHeader(t, h, sf.Size()-sf.DataOffset())
		out, err := os.Create(filepath.Join(dir, "copy"))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		var want []byte
		for _, ti := range h.Tensors {
			b, err := sf.Bytes(ti.Name)
			if err != nil || int64(len(b)) != ti.Size {
				t.Fatalf("Bytes(%q) = %d bytes, %v", ti.Name, len(b), err)
			}
			if !bytes.Equal(b, content[sf.DataOffset()+ti.Offset:][:ti.Size]) {
				t.Fatalf("Bytes(%q) differ from the file", ti.Name)
			}
			var buf bytes.Buffer
			if n, err := sf.CopyTensor(&buf, ti.Name); err != nil || n != ti.Size || !bytes.Equal(buf.Bytes(), b) {
				t.Fatalf("CopyTensor(%q) = %d, %v", ti.Name, n, err)
			}
			if _, err := sf.CopyTensor(out, ti.Name); err != nil {
				t.Fatal(err)
			}
			want = append(want, b...)
			if floatSize(ti.DType) != 0 {
				if _, err := sf.Float32s(ti.Name); err != nil {
					t.Fatalf("Float32s(%q): %v", ti.Name, err)
				}
			}
		}
		if got := mustRead(t, out.Name()); !bytes.Equal(got, want) {
			t.Fatal("CopyTensor to a file differs")
		}
		rewritten := filepath.Join(dir, "rewritten.safetensors")
		if err := WriteFile(rewritten, h.Metadata, fileTensors(t, sf)); err != nil {
			t.Fatal(err)
		}
		var ws []WriteTensor
		for _, ti := range h.Tensors {
			ws = append(ws, WriteTensor{Name: ti.Name, DType: ti.DType, Shape: ti.Shape, Size: ti.Size})
		}
		header, _ := EncodeHeader(h.Metadata, ws)
		if got := mustRead(t, rewritten); !bytes.Equal(got, append(header, content[sf.DataOffset():]...)) {
			t.Fatal("rewritten file is not the canonical header plus the same data")
		}
	})
}
