package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestRoundTripFixtures opens each file written by Hugging Face and writes it
// again with the same metadata and FromFile for every tensor: the result must
// be byte-identical.
func TestRoundTripFixtures(t *testing.T) {
	for _, path := range fixtures {
		t.Run(path, func(t *testing.T) {
			f := mustOpen(t, path)
			out := filepath.Join(t.TempDir(), "out.safetensors")
			if err := WriteFile(out, f.Metadata(), fileTensors(t, f)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(mustRead(t, out), mustRead(t, path)) {
				t.Fatal("FromFile round trip is not byte-identical")
			}
			// The same through user-space copies from the mapping.
			var ws []WriteTensor
			for _, ti := range f.Tensors() {
				b, err := f.Bytes(ti.Name)
				if err != nil {
					t.Fatal(err)
				}
				ws = append(ws, FromBytes(ti.Name, ti.DType, ti.Shape, b))
			}
			out2 := filepath.Join(t.TempDir(), "out2.safetensors")
			if err := WriteFile(out2, f.Metadata(), ws); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(mustRead(t, out2), mustRead(t, path)) {
				t.Fatal("FromBytes round trip is not byte-identical")
			}
			header, err := EncodeHeader(f.Metadata(), ws)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(header)) != f.DataOffset() {
				t.Errorf("EncodeHeader length %d, DataOffset %d", len(header), f.DataOffset())
			}
			if st, _ := os.Stat(out); st.Mode().Perm() != 0o644 {
				t.Errorf("mode %v, want 0644", st.Mode().Perm())
			}
		})
	}
}

// TestEncodeHeaderReference compares with byte strings from the reference
// Rust implementation's own tests.
func TestEncodeHeaderReference(t *testing.T) {
	data := f32bytes(0, 1, 2, 3, 4, 5)
	tests := []struct {
		name    string
		meta    Metadata
		tensors []WriteTensor
		want    string
	}{
		{"empty", nil, nil, "\x08\x00\x00\x00\x00\x00\x00\x00{}      "},
		{"metadata only", Metadata{{"framework", "pt"}}, nil,
			"\x28\x00\x00\x00\x00\x00\x00\x00" + `{"__metadata__":{"framework":"pt"}}` + "     "},
		{"aligned", nil, []WriteTensor{FromBytes("attn.0", F32, []int64{1, 2, 3}, data)},
			"\x40\x00\x00\x00\x00\x00\x00\x00" + `{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`},
		{"padded", nil, []WriteTensor{FromBytes("attn0", F32, []int64{1, 1, 2, 3}, data)},
			"\x48\x00\x00\x00\x00\x00\x00\x00" + `{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}` + "       "},
		{"empty metadata is written", Metadata{}, nil,
			"\x18\x00\x00\x00\x00\x00\x00\x00" + `{"__metadata__":{}}` + "     "},
		{"offsets in order, scalar", Metadata{{"b", "2"}, {"a", "1"}}, []WriteTensor{
			FromBytes("z", BF16, []int64{2}, make([]byte, 4)),
			FromBytes("s", F64, []int64{}, make([]byte, 8)),
			FromBytes("e", I64, []int64{0}, nil),
		}, "\xc8\x00\x00\x00\x00\x00\x00\x00" + `{"__metadata__":{"b":"2","a":"1"},"z":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},` +
			`"s":{"dtype":"F64","shape":[],"data_offsets":[4,12]},"e":{"dtype":"I64","shape":[0],"data_offsets":[12,12]}}` + "    "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := EncodeHeader(tc.meta, tc.tensors)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			if binary.LittleEndian.Uint64(got) != uint64(len(got)-8) {
				t.Errorf("length prefix %d for %d bytes", binary.LittleEndian.Uint64(got), len(got)-8)
			}
		})
	}
}

// TestJSONEscaping checks serde_json-compatible escaping and that names
// survive a write and a read.
func TestJSONEscaping(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain.name", `"plain.name"`},
		{`q"uote\back/slash`, `"q\"uote\\back/slash"`},
		{"ctl\b\f\n\r\t\x00\x01\x1f\x7f", `"ctl\b\f\n\r\t\u0000\u0001\u001f` + "\x7f\""},
		{"html <&> é 😀 \u2028\u2029", "\"html <&> é 😀 \u2028\u2029\""},
	}
	for _, tc := range tests {
		if got := string(appendJSONString(nil, tc.in)); got != tc.want {
			t.Errorf("appendJSONString(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
	var ws []WriteTensor
	meta := Metadata{}
	for i, tc := range tests {
		ws = append(ws, FromBytes(tc.in, U8, []int64{1}, []byte{byte(i)}))
		meta = meta.With(tc.in, tc.in)
	}
	path := filepath.Join(t.TempDir(), "esc.safetensors")
	if err := WriteFile(path, meta, ws); err != nil {
		t.Fatal(err)
	}
	f := mustOpen(t, path)
	if !reflect.DeepEqual(f.Metadata(), meta) {
		t.Errorf("metadata %q, want %q", f.Metadata(), meta)
	}
	for i, ti := range f.Tensors() {
		if ti.Name != tests[i].in {
			t.Errorf("tensor %d named %q, want %q", i, ti.Name, tests[i].in)
		}
	}
}

func TestEncodeHeaderErrors(t *testing.T) {
	ok := FromBytes("ok", U8, []int64{2}, []byte{1, 2})
	tests := []struct {
		name    string
		meta    Metadata
		tensors []WriteTensor
		want    []error
		mention string
	}{
		{"duplicate tensor", nil, []WriteTensor{ok, ok}, []error{ErrDuplicateName}, `"ok"`},
		{"reserved name", nil, []WriteTensor{FromBytes("__metadata__", U8, []int64{0}, nil)}, []error{ErrInvalidHeader}, `"__metadata__"`},
		{"invalid utf-8 name", nil, []WriteTensor{FromBytes("a\xff", U8, []int64{0}, nil)}, []error{ErrInvalidUTF8}, `"a\xff"`},
		{"size mismatch", nil, []WriteTensor{FromBytes("w", F32, []int64{2, 3}, make([]byte, 20))}, []error{ErrShapeMismatch}, `"w"`},
		{"unknown dtype", nil, []WriteTensor{FromBytes("w", "F12", []int64{1}, make([]byte, 2))}, []error{ErrUnknownDType}, `"w"`},
		{"negative dim", nil, []WriteTensor{{Name: "w", DType: U8, Shape: []int64{-1}, Size: 0}}, []error{ErrShapeMismatch}, `"w"`},
		{"sub-byte", nil, []WriteTensor{FromBytes("w", F4, []int64{3}, make([]byte, 2))}, []error{ErrShapeMismatch}, `"w"`},
		{"offset overflow", nil, []WriteTensor{
			{Name: "a", DType: U8, Shape: []int64{1 << 62}, Size: 1 << 62},
			{Name: "b", DType: U8, Shape: []int64{1 << 62}, Size: 1 << 62},
			{Name: "c", DType: U8, Shape: []int64{1 << 62}, Size: 1 << 62},
		}, []error{ErrOverflow}, `"b"`},
		{"duplicate metadata", Metadata{{"k", "1"}, {"k", "2"}}, nil, []error{ErrMetadata, ErrDuplicateName}, `"k"`},
		{"invalid utf-8 metadata", Metadata{{"k", "\xff"}}, nil, []error{ErrMetadata, ErrInvalidUTF8}, `"k"`},
		{"FromFloat32 unsupported dtype", nil, []WriteTensor{FromFloat32("w", I32, []int64{1}, []float32{1})}, []error{ErrUnsupportedDType}, `"w"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := EncodeHeader(tc.meta, tc.tensors)
			checkErr(t, err, tc.want, tc.mention)
			dir := t.TempDir()
			path := filepath.Join(dir, "x.safetensors")
			err = WriteFile(path, tc.meta, tc.tensors)
			checkErr(t, err, tc.want, tc.mention, path)
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("files left behind: %v", names)
			}
		})
	}
}

// TestWriteFileFailures: a failing tensor leaves nothing at path (and an
// existing file untouched), and no temporary file.
func TestWriteFileFailures(t *testing.T) {
	good := FromBytes("good", U8, []int64{4}, []byte{1, 2, 3, 4})
	errBoom := errors.New("boom")
	tests := []struct {
		name   string
		tensor WriteTensor
		want   error
	}{
		// Each tensor is called "bad" except the FromFile one.
		{"short write", WriteTensor{Name: "bad", DType: U8, Shape: []int64{4}, Size: 4, Write: func(w io.Writer) error {
			_, err := w.Write([]byte{1, 2, 3})
			return err
		}}, ErrWriteSize},
		{"long write", WriteTensor{Name: "bad", DType: U8, Shape: []int64{4}, Size: 4, Write: func(w io.Writer) error {
			_, err := w.Write([]byte{1, 2, 3, 4, 5})
			return err
		}}, ErrWriteSize},
		{"long write in pieces", WriteTensor{Name: "bad", DType: U8, Shape: []int64{4}, Size: 4, Write: func(w io.Writer) error {
			w.Write([]byte{1, 2, 3})
			_, err := w.Write([]byte{4, 5})
			return err
		}}, ErrWriteSize},
		{"write error", WriteTensor{Name: "bad", DType: U8, Shape: []int64{4}, Size: 4, Write: func(w io.Writer) error {
			return errBoom
		}}, errBoom},
		{"nil write", WriteTensor{Name: "bad", DType: U8, Shape: []int64{4}, Size: 4}, nil},
		{"FromFile size mismatch", func() WriteTensor {
			f := mustOpen(t, gpt2Model)
			w, _ := FromFile(f, "transformer.h.0.ln_1.bias")
			w.Size, w.Shape = 128, []int64{32} // a lie: the tensor has 256 bytes
			return w
		}(), ErrWriteSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "x.safetensors")
			err := WriteFile(path, nil, []WriteTensor{good, tc.tensor})
			want := []error{}
			if tc.want != nil {
				want = append(want, tc.want)
			}
			checkErr(t, err, want, path, quote(tc.tensor.Name))
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("files left behind: %v", names)
			}
			// An existing file is left as it was.
			os.WriteFile(path, []byte("old"), 0o644)
			if err := WriteFile(path, nil, []WriteTensor{good, tc.tensor}); err == nil {
				t.Fatal("second write succeeded")
			}
			if got := mustRead(t, path); string(got) != "old" {
				t.Errorf("existing file changed to %q", got)
			}
			if names := dirNames(t, dir); len(names) != 1 {
				t.Errorf("files left behind: %v", names)
			}
		})
	}
	if err := WriteFile(filepath.Join(t.TempDir(), "no", "such", "dir", "x.safetensors"), nil, nil); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

// TestRewriteInPlace writes a file over the one it copies from.
func TestRewriteInPlace(t *testing.T) {
	orig := mustRead(t, gpt2Model)
	path := writeTemp(t, "m.safetensors", orig)
	f := mustOpen(t, path)
	if err := WriteFile(path, f.Metadata().With("format", "pt"), fileTensors(t, f)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustRead(t, path), orig) {
		t.Error("in-place rewrite changed the file")
	}
	// The open File still reads the old (identical) data.
	if _, err := f.Float32s("transformer.wte.weight"); err != nil {
		t.Error(err)
	}
}

func TestFromFloat32(t *testing.T) {
	n := 300000 // several chunks
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = float32(math.Sin(float64(i))) * float32(i%1000)
	}
	dir := t.TempDir()
	var ws []WriteTensor
	for _, dt := range []DType{F32, F16, BF16, F64} {
		ws = append(ws, FromFloat32(string(dt), dt, []int64{int64(n) / 100, 100}, vals))
	}
	ws = append(ws, FromFloat32("empty", F16, []int64{0}, nil))
	path := filepath.Join(dir, "f.safetensors")
	if err := WriteFile(path, Metadata{{"format", "pt"}}, ws); err != nil {
		t.Fatal(err)
	}
	f := mustOpen(t, path)
	for _, dt := range []DType{F32, F16, BF16, F64} {
		ti, _ := f.Tensor(string(dt))
		if ti.DType != dt || ti.Size != int64(n*floatSize(dt)) {
			t.Errorf("%s: %+v", dt, ti)
		}
		got, err := f.Float32s(string(dt))
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			want := v
			switch dt {
			case F16:
				want = F16ToFloat32(Float32ToF16(v))
			case BF16:
				want = BF16ToFloat32(Float32ToBF16(v))
			}
			if got[i] != want {
				t.Fatalf("%s[%d] = %v, want %v", dt, i, got[i], want)
			}
		}
	}
	// Size is checked against the shape.
	err := WriteFile(filepath.Join(dir, "bad.safetensors"), nil, []WriteTensor{FromFloat32("w", F16, []int64{3}, []float32{1, 2})})
	checkErr(t, err, []error{ErrShapeMismatch}, `"w"`)
}

func TestConvertTensors(t *testing.T) {
	// Source: one tensor of each float dtype, with values that stress
	// rounding, large enough for several 1 MiB chunks.
	n := 400000
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = math.Float32frombits(uint32(i) * 2654435761) // spread over all exponents
	}
	vals[0], vals[1], vals[2] = 1+1.0/256, 65520, -0
	f64 := make([]byte, 8*n)
	f64v := make([]float64, n)
	for i, v := range vals {
		f64v[i] = float64(v) * (1 + 1e-12)
		binary.LittleEndian.PutUint64(f64[8*i:], math.Float64bits(f64v[i]))
	}
	src := filepath.Join(t.TempDir(), "src.safetensors")
	shape := []int64{int64(n)}
	err := WriteFile(src, nil, []WriteTensor{
		FromFloat32("f32", F32, shape, vals),
		FromFloat32("f16", F16, shape, vals),
		FromFloat32("bf16", BF16, shape, vals),
		FromBytes("f64", F64, shape, f64),
		FromBytes("ints", I32, []int64{2}, make([]byte, 8)),
	})
	if err != nil {
		t.Fatal(err)
	}
	f := mustOpen(t, src)
	var ws []WriteTensor
	type pair struct{ from, to DType }
	var pairs []pair
	for _, from := range []DType{F32, F16, BF16, F64} {
		for _, to := range []DType{F32, F16, BF16, F64} {
			w, err := Convert(f, strings.ToLower(string(from)), to)
			if err != nil {
				t.Fatal(err)
			}
			w.Name = string(from) + "->" + string(to)
			ws = append(ws, w)
			pairs = append(pairs, pair{from, to})
		}
	}
	dst := filepath.Join(t.TempDir(), "dst.safetensors")
	if err := WriteFile(dst, nil, ws); err != nil {
		t.Fatal(err)
	}
	g := mustOpen(t, dst)
	for _, p := range pairs {
		name := string(p.from) + "->" + string(p.to)
		got, err := g.Bytes(name)
		if err != nil {
			t.Fatal(err)
		}
		// Expected: decode the source exactly, encode once.
		want := make([]byte, n*floatSize(p.to))
		if p.from == F64 {
			encodeFloat64(p.to, f64v, want)
		} else {
			srcVals, err := f.Float32s(strings.ToLower(string(p.from)))
			if err != nil {
				t.Fatal(err)
			}
			EncodeFloat32(p.to, srcVals, want)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: converted bytes differ", name)
		}
		if p.from == p.to {
			orig, _ := f.Bytes(strings.ToLower(string(p.from)))
			if !bytes.Equal(got, orig) {
				t.Errorf("%s: same-dtype Convert is not a raw copy", name)
			}
		}
	}
	// One rounding step from F64: 1+2^-8+tiny rounds up in BF16.
	bf, _ := g.Bytes("F64->BF16")
	if h := binary.LittleEndian.Uint16(bf); h != 0x3f81 {
		t.Errorf("F64->BF16 of 1+2^-8(+) = %#04x, want 0x3f81", h)
	}
	hf, _ := g.Bytes("F32->F16")
	if h := binary.LittleEndian.Uint16(hf[2:]); h != 0x7c00 {
		t.Errorf("F32->F16 of 65520 = %#04x, want Inf", h)
	}
	_, err = Convert(f, "ints", F16)
	checkErr(t, err, []error{ErrUnsupportedDType}, src, `"ints"`, "I32")
	_, err = Convert(f, "f32", I8)
	checkErr(t, err, []error{ErrUnsupportedDType}, `"f32"`)
	_, err = Convert(f, "nope", F16)
	checkErr(t, err, []error{ErrNotFound}, `"nope"`)
	if w, err := Convert(f, "ints", I32); err != nil || w.Size != 8 {
		t.Errorf("same-dtype Convert of an int tensor: %v", err)
	}
}
