package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
)

func TestOpenFixtureHeader(t *testing.T) {
	f := mustOpen(t, gpt2Model)
	if f.Path() != gpt2Model {
		t.Errorf("Path = %q", f.Path())
	}
	if got, want := f.DataOffset(), int64(8+gpt2Header); got != want {
		t.Errorf("DataOffset = %d, want %d", got, want)
	}
	if got, want := f.Size(), int64(501320); got != want {
		t.Errorf("Size = %d, want %d", got, want)
	}
	if got, want := f.Metadata(), (Metadata{{"format", "pt"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("Metadata = %v, want %v", got, want)
	}
	ts := f.Tensors()
	if len(ts) != gpt2Tensors {
		t.Fatalf("%d tensors, want %d", len(ts), gpt2Tensors)
	}
	wantFirst := []TensorInfo{
		{Name: "transformer.h.0.attn.c_attn.bias", DType: F32, Shape: []int64{192}, Offset: 0, Size: 768},
		{Name: "transformer.h.0.attn.c_attn.weight", DType: F32, Shape: []int64{64, 192}, Offset: 768, Size: 49152},
		{Name: "transformer.h.0.attn.c_proj.bias", DType: F32, Shape: []int64{64}, Offset: 49920, Size: 256},
		{Name: "transformer.h.0.attn.c_proj.weight", DType: F32, Shape: []int64{64, 64}, Offset: 50176, Size: 16384},
	}
	if !reflect.DeepEqual(ts[:4], wantFirst) {
		t.Errorf("first tensors = %+v\nwant %+v", ts[:4], wantFirst)
	}
	last := TensorInfo{Name: "transformer.wte.weight", DType: F32, Shape: []int64{256, 64}, Offset: 433152, Size: 65536}
	if !reflect.DeepEqual(ts[len(ts)-1], last) {
		t.Errorf("last tensor = %+v, want %+v", ts[len(ts)-1], last)
	}
	// Data-offset order, contiguous, covering the data section.
	var pos int64
	for _, ti := range ts {
		if ti.Offset != pos {
			t.Errorf("%s at %d, want %d", ti.Name, ti.Offset, pos)
		}
		pos += ti.Size
	}
	if pos != f.Size()-f.DataOffset() {
		t.Errorf("tensors end at %d, data section is %d", pos, f.Size()-f.DataOffset())
	}
	got, ok := f.Tensor("transformer.h.0.attn.c_attn.weight")
	if !ok || !reflect.DeepEqual(got, wantFirst[1]) {
		t.Errorf("Tensor = %+v, %v", got, ok)
	}
	if ti, ok := f.Tensor("nope"); ok {
		t.Errorf("Tensor(nope) = %+v", ti)
	}
	// Returned values are copies.
	got.Shape[0] = 999
	ts[0].Shape[0] = 999
	if again, _ := f.Tensor("transformer.h.0.attn.c_attn.weight"); again.Shape[0] != 64 {
		t.Error("Tensor returned an alias of the File's shape")
	}
	if f.Tensors()[0].Shape[0] != 192 {
		t.Error("Tensors returned an alias of the File's shape")
	}
}

func TestOpenGoldenMetadataAndI64(t *testing.T) {
	f := mustOpen(t, gpt2Golden)
	want := Metadata{{"generator", "reference/golden.py"}, {"compute_dtype", "float64"}}
	if got := f.Metadata(); !reflect.DeepEqual(got, want) {
		t.Errorf("Metadata = %v, want %v (header order)", got, want)
	}
	tok, ok := f.Tensor("tokens")
	if !ok || tok.DType != I64 || !reflect.DeepEqual(tok.Shape, []int64{64}) || tok.Offset != 262144 || tok.Size != 512 {
		t.Fatalf("tokens = %+v", tok)
	}
	b, err := f.Bytes("tokens")
	if err != nil {
		t.Fatal(err)
	}
	var first []int64
	for i := range 8 {
		first = append(first, int64(binary.LittleEndian.Uint64(b[8*i:])))
	}
	if want := []int64{47, 211, 38, 53, 204, 116, 152, 249}; !reflect.DeepEqual(first, want) {
		t.Errorf("tokens[:8] = %v, want %v", first, want)
	}
	_, err = f.Float32s("tokens")
	checkErr(t, err, []error{ErrUnsupportedDType}, gpt2Golden, `"tokens"`, "I64")

	logits, err := f.Float32s("logits.softmax")
	if err != nil {
		t.Fatal(err)
	}
	if len(logits) != 64*256 {
		t.Fatalf("%d logits", len(logits))
	}
	// Values checked independently with Python's struct module.
	for i, want := range []float64{0.8000393509864807, -0.6927542090415955, -0.1874265819787979} {
		if float64(logits[i]) != want {
			t.Errorf("logits[%d] = %v, want %v", i, logits[i], want)
		}
	}
}

func TestFloat32sMatchRawBytes(t *testing.T) {
	for _, path := range fixtures {
		f := mustOpen(t, path)
		for _, ti := range f.Tensors() {
			if ti.DType != F32 {
				continue
			}
			raw, err := f.Bytes(ti.Name)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(raw)) != ti.Size || cap(raw) != len(raw) {
				t.Fatalf("%s: Bytes len %d cap %d, want %d", ti.Name, len(raw), cap(raw), ti.Size)
			}
			vals, err := f.Float32s(ti.Name)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(vals)) != ti.NumElements() {
				t.Fatalf("%s: %d values, want %d", ti.Name, len(vals), ti.NumElements())
			}
			for i, v := range vals {
				want := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
				if math.Float32bits(v) != math.Float32bits(want) {
					t.Fatalf("%s[%d] = %v, want %v", ti.Name, i, v, want)
				}
			}
		}
	}
}

func TestBytesMatchFileContent(t *testing.T) {
	content := mustRead(t, llamaModel)
	f := mustOpen(t, llamaModel)
	for _, ti := range f.Tensors() {
		b, err := f.Bytes(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		start := f.DataOffset() + ti.Offset
		if !bytes.Equal(b, content[start:start+ti.Size]) {
			t.Errorf("%s: Bytes differ from the file content", ti.Name)
		}
	}
	_, err := f.Bytes("missing.weight")
	checkErr(t, err, []error{ErrNotFound}, llamaModel, `"missing.weight"`)
}

func TestFloat32sDTypes(t *testing.T) {
	vals := []float32{1, -2.5, 0.099975586, float32(math.Inf(-1)), 65504, 1.0 / 3}
	var data []byte
	var header = "{"
	for i, dt := range []DType{F32, F16, BF16, F64} {
		enc := make([]byte, len(vals)*floatSize(dt))
		if err := EncodeFloat32(dt, vals, enc); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			header += ","
		}
		header += fmt.Sprintf(`"%s":{"dtype":"%s","shape":[2,3],"data_offsets":[%d,%d]}`, dt, dt, len(data), len(data)+len(enc))
		data = append(data, enc...)
	}
	header += "}"
	f := mustOpen(t, writeTemp(t, "d.safetensors", rawFile(header, data)))
	for _, dt := range []DType{F32, F16, BF16, F64} {
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
				t.Errorf("%s[%d] = %v, want %v", dt, i, got[i], want)
			}
		}
	}
	if v, _ := f.Float32s("F16"); v[0] != 1 || v[1] != -2.5 || v[4] != 65504 {
		t.Errorf("F16 values %v", v)
	}
	if v, _ := f.Float32s("BF16"); v[0] != 1 || v[1] != -2.5 || v[4] != 65536 {
		t.Errorf("BF16 values %v", v)
	}
}

func TestZeroSizeAndEmptyFiles(t *testing.T) {
	f := mustOpen(t, writeTemp(t, "e.safetensors", rawFile(`{"__metadata__":{}}    `, nil)))
	if m := f.Metadata(); m == nil || len(m) != 0 {
		t.Errorf("Metadata = %#v, want empty non-nil", m)
	}
	if len(f.Tensors()) != 0 {
		t.Errorf("tensors: %v", f.Tensors())
	}
	g := mustOpen(t, writeTemp(t, "z.safetensors", rawFile(`{"z":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]}}`, nil)))
	b, err := g.Bytes("z")
	if err != nil || len(b) != 0 {
		t.Errorf("Bytes(z) = %v, %v", b, err)
	}
	v, err := g.Float32s("z")
	if err != nil || len(v) != 0 {
		t.Errorf("Float32s(z) = %v, %v", v, err)
	}
	var buf bytes.Buffer
	if n, err := g.CopyTensor(&buf, "z"); n != 0 || err != nil {
		t.Errorf("CopyTensor(z) = %d, %v", n, err)
	}
}

func TestClose(t *testing.T) {
	f, err := Open(gpt2Model)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	checkErr(t, f.Close(), []error{ErrClosed}, gpt2Model)
	_, err = f.Bytes("transformer.wte.weight")
	checkErr(t, err, []error{ErrClosed})
	_, err = f.Float32s("transformer.wte.weight")
	checkErr(t, err, []error{ErrClosed})
	_, err = f.CopyTensor(io.Discard, "transformer.wte.weight")
	checkErr(t, err, []error{ErrClosed})
	_, err = f.ReadAt(make([]byte, 4), 0)
	checkErr(t, err, []error{ErrClosed})
	// Header information stays available.
	if _, ok := f.Tensor("transformer.wte.weight"); !ok {
		t.Error("Tensor after Close")
	}
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "missing.safetensors"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	_, err = Open(t.TempDir())
	if err == nil {
		t.Error("Open(directory) succeeded")
	}
}

func TestReadAt(t *testing.T) {
	f := mustOpen(t, gpt2Model)
	ti, _ := f.Tensor("transformer.h.0.attn.c_proj.bias")
	want, _ := f.Bytes(ti.Name)
	got := make([]byte, ti.Size)
	if n, err := f.ReadAt(got, ti.Offset); n != len(got) || err != nil || !bytes.Equal(got, want) {
		t.Errorf("ReadAt = %d, %v", n, err)
	}
	end := f.Size() - f.DataOffset()
	n, err := f.ReadAt(make([]byte, 8), end-4)
	if n != 4 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v; want 4, EOF", n, err)
	}
	if _, err := f.ReadAt(make([]byte, 8), -1); err == nil {
		t.Error("ReadAt(-1) succeeded")
	}
}

// TestCopyTensorPaths copies through each path: user space (a buffer), the
// kernel to a file at a non-zero position, and to a pipe.
func TestCopyTensorPaths(t *testing.T) {
	f := mustOpen(t, gpt2Model)
	names := []string{"transformer.h.0.attn.c_attn.weight", "transformer.h.1.ln_2.bias", "transformer.wte.weight"}
	t.Run("buffer", func(t *testing.T) {
		for _, name := range names {
			var buf bytes.Buffer
			n, err := f.CopyTensor(&buf, name)
			want, _ := f.Bytes(name)
			if err != nil || n != int64(len(want)) || !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("%s: CopyTensor = %d, %v", name, n, err)
			}
		}
	})
	t.Run("file at a non-zero position", func(t *testing.T) {
		dst, err := os.Create(filepath.Join(t.TempDir(), "out"))
		if err != nil {
			t.Fatal(err)
		}
		defer dst.Close()
		var want bytes.Buffer
		dst.WriteString("prefix")
		want.WriteString("prefix")
		for _, name := range names {
			n, err := f.CopyTensor(dst, name)
			b, _ := f.Bytes(name)
			if err != nil || n != int64(len(b)) {
				t.Fatalf("%s: CopyTensor = %d, %v", name, n, err)
			}
			want.Write(b)
			dst.WriteString("|")
			want.WriteString("|")
		}
		if got := mustRead(t, dst.Name()); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("file content differs (%d vs %d bytes)", len(got), want.Len())
		}
	})
	t.Run("append-only file", func(t *testing.T) {
		// copy_file_range and sendfile refuse O_APPEND: the user-space path
		// takes over.
		p := filepath.Join(t.TempDir(), "out")
		os.WriteFile(p, []byte("head"), 0o644)
		dst, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer dst.Close()
		name := names[0]
		if _, err := f.CopyTensor(dst, name); err != nil {
			t.Fatal(err)
		}
		want, _ := f.Bytes(name)
		if got := mustRead(t, p); string(got) != "head"+string(want) {
			t.Errorf("appended %d bytes, want %d", len(got)-4, len(want))
		}
	})
	t.Run("pipe", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan []byte)
		go func() {
			b, _ := io.ReadAll(r)
			done <- b
		}()
		name := "transformer.wte.weight"
		n, err := f.CopyTensor(w, name)
		w.Close()
		got := <-done
		r.Close()
		want, _ := f.Bytes(name)
		if err != nil || n != int64(len(want)) || !bytes.Equal(got, want) {
			t.Errorf("CopyTensor to a pipe = %d, %v (%d bytes arrived)", n, err, len(got))
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, err := f.CopyTensor(io.Discard, "nope")
		checkErr(t, err, []error{ErrNotFound}, gpt2Model, `"nope"`)
	})
}

// TestCopyTensorConcurrent copies every tensor from many goroutines at once,
// to files and to buffers: the copies must not share a file position.
func TestCopyTensorConcurrent(t *testing.T) {
	f := mustOpen(t, llamaModel)
	dir := t.TempDir()
	ts := f.Tensors()
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(ts))
	for round := range 4 {
		for i, ti := range ts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				want, _ := f.Bytes(ti.Name)
				var got []byte
				if (i+round)%2 == 0 {
					var buf bytes.Buffer
					if _, err := f.CopyTensor(&buf, ti.Name); err != nil {
						errs <- err
						return
					}
					got = buf.Bytes()
				} else {
					p := filepath.Join(dir, fmt.Sprintf("%d-%d", round, i))
					out, err := os.Create(p)
					if err != nil {
						errs <- err
						return
					}
					_, err = f.CopyTensor(out, ti.Name)
					out.Close()
					if err != nil {
						errs <- err
						return
					}
					got, _ = os.ReadFile(p)
				}
				if !bytes.Equal(got, want) {
					errs <- fmt.Errorf("%s: copy differs", ti.Name)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCopyTensorTruncatedSource truncates a file after Open: the mapping
// would fault, but CopyTensor reads with pread and reports ErrTruncated.
func TestCopyTensorTruncatedSource(t *testing.T) {
	path := writeTemp(t, "t.safetensors", mustRead(t, gpt2Model))
	f := mustOpen(t, path)
	if err := os.Truncate(path, f.DataOffset()+100); err != nil {
		t.Fatal(err)
	}
	for _, w := range []io.Writer{&bytes.Buffer{}, tempFile(t)} {
		_, err := f.CopyTensor(w, "transformer.wte.weight")
		checkErr(t, err, []error{ErrTruncated}, path, `"transformer.wte.weight"`)
	}
	_, err := f.Float32s("transformer.wte.weight")
	checkErr(t, err, []error{ErrTruncated}, path)
}

func tempFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
