package safetensors

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"syscall"
	"unicode/utf8"
	"unsafe"

	"github.com/ssmax/ssmax/internal/atomicfile"
)

// chunkBytes bounds the buffers of streaming conversions.
const chunkBytes = 1 << 20

// writeBufferSize is the size of WriteFile's buffered writer.
const writeBufferSize = 1 << 20

// errFallback tells a kernel copy's caller to finish in user space.
var errFallback = errors.New("safetensors: kernel copy unavailable")

// WriteTensor is one tensor to write: its header fields and a function that
// streams its data.
type WriteTensor struct {
	Name  string
	DType DType
	Shape []int64
	// Size is the number of data bytes; it must equal the size implied by
	// Shape and DType.
	Size int64
	// Write writes exactly Size bytes of little-endian data to w. WriteFile
	// calls it once, in order, and fails if it writes a different amount.
	Write func(w io.Writer) error

	err error // a problem found by the constructor, reported by WriteFile
}

// FromFile returns a WriteTensor that copies tensor name of f unchanged,
// as f.CopyTensor does (kernel copy when writing to a file). Its Write's
// errors name f but not the tensor, which WriteFile names.
func FromFile(f *File, name string) (WriteTensor, error) {
	t, err := f.lookup(name)
	if err != nil {
		return WriteTensor{}, err
	}
	return WriteTensor{
		Name:  t.Name,
		DType: t.DType,
		Shape: append([]int64{}, t.Shape...),
		Size:  t.Size,
		Write: func(w io.Writer) error {
			if _, err := f.copyTensor(w, t); err != nil {
				return fmt.Errorf("copy from %s: %w", f.path, err)
			}
			return nil
		},
	}, nil
}

// FromBytes returns a WriteTensor writing data (little-endian, len(data) must
// match shape and dt, which WriteFile checks). data is not copied and must not
// change until the write is done.
func FromBytes(name string, dt DType, shape []int64, data []byte) WriteTensor {
	return WriteTensor{
		Name:  name,
		DType: dt,
		Shape: shape,
		Size:  int64(len(data)),
		Write: func(w io.Writer) error {
			_, err := w.Write(data)
			return err
		},
	}
}

// FromFloat32 returns a WriteTensor that encodes vals to dt (F32, F16, BF16
// or F64; see EncodeFloat32 for the rounding) in bounded chunks while
// writing. len(vals) must match shape. vals must not change until the write
// is done.
func FromFloat32(name string, dt DType, shape []int64, vals []float32) WriteTensor {
	wt := WriteTensor{Name: name, DType: dt, Shape: shape}
	size := floatSize(dt)
	if size == 0 {
		wt.err = fmt.Errorf("tensor %s: FromFloat32: %w (%s; want F32, F16, BF16 or F64)", quote(name), ErrUnsupportedDType, dt)
		return wt
	}
	wt.Size = int64(len(vals)) * int64(size)
	wt.Write = func(w io.Writer) error {
		step := chunkBytes / size
		buf := make([]byte, min(len(vals), step)*size)
		for i := 0; i < len(vals); i += step {
			part := vals[i:min(i+step, len(vals))]
			out := buf[:len(part)*size]
			if err := EncodeFloat32(dt, part, out); err != nil {
				return err
			}
			if _, err := w.Write(out); err != nil {
				return err
			}
		}
		return nil
	}
	return wt
}

// Convert returns a WriteTensor that re-encodes the float tensor name of f
// (F32, F16, BF16 or F64) to dt (F32, F16, BF16 or F64) while writing,
// streaming it in chunks of at most 1 MiB so that memory stays bounded
// whatever the tensor size. Rounding is to nearest even in one step (F64 to
// F16 does not round twice). The chunks are read with pread rather than
// through the mapping, so converting a large model does not grow the
// process's resident memory. When dt is the tensor's dtype it is FromFile.
func Convert(f *File, name string, dt DType) (WriteTensor, error) {
	t, err := f.lookup(name)
	if err != nil {
		return WriteTensor{}, err
	}
	if dt == t.DType {
		return FromFile(f, name)
	}
	if floatSize(t.DType) == 0 || floatSize(dt) == 0 {
		return WriteTensor{}, fmt.Errorf("%s: tensor %s: convert %s to %s: %w (Convert handles F32, F16, BF16 and F64)",
			f.path, quote(name), t.DType, dt, ErrUnsupportedDType)
	}
	size, err := dt.ByteSize(t.Shape)
	if err != nil {
		return WriteTensor{}, fmt.Errorf("%s: tensor %s: %w", f.path, quote(name), err)
	}
	return WriteTensor{
		Name:  t.Name,
		DType: dt,
		Shape: append([]int64{}, t.Shape...),
		Size:  size,
		Write: func(w io.Writer) error {
			if err := f.convertTo(w, t, dt); err != nil {
				return fmt.Errorf("convert from %s: %w", f.path, err)
			}
			return nil
		},
	}, nil
}

// convertTo streams tensor t of f, re-encoded to dt, to w.
func (f *File) convertTo(w io.Writer, t TensorInfo, dt DType) error {
	inSize, outSize := floatSize(t.DType), floatSize(dt)
	step := chunkBytes / max(inSize, outSize) // elements per chunk
	n := t.NumElements()
	chunk := int(min(n, int64(step)))
	in := make([]byte, chunk*inSize)
	out := make([]byte, chunk*outSize)
	var f32 []float32
	var f64 []float64
	half := (t.DType == F16 || t.DType == BF16) && (dt == F16 || dt == BF16)
	switch {
	case t.DType == F64:
		f64 = make([]float64, chunk)
	case half, littleEndian && (t.DType == F32 || dt == F32):
		// converted between in and out directly
	default:
		f32 = make([]float32, chunk)
	}
	w, err := unbuffered(w)
	if err != nil {
		return err
	}
	for done := int64(0); done < n; {
		k := int(min(n-done, int64(step)))
		src, dst := in[:k*inSize], out[:k*outSize]
		if _, err := f.readData(src, t.Offset+done*int64(inSize)); err != nil {
			return err
		}
		switch {
		case t.DType == F64:
			for i := range k {
				f64[i] = math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:]))
			}
			encodeFloat64(dt, f64[:k], dst)
		case convertHalf(t.DType, dt, src, dst):
		case t.DType == F32 && littleEndian: // encode straight from the bytes read
			if err := EncodeFloat32(dt, asF32(src), dst); err != nil {
				return err
			}
		case dt == F32 && littleEndian: // decode straight into the bytes to write
			if err := DecodeFloat32(t.DType, src, asF32(dst)); err != nil {
				return err
			}
		default:
			if err := DecodeFloat32(t.DType, src, f32[:k]); err != nil {
				return err
			}
			if err := EncodeFloat32(dt, f32[:k], dst); err != nil {
				return err
			}
		}
		if _, err := w.Write(dst); err != nil {
			return err
		}
		done += int64(k)
	}
	return nil
}

// asF32 views little-endian F32 bytes as float32 values (littleEndian
// machines only; b holds whole values).
func asF32(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// encodeFloat64 encodes src to dt (F32, F16, BF16, F64) rounding once. dst
// has the right length.
func encodeFloat64(dt DType, src []float64, dst []byte) {
	switch dt {
	case F64:
		for i, v := range src {
			binary.LittleEndian.PutUint64(dst[8*i:], math.Float64bits(v))
		}
	case F32:
		for i, v := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(float32(v)))
		}
	case F16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], Float64ToF16(v))
		}
	case BF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], Float64ToBF16(v))
		}
	}
}

// EncodeHeader returns the start of a safetensors file for the given
// metadata and tensors: the 8-byte little-endian header length followed by
// the header, compact JSON as the Hugging Face writers produce it
// ("__metadata__" first when meta is not nil, then the tensors in the given
// order with keys dtype, shape, data_offsets and offsets assigned in that
// order), padded with spaces to a multiple of 8 bytes. It checks that names
// are valid UTF-8, unique and not "__metadata__", that dtypes are known and
// that each Size matches its shape.
func EncodeHeader(meta Metadata, tensors []WriteTensor) ([]byte, error) {
	est := 16
	for _, e := range meta {
		est += len(e.Key) + len(e.Value) + 6
	}
	for _, t := range tensors {
		est += len(t.Name) + 80 + 8*len(t.Shape)
	}
	b := make([]byte, 8, 8+est)
	b = append(b, '{')
	if meta != nil {
		b = append(b, `"__metadata__":{`...)
		seen := make(map[string]struct{}, len(meta))
		for i, e := range meta {
			if _, dup := seen[e.Key]; dup {
				return nil, fmt.Errorf("%w: %w (key %s occurs twice)", ErrMetadata, ErrDuplicateName, quote(e.Key))
			}
			seen[e.Key] = struct{}{}
			if !utf8.ValidString(e.Key) || !utf8.ValidString(e.Value) {
				return nil, fmt.Errorf("%w: %w (key %s)", ErrMetadata, ErrInvalidUTF8, quote(e.Key))
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, e.Key)
			b = append(b, ':')
			b = appendJSONString(b, e.Value)
		}
		b = append(b, '}')
	}
	seen := make(map[string]struct{}, len(tensors))
	var off int64
	for i, t := range tensors {
		if t.err != nil {
			return nil, t.err
		}
		switch _, dup := seen[t.Name]; {
		case dup:
			return nil, fmt.Errorf("tensor %s: %w (two tensors have this name)", quote(t.Name), ErrDuplicateName)
		case t.Name == metadataKey:
			return nil, fmt.Errorf("tensor %s: %w (reserved name)", quote(t.Name), ErrInvalidHeader)
		case !utf8.ValidString(t.Name):
			return nil, fmt.Errorf("tensor %s: %w (name)", quote(t.Name), ErrInvalidUTF8)
		}
		seen[t.Name] = struct{}{}
		size, err := t.DType.ByteSize(t.Shape)
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w", quote(t.Name), err)
		}
		if size != t.Size {
			return nil, fmt.Errorf("tensor %s: %w (shape %s %s needs %d bytes, Size is %d)",
				quote(t.Name), ErrShapeMismatch, shapeString(t.Shape), t.DType, size, t.Size)
		}
		if off > math.MaxInt64-size {
			return nil, fmt.Errorf("tensor %s: %w (data offsets)", quote(t.Name), ErrOverflow)
		}
		if meta != nil || i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, t.Name)
		b = append(b, `:{"dtype":`...)
		b = appendJSONString(b, string(t.DType))
		b = append(b, `,"shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, d, 10)
		}
		b = append(b, `],"data_offsets":[`...)
		b = strconv.AppendInt(b, off, 10)
		b = append(b, ',')
		off += size
		b = strconv.AppendInt(b, off, 10)
		b = append(b, "]}"...)
	}
	b = append(b, '}')
	for len(b)%8 != 0 {
		b = append(b, ' ')
	}
	n := len(b) - 8
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("%w (header length %d > %d)", ErrHeaderTooLarge, n, MaxHeaderSize)
	}
	binary.LittleEndian.PutUint64(b[:8], uint64(n))
	return b, nil
}

// appendJSONString appends s as a JSON string escaped exactly as serde_json
// does: ", \ and the control characters below 0x20 (\b \f \n \r \t by name,
// the others as \u00xx), everything else, U+2028/U+2029 and DEL included,
// verbatim. s must be valid UTF-8.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// fileWriter is where WriteFile writes: the temporary file behind a
// buffer, with a count of the bytes that reached the file (its position),
// write-back of those bytes started as they come (see writeback), and the
// first error the file gave. Every byte goes through write or, for kernel
// copies, is reported to advance.
type fileWriter struct {
	f   *os.File
	bw  *bufio.Writer // over direct
	off int64         // bytes written to f
	wb  writeback
	err error // first error writing to f, without the temporary path
}

func newFileWriter(f *os.File) *fileWriter {
	fw := &fileWriter{f: f}
	fw.bw = bufio.NewWriterSize(directWriter{fw}, writeBufferSize)
	return fw
}

// testFullAt, when positive, makes every file WriteFile writes full at
// that size: writes and kernel copies past it fail with ENOSPC, as they
// would on a full disk, with the errors the os package gives. Tests only.
var testFullAt int64

// room returns how many of n bytes fit before testFullAt, and the error of
// a write or copy that ends there.
func (fw *fileWriter) room(n int64, op string) (int64, error) {
	if testFullAt <= 0 || fw.off+n <= testFullAt {
		return n, nil
	}
	room := max(testFullAt-fw.off, 0)
	if op == "write" {
		return room, &os.PathError{Op: op, Path: fw.f.Name(), Err: syscall.ENOSPC}
	}
	return room, fmt.Errorf("%s: %w", op, syscall.ENOSPC)
}

// write writes p to the file itself, bypassing the buffer (which the
// caller has flushed).
func (fw *fileWriter) write(p []byte) (int, error) {
	room, full := fw.room(int64(len(p)), "write")
	n, err := fw.f.Write(p[:room])
	if err == nil {
		err = full
	}
	fw.advance(int64(n))
	if err != nil {
		fw.fail(err)
	}
	return n, err
}

// advance records n more bytes in the file and starts their write-back.
func (fw *fileWriter) advance(n int64) {
	fw.off += n
	fw.wb.advance(fw.f, fw.off)
}

// fail keeps the first error of the file, without the temporary path the
// os package puts in it or the name of the system call (a kernel copy's
// "copy_file_range: no space left on device" is "no space left on device").
func (fw *fileWriter) fail(err error) {
	if fw.err != nil {
		return
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		fw.err = errno
	} else {
		fw.err = atomicfile.Cause(err)
	}
}

// directWriter is the buffer's way to the file.
type directWriter struct{ fw *fileWriter }

func (d directWriter) Write(p []byte) (int, error) { return d.fw.write(p) }

// tensorSink is the io.Writer WriteFile hands to each WriteTensor.Write: it
// buffers, counts and refuses bytes beyond Size, and lets CopyTensor reach
// the underlying file for a kernel copy.
type tensorSink struct {
	fw        *fileWriter
	size      int64
	remaining int64
}

// Write buffers p, failing without writing anything when p would exceed the
// tensor's Size.
func (s *tensorSink) Write(p []byte) (int, error) {
	if err := s.reserve(int64(len(p))); err != nil {
		return 0, err
	}
	n, err := s.fw.bw.Write(p)
	s.remaining -= int64(n)
	return n, err
}

// reserve fails when n more bytes would exceed the tensor's Size.
func (s *tensorSink) reserve(n int64) error {
	if n > s.remaining {
		return fmt.Errorf("%w (Write produced more than Size=%d bytes)", ErrWriteSize, s.size)
	}
	return nil
}

// copyFrom copies size bytes at offset off of src into the file, in the
// kernel when it can (in chunks, so that write-back starts as the copy
// goes), through the buffer otherwise.
func (s *tensorSink) copyFrom(src *os.File, off, size int64) (int64, error) {
	if err := s.reserve(size); err != nil {
		return 0, err
	}
	if err := s.fw.bw.Flush(); err != nil {
		return 0, err
	}
	var written int64
	for written < size {
		chunk, full := s.fw.room(min(size-written, copyChunk), "copy_file_range")
		n, err := kernelCopy(s.fw.f, src, off+written, chunk)
		if err == nil {
			err = full
		}
		written += n
		s.remaining -= n
		s.fw.advance(n)
		if err == errFallback {
			break
		}
		if err != nil {
			s.fw.fail(err)
			return written, err
		}
	}
	if written == size {
		return written, nil
	}
	n, err := io.Copy(s, io.NewSectionReader(src, off+written, size-written))
	return written + n, err
}

// copyChunk is the most a kernel copy into a WriteFile copies at once: a
// write-back chunk on Linux, so that write-back starts as the copy goes.
const copyChunk = 8 << 20

// unbuffered returns a writer for whole chunks: when w is the writer
// WriteFile hands to a WriteTensor, it flushes the buffer and returns a
// writer to the file itself that keeps w's byte accounting, so a chunk
// already in memory is not copied through the buffer; any other w is
// returned as is.
func unbuffered(w io.Writer) (io.Writer, error) {
	s, ok := w.(*tensorSink)
	if !ok {
		return w, nil
	}
	if err := s.fw.bw.Flush(); err != nil {
		return nil, err
	}
	return fileSink{s}, nil
}

// fileSink writes straight to a tensorSink's file (whose buffer is empty).
type fileSink struct{ s *tensorSink }

func (d fileSink) Write(p []byte) (int, error) {
	if err := d.s.reserve(int64(len(p))); err != nil {
		return 0, err
	}
	n, err := d.s.fw.write(p)
	d.s.remaining -= int64(n)
	return n, err
}

// WriteFile writes a safetensors file at path: the header from EncodeHeader,
// then each tensor's data, streamed in order through a buffered writer (a
// FromFile tensor is copied by the kernel). It writes to a temporary sibling
// file, fsyncs it and renames it into place (package atomicfile), so path is
// never seen half-written; on error the temporary file is removed and an
// existing file at path is left untouched. Writing over a file that
// is open (even the source of FromFile tensors) is safe: the open File keeps
// the old contents.
//
// On Linux, write-back of the data to the disk is started every 8 MB
// while writing (sync_file_range), so that the final fsync has little left
// to do: writing a file costs about the disk's time rather than the copy's
// time plus the disk's.
//
// Errors are *atomicfile.Error values naming path, the tensor being
// written and the cause, each once: `write DIR/model.safetensors: tensor
// "x": no space left on device`.
func WriteFile(path string, meta Metadata, tensors []WriteTensor) error {
	header, err := EncodeHeader(meta, tensors)
	if err != nil {
		return &atomicfile.Error{Path: path, Err: err}
	}
	return atomicfile.Write(path, func(f *os.File) error {
		fw := newFileWriter(f)
		fw.bw.Write(header) // an error stays in the buffer: seen at the first tensor or the final flush
		for _, t := range tensors {
			if t.Write == nil {
				return fmt.Errorf("tensor %s: nil Write function", quote(t.Name))
			}
			sink := &tensorSink{fw: fw, size: t.Size, remaining: t.Size}
			if err := t.Write(sink); err != nil {
				if fw.err != nil {
					err = fw.err // the file's own error, whatever Write made of it
				}
				return fmt.Errorf("tensor %s: %w", quote(t.Name), err)
			}
			if sink.remaining != 0 {
				return fmt.Errorf("tensor %s: %w (Write produced %d bytes, Size is %d)",
					quote(t.Name), ErrWriteSize, t.Size-sink.remaining, t.Size)
			}
		}
		if err := fw.bw.Flush(); err != nil {
			if fw.err != nil {
				err = fw.err
			}
			if len(tensors) > 0 {
				return fmt.Errorf("tensor %s: %w", quote(tensors[len(tensors)-1].Name), err)
			}
			return err
		}
		return nil
	})
}
