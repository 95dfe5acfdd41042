package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sync"
)

// File is an open, validated safetensors file. Its data section is memory
// mapped read-only (read into memory on platforms without mmap); the
// *os.File is kept for streaming copies.
//
// A File is safe for concurrent use by multiple goroutines: all reads use
// explicit offsets (pread, copy_file_range, sendfile), never the shared file
// position. Close waits for copies and conversions in progress; slices
// returned by Bytes must not be used after Close.
type File struct {
	path       string
	size       int64
	dataOffset int64
	header     *Header
	index      map[string]int

	mu     sync.RWMutex // guards f and data against Close
	f      *os.File
	data   []byte // the whole file, mapped; nil when the file has no data
	mapped bool   // data must be unmapped (false for the read fallback)
	closed bool
}

// Open opens the safetensors file at path read-only, validates it (see the
// package documentation for the rules) and maps it into memory. Errors wrap
// the sentinel of the rule that failed and name path and, where there is one,
// the tensor.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file (%s)", path, st.Mode().Type())
	}
	h, dataOffset, err := readHeader(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sf := &File{
		path:       path,
		size:       st.Size(),
		dataOffset: dataOffset,
		header:     h,
		index:      make(map[string]int, len(h.Tensors)),
		f:          f,
	}
	for i, t := range h.Tensors {
		sf.index[t.Name] = i
	}
	if sf.size > dataOffset {
		data, mapped, err := mapFile(f, sf.size)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: map: %w", path, err)
		}
		sf.data, sf.mapped = data, mapped
	}
	return sf, nil
}

// readHeader reads and validates the length prefix and header of a file of
// the given size. It returns the parsed header and the absolute offset of the
// data section.
func readHeader(r io.ReaderAt, size int64) (*Header, int64, error) {
	if size < 8 {
		return nil, 0, fmt.Errorf("%w (%d bytes, shorter than the 8-byte header length)", ErrTruncated, size)
	}
	var prefix [8]byte
	if _, err := r.ReadAt(prefix[:], 0); err != nil {
		return nil, 0, fmt.Errorf("read header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(prefix[:])
	if n > MaxHeaderSize {
		return nil, 0, fmt.Errorf("%w (header length %d > %d)", ErrHeaderTooLarge, n, MaxHeaderSize)
	}
	if 8+int64(n) > size {
		return nil, 0, fmt.Errorf("%w (header length %d, but the file has %d bytes after the length)", ErrHeaderLength, n, size-8)
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, 8); err != nil {
		return nil, 0, fmt.Errorf("read header: %w", err)
	}
	h, err := ParseHeader(buf, size-8-int64(n))
	if err != nil {
		return nil, 0, err
	}
	return h, 8 + int64(n), nil
}

// Path returns the path the File was opened with.
func (f *File) Path() string { return f.path }

// Size returns the size of the file in bytes.
func (f *File) Size() int64 { return f.size }

// DataOffset returns the absolute offset of the data section, 8+N.
func (f *File) DataOffset() int64 { return f.dataOffset }

// Metadata returns the "__metadata__" entries in header order (nil when the
// header has none). The caller may modify the returned slice.
func (f *File) Metadata() Metadata {
	if f.header.Metadata == nil {
		return nil
	}
	return append(Metadata{}, f.header.Metadata...)
}

// Tensors returns every tensor in data-offset order. The result is a copy the
// caller may modify.
func (f *File) Tensors() []TensorInfo {
	out := make([]TensorInfo, len(f.header.Tensors))
	for i, t := range f.header.Tensors {
		out[i] = cloneInfo(t)
	}
	return out
}

// Tensor returns the tensor called name.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.index[name]
	if !ok {
		return TensorInfo{}, false
	}
	return cloneInfo(f.header.Tensors[i]), true
}

func cloneInfo(t TensorInfo) TensorInfo {
	t.Shape = append([]int64{}, t.Shape...)
	return t
}

// Close unmaps and closes the file. It waits for copies in progress. Slices
// returned by Bytes become invalid. Closing twice returns ErrClosed.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("%s: %w", f.path, ErrClosed)
	}
	f.closed = true
	var errs []error
	if f.mapped {
		if err := unmapFile(f.data); err != nil {
			errs = append(errs, fmt.Errorf("%s: unmap: %w", f.path, err))
		}
	}
	f.data = nil
	if err := f.f.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// lookup returns the tensor called name, or an ErrNotFound error.
func (f *File) lookup(name string) (TensorInfo, error) {
	i, ok := f.index[name]
	if !ok {
		return TensorInfo{}, fmt.Errorf("%s: tensor %s: %w", f.path, quote(name), ErrNotFound)
	}
	return f.header.Tensors[i], nil
}

// Bytes returns the raw little-endian bytes of tensor name: a zero-copy,
// read-only view into the mapping (writing to it faults). The slice is valid
// until Close.
func (f *File) Bytes(name string) ([]byte, error) {
	t, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, fmt.Errorf("%s: %w", f.path, ErrClosed)
	}
	return f.view(t), nil
}

// view returns the bytes of t from the mapping. The caller holds f.mu.
func (f *File) view(t TensorInfo) []byte {
	if t.Size == 0 {
		return []byte{}
	}
	start := f.dataOffset + t.Offset
	end := start + t.Size
	return f.data[start:end:end]
}

// Float32s decodes tensor name (F32, F16, BF16 or F64) into a new []float32.
// Other dtypes fail with ErrUnsupportedDType.
func (f *File) Float32s(name string) ([]float32, error) {
	t, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if floatSize(t.DType) == 0 {
		return nil, fmt.Errorf("%s: tensor %s: %w (%s; Float32s decodes F32, F16, BF16 and F64)",
			f.path, quote(name), ErrUnsupportedDType, t.DType)
	}
	out := make([]float32, t.NumElements())
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, fmt.Errorf("%s: %w", f.path, ErrClosed)
	}
	err = guardFault(func() error { return DecodeFloat32(t.DType, f.view(t), out) })
	if err != nil {
		return nil, fmt.Errorf("%s: tensor %s: %w", f.path, quote(name), err)
	}
	return out, nil
}

// guardFault runs fn, turning a memory fault (for instance SIGBUS on a mapped
// file truncated by another process) into an error instead of a crash.
func guardFault(fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); ok {
				err = fmt.Errorf("%w (memory fault reading the mapping: was the file truncated?)", ErrTruncated)
				return
			}
			panic(r)
		}
	}()
	return fn()
}

// ReadAt implements io.ReaderAt over the data section: it reads len(p)
// bytes starting at off (relative to the data section, like
// TensorInfo.Offset) with pread, without touching the mapping, and returns
// io.EOF at the end of the file. It is safe for concurrent use.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.pread(p, off)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: %w", f.path, err)
	}
	return n, err
}

// readData is ReadAt for internal callers: a short read is an ErrTruncated.
func (f *File) readData(p []byte, off int64) (int, error) {
	n, err := f.pread(p, off)
	if err == io.EOF && n < len(p) {
		err = fmt.Errorf("%w (short read: %d of %d bytes)", ErrTruncated, n, len(p))
	}
	return n, err
}

func (f *File) pread(p []byte, off int64) (int, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("read at %d: negative offset", off)
	}
	return f.f.ReadAt(p, f.dataOffset+off)
}

// CopyTensor writes the bytes of tensor name to w and returns the number of
// bytes written. It reads the file with explicit offsets, never through the
// mapping, so the copied data does not count against the process's resident
// memory. When w is an *os.File (or the writer WriteFile hands to a
// WriteTensor) the copy is done by the kernel (copy_file_range, else
// sendfile, on Linux) at w's current position, without user-space buffers.
// It is safe to call concurrently on the same File (with different
// writers).
func (f *File) CopyTensor(w io.Writer, name string) (int64, error) {
	t, err := f.lookup(name)
	if err != nil {
		return 0, err
	}
	n, err := f.copyTensor(w, t)
	if err != nil {
		return n, fmt.Errorf("%s: tensor %s: copy: %w", f.path, quote(name), err)
	}
	return n, nil
}

// copyTensor is CopyTensor of t, with errors that name neither the file nor
// the tensor.
func (f *File) copyTensor(w io.Writer, t TensorInfo) (int64, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return 0, ErrClosed
	}
	n, err := f.copyRange(w, f.dataOffset+t.Offset, t.Size)
	if err == nil && n != t.Size {
		err = fmt.Errorf("%w (copied %d of %d bytes)", ErrTruncated, n, t.Size)
	}
	return n, err
}

// copyRange copies size bytes at absolute offset off of the file to w. The
// caller holds f.mu.
func (f *File) copyRange(w io.Writer, off, size int64) (int64, error) {
	var written int64
	switch d := w.(type) {
	case *os.File:
		n, err := kernelCopy(d, f.f, off, size)
		if err != errFallback {
			return n, err
		}
		written = n
	case *tensorSink:
		return d.copyFrom(f.f, off, size)
	}
	n, err := io.Copy(w, io.NewSectionReader(f.f, off+written, size-written))
	return written + n, err
}
