package data

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/ssmax/ssmax/internal/atomicfile"
)

// TokenFormat is the layout of a token file.
type TokenFormat int

const (
	// FormatAuto recognises llm.c files by their magic and treats anything
	// else as nanoGPT, except a file that looks like llm.c with a damaged
	// magic (valid version and a matching token count), which is an error.
	FormatAuto TokenFormat = iota
	// FormatLLMC is llm.c's layout: a header of 256 little-endian int32
	// (magic, version, token count, unused), then the tokens: uint16 for
	// magic 20240520 version 1, uint32 for magic 20240801 version 2.
	FormatLLMC
	// FormatNanoGPT is nanoGPT's layout: flat little-endian uint16 tokens,
	// no header.
	FormatNanoGPT
)

// String returns "auto", "llm.c" or "nanogpt".
func (f TokenFormat) String() string {
	switch f {
	case FormatLLMC:
		return "llm.c"
	case FormatNanoGPT:
		return "nanogpt"
	}
	return "auto"
}

const (
	llmcMagicV1     = 20240520 // version 1: uint16 tokens
	llmcMagicV2     = 20240801 // version 2: uint32 tokens
	llmcHeaderInts  = 256
	llmcHeaderBytes = llmcHeaderInts * 4
)

// TokenSource is a read-only sequence of token ids.
type TokenSource interface {
	// Len is the number of tokens.
	Len() int
	// Read copies the tokens [off, off+len(dst)) into dst; the range must
	// lie within [0, Len()).
	Read(dst []int, off int)
}

// IntTokens is an in-memory TokenSource.
type IntTokens []int

// Len returns len(t).
func (t IntTokens) Len() int { return len(t) }

// Read copies t[off:off+len(dst)] into dst.
func (t IntTokens) Read(dst []int, off int) { copy(dst, t[off:off+len(dst)]) }

// uint32Tokens is the compact in-memory TokenSource of tokenized text.
type uint32Tokens []uint32

func (t uint32Tokens) Len() int { return len(t) }
func (t uint32Tokens) Read(dst []int, off int) {
	for i, v := range t[off : off+len(dst)] {
		dst[i] = int(v)
	}
}

// TokenFile is a memory-mapped, read-only token file (read into memory on
// systems without mmap: mmap_other.go). It is a TokenSource and is safe
// for concurrent reads; Close unmaps it.
type TokenFile struct {
	path   string
	format TokenFormat
	mapped []byte // the whole mapping
	toks   []byte // the token bytes
	width  int    // 2 or 4
	n      int
}

// OpenTokenFile memory-maps a token file of the given format, validating
// its header and size. Errors name the file.
func OpenTokenFile(path string, format TokenFormat) (*TokenFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size == 0 {
		return nil, fmt.Errorf("%s: empty token file", path)
	}
	if size > math.MaxInt {
		return nil, fmt.Errorf("%s: too large to map", path)
	}
	mapped, err := mapFile(f, int(size))
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	tf := &TokenFile{path: path, mapped: mapped}
	if err := tf.parse(format); err != nil {
		_ = unmapFile(mapped)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tf, nil
}

func (f *TokenFile) parse(format TokenFormat) error {
	b := f.mapped
	hdr := func(i int) int64 { return int64(int32(binary.LittleEndian.Uint32(b[4*i:]))) }
	if format == FormatAuto {
		format = FormatNanoGPT
		if len(b) >= 4 && (hdr(0) == llmcMagicV1 || hdr(0) == llmcMagicV2) {
			format = FormatLLMC
		} else if len(b) >= llmcHeaderBytes {
			if v := hdr(1); v == 1 || v == 2 {
				if n := hdr(2); n >= 0 && llmcHeaderBytes+n*2*v == int64(len(b)) {
					return fmt.Errorf("llm.c header with bad magic %d (want %d or %d)", hdr(0), llmcMagicV1, llmcMagicV2)
				}
			}
		}
	}
	f.format = format
	switch format {
	case FormatNanoGPT:
		if len(b)%2 != 0 {
			return fmt.Errorf("nanoGPT token file size %d is not a multiple of 2", len(b))
		}
		f.toks, f.width, f.n = b, 2, len(b)/2
		return nil
	case FormatLLMC:
	default:
		return fmt.Errorf("unknown token format %d", format)
	}
	if len(b) < llmcHeaderBytes {
		return fmt.Errorf("truncated llm.c header: %d bytes, want at least %d", len(b), llmcHeaderBytes)
	}
	magic, version, count := hdr(0), hdr(1), hdr(2)
	switch {
	case magic == llmcMagicV1 && version == 1:
		f.width = 2
	case magic == llmcMagicV2 && version == 2:
		f.width = 4
	case magic == llmcMagicV1 || magic == llmcMagicV2:
		return fmt.Errorf("llm.c magic %d with unsupported version %d", magic, version)
	default:
		return fmt.Errorf("bad llm.c magic %d (want %d or %d)", magic, llmcMagicV1, llmcMagicV2)
	}
	have := int64(len(b) - llmcHeaderBytes)
	if count < 0 || count*int64(f.width) != have {
		return fmt.Errorf("llm.c header says %d tokens (%d bytes) but the file has %d token bytes", count, count*int64(f.width), have)
	}
	f.toks, f.n = b[llmcHeaderBytes:], int(count)
	return nil
}

// Len returns the number of tokens.
func (f *TokenFile) Len() int { return f.n }

// At returns token i.
func (f *TokenFile) At(i int) int {
	if f.width == 2 {
		return int(binary.LittleEndian.Uint16(f.toks[2*i:]))
	}
	return int(binary.LittleEndian.Uint32(f.toks[4*i:]))
}

// Read copies tokens [off, off+len(dst)) into dst.
func (f *TokenFile) Read(dst []int, off int) {
	if off < 0 || off+len(dst) > f.n {
		panic(fmt.Sprintf("%s: read [%d, %d) outside %d tokens", f.path, off, off+len(dst), f.n))
	}
	if f.width == 2 {
		b := f.toks[2*off : 2*(off+len(dst))]
		for i := range dst {
			dst[i] = int(binary.LittleEndian.Uint16(b[2*i:]))
		}
		return
	}
	b := f.toks[4*off : 4*(off+len(dst))]
	for i := range dst {
		dst[i] = int(binary.LittleEndian.Uint32(b[4*i:]))
	}
}

// Path returns the file's path.
func (f *TokenFile) Path() string { return f.path }

// Format returns the file's layout (never FormatAuto).
func (f *TokenFile) Format() TokenFormat { return f.format }

// Close unmaps the file; the TokenFile must not be used afterwards.
func (f *TokenFile) Close() error {
	if f.mapped == nil {
		return nil
	}
	err := unmapFile(f.mapped)
	f.mapped, f.toks, f.n = nil, nil, 0
	if err != nil {
		return fmt.Errorf("%s: munmap: %w", f.path, err)
	}
	return nil
}

// TokenWriter streams tokens into an llm.c token file. It writes to a
// temporary sibling of the destination and renames it on Close.
type TokenWriter struct {
	path      string
	f         *atomicfile.File
	w         *bufio.Writer
	width     int
	vocabSize int
	n         int64
	buf       []byte
}

// CreateTokenFile starts an llm.c token file: version 1 (uint16) when
// vocabSize ≤ 65536, else version 2 (uint32).
func CreateTokenFile(path string, vocabSize int) (*TokenWriter, error) {
	if vocabSize <= 0 || int64(vocabSize) > 1<<32 {
		return nil, fmt.Errorf("%s: invalid vocab size %d", path, vocabSize)
	}
	f, err := atomicfile.Create(path)
	if err != nil {
		return nil, err
	}
	w := &TokenWriter{path: path, f: f, w: bufio.NewWriterSize(f, 1<<20), width: 4, vocabSize: vocabSize}
	if vocabSize <= 1<<16 {
		w.width = 2
	}
	if _, err := w.w.Write(make([]byte, llmcHeaderBytes)); err != nil {
		w.Abort()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return w, nil
}

// Write appends tokens; each must be in [0, vocabSize).
func (w *TokenWriter) Write(tokens []int) error {
	if w.f == nil {
		return fmt.Errorf("%s: write after close", w.path)
	}
	if w.n+int64(len(tokens)) > math.MaxInt32 {
		return fmt.Errorf("%s: more than %d tokens do not fit an llm.c header", w.path, math.MaxInt32)
	}
	w.buf = w.buf[:0]
	for i, t := range tokens {
		if t < 0 || t >= w.vocabSize {
			return fmt.Errorf("%s: token %d at position %d outside vocab size %d", w.path, t, w.n+int64(i), w.vocabSize)
		}
		if w.width == 2 {
			w.buf = binary.LittleEndian.AppendUint16(w.buf, uint16(t))
		} else {
			w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(t))
		}
	}
	if _, err := w.w.Write(w.buf); err != nil {
		return fmt.Errorf("%s: %w", w.path, err)
	}
	w.n += int64(len(tokens))
	return nil
}

// Count returns the number of tokens written so far.
func (w *TokenWriter) Count() int64 { return w.n }

// Close writes the header, syncs, and renames the file into place
// (package atomicfile).
func (w *TokenWriter) Close() error {
	if w.f == nil {
		return fmt.Errorf("%s: already closed", w.path)
	}
	hdr := make([]byte, llmcHeaderBytes)
	magic, version := uint32(llmcMagicV1), uint32(1)
	if w.width == 4 {
		magic, version = llmcMagicV2, 2
	}
	binary.LittleEndian.PutUint32(hdr[0:], magic)
	binary.LittleEndian.PutUint32(hdr[4:], version)
	binary.LittleEndian.PutUint32(hdr[8:], uint32(w.n))
	err := w.w.Flush()
	if err == nil {
		_, err = w.f.WriteAt(hdr, 0)
	}
	if err != nil {
		w.Abort()
		return fmt.Errorf("%s: %w", w.path, err)
	}
	f := w.f
	w.f = nil
	return f.Commit()
}

// Abort discards the temporary file. It is a no-op after Close.
func (w *TokenWriter) Abort() {
	if w.f == nil {
		return
	}
	w.f.Abort()
	w.f = nil
}

// WriteTokenFile writes tokens as an llm.c token file (see CreateTokenFile),
// atomically replacing path.
func WriteTokenFile(path string, tokens []int, vocabSize int) error {
	w, err := CreateTokenFile(path, vocabSize)
	if err != nil {
		return err
	}
	if err := w.Write(tokens); err != nil {
		w.Abort()
		return err
	}
	return w.Close()
}

// ErrEmptyCorpus is returned (wrapped with the input's name) when a corpus
// yields no tokens.
var ErrEmptyCorpus = errors.New("empty corpus")
