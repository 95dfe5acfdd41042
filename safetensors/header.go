package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxHeaderSize is the largest header length N accepted, as in the reference
// implementation.
const MaxHeaderSize = 100_000_000

// metadataKey is the reserved top-level key of the header.
const metadataKey = "__metadata__"

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int64
	// Offset is the position of the first byte relative to the start of the
	// data section; Size the number of bytes (data_offsets = [Offset,
	// Offset+Size]).
	Offset, Size int64
}

// NumElements returns the number of elements (1 for a scalar), or -1 when the
// shape has a negative dimension or the count overflows an int64 (never the
// case for a TensorInfo read from a validated file).
func (t TensorInfo) NumElements() int64 {
	n, err := NumElements(t.Shape)
	if err != nil {
		return -1
	}
	return n
}

// MetadataEntry is one key/value pair of the "__metadata__" object.
type MetadataEntry struct{ Key, Value string }

// Metadata is the "__metadata__" object in header order, so that a file read
// and written again is byte-identical. A nil Metadata means the header has no
// "__metadata__" key; a non-nil empty one is written as "__metadata__":{}.
type Metadata []MetadataEntry

// Get returns the value for key.
func (m Metadata) Get(key string) (string, bool) {
	for _, e := range m {
		if e.Key == key {
			return e.Value, true
		}
	}
	return "", false
}

// With returns a copy of m with key set to value: replaced in place when the
// key exists, appended otherwise. m itself is not modified.
func (m Metadata) With(key, value string) Metadata {
	out := make(Metadata, len(m), len(m)+1)
	copy(out, m)
	for i := range out {
		if out[i].Key == key {
			out[i].Value = value
			return out
		}
	}
	return append(out, MetadataEntry{key, value})
}

// Header is a parsed and validated safetensors header.
type Header struct {
	// Metadata is the "__metadata__" object, nil when absent.
	Metadata Metadata
	// Tensors are in data-offset order (ties, which only zero-size tensors
	// can have, in header order).
	Tensors []TensorInfo
}

// ParseHeader parses and validates the JSON header of a safetensors file,
// given the size of the data section that follows it (file size - 8 - N).
// The header may carry trailing whitespace padding. The checks, in order,
// are described in the package documentation; every failure wraps one of
// the package's sentinel errors. ParseHeader never panics, whatever its
// input, and the returned Header holds no reference to header.
func ParseHeader(header []byte, dataSize int64) (*Header, error) {
	if dataSize < 0 {
		return nil, fmt.Errorf("%w (negative data section size %d)", ErrTruncated, dataSize)
	}
	if !utf8.Valid(header) {
		return nil, fmt.Errorf("%w (invalid byte at offset %d)", ErrInvalidUTF8, invalidUTF8At(header))
	}
	if len(header) == 0 || header[0] != '{' {
		return nil, fmt.Errorf("%w (header does not start with '{')", ErrInvalidHeader)
	}
	if !json.Valid(header) {
		// Unmarshal repeats the syntax check to tell where it fails.
		var v struct{}
		detail := "not valid JSON"
		if err := json.Unmarshal(header, &v); err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				detail = fmt.Sprintf("not valid JSON: %v at offset %d", se, se.Offset)
			}
		}
		return nil, fmt.Errorf("%w (%s)", ErrInvalidHeader, detail)
	}
	p := headerParser{s: scanner{buf: header}}
	h, err := p.parse()
	if err != nil {
		return nil, err
	}
	if err := validateRanges(h.Tensors, dataSize); err != nil {
		return nil, err
	}
	return h, nil
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// validateRanges sorts tensors by data offsets and checks that they tile the
// data section exactly.
func validateRanges(ts []TensorInfo, dataSize int64) error {
	// Stable, so equal ranges (zero-size tensors) keep header order.
	slices.SortStableFunc(ts, func(a, b TensorInfo) int {
		if a.Offset != b.Offset {
			if a.Offset < b.Offset {
				return -1
			}
			return 1
		}
		switch {
		case a.Size < b.Size:
			return -1
		case a.Size > b.Size:
			return 1
		}
		return 0
	})
	var pos int64
	prev := ""
	for i, t := range ts {
		switch {
		case t.Offset > pos && i == 0:
			return fmt.Errorf("tensor %s: %w (data begins at %d, the first tensor must begin at 0)",
				quote(t.Name), ErrGap, t.Offset)
		case t.Offset > pos:
			return fmt.Errorf("tensor %s: %w (data begins at %d, %d bytes after the end of tensor %s)",
				quote(t.Name), ErrGap, t.Offset, t.Offset-pos, quote(prev))
		case t.Offset < pos:
			return fmt.Errorf("tensor %s: %w (data [%d, %d] begins before the end %d of tensor %s)",
				quote(t.Name), ErrOverlap, t.Offset, t.Offset+t.Size, pos, quote(prev))
		}
		pos = t.Offset + t.Size
		prev = t.Name
	}
	for _, t := range ts {
		if end := t.Offset + t.Size; end > dataSize {
			return fmt.Errorf("tensor %s: %w (data [%d, %d] ends past the data section of %d bytes)",
				quote(t.Name), ErrTruncated, t.Offset, end, dataSize)
		}
	}
	if pos < dataSize {
		if len(ts) == 0 {
			return fmt.Errorf("%w (%d bytes of data but no tensors)", ErrTrailingBytes, dataSize)
		}
		return fmt.Errorf("%w (%d bytes after tensor %s, which ends at %d of %d)",
			ErrTrailingBytes, dataSize-pos, quote(prev), pos, dataSize)
	}
	return nil
}

// headerParser walks a header already known to be valid JSON and checks it
// against the safetensors schema. It still never assumes validity: any
// unexpected byte is an ErrInvalidHeader rather than a panic.
type headerParser struct {
	s scanner
}

func (p *headerParser) parse() (*Header, error) {
	h := &Header{}
	s := &p.s
	if err := s.expect('{'); err != nil {
		return nil, err
	}
	seen := make(map[string]struct{})
	err := s.members(func(key string) error {
		if _, dup := seen[key]; dup {
			if key == metadataKey {
				return fmt.Errorf("%w: %w (%q occurs twice)", ErrMetadata, ErrDuplicateName, metadataKey)
			}
			return fmt.Errorf("tensor %s: %w (tensor name occurs twice in the header)", quote(key), ErrDuplicateName)
		}
		seen[key] = struct{}{}
		if key == metadataKey {
			m, err := p.parseMetadata()
			if err != nil {
				return err
			}
			h.Metadata = m
			return nil
		}
		t, err := p.parseTensor(key)
		if err != nil {
			return err
		}
		h.Tensors = append(h.Tensors, t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.skipWS()
	if s.pos != len(s.buf) {
		return nil, fmt.Errorf("%w (unexpected data after the header object at offset %d)", ErrInvalidHeader, s.pos)
	}
	return h, nil
}

func (p *headerParser) parseMetadata() (Metadata, error) {
	s := &p.s
	s.skipWS()
	if s.peek() != '{' {
		return nil, fmt.Errorf("%w (%q is %s, not an object)", ErrMetadata, metadataKey, s.kind())
	}
	s.pos++
	m := Metadata{}
	seen := make(map[string]struct{})
	err := s.members(func(key string) error {
		if _, dup := seen[key]; dup {
			return fmt.Errorf("%w: %w (key %s occurs twice)", ErrMetadata, ErrDuplicateName, quote(key))
		}
		seen[key] = struct{}{}
		s.skipWS()
		if s.peek() != '"' {
			return fmt.Errorf("%w (value of key %s is %s, not a string)", ErrMetadata, quote(key), s.kind())
		}
		val, err := s.readString()
		if err != nil {
			return err
		}
		m = append(m, MetadataEntry{key, val})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (p *headerParser) parseTensor(name string) (TensorInfo, error) {
	s := &p.s
	t := TensorInfo{Name: name}
	s.skipWS()
	if s.peek() != '{' {
		return t, fmt.Errorf("tensor %s: %w (entry is %s, not an object)", quote(name), ErrInvalidHeader, s.kind())
	}
	s.pos++
	var haveDType, haveShape, haveOffsets bool
	var begin, end int64
	err := s.members(func(key string) error {
		var dup bool
		switch key {
		case "dtype":
			dup, haveDType = haveDType, true
		case "shape":
			dup, haveShape = haveShape, true
		case "data_offsets":
			dup, haveOffsets = haveOffsets, true
		default:
			return fmt.Errorf("tensor %s: %w (unknown key %s)", quote(name), ErrInvalidHeader, quote(key))
		}
		if dup {
			return fmt.Errorf("tensor %s: %w: %w (key %q occurs twice)", quote(name), ErrInvalidHeader, ErrDuplicateName, key)
		}
		s.skipWS()
		switch key {
		case "dtype":
			if s.peek() != '"' {
				return fmt.Errorf("tensor %s: %w (dtype is %s, not a string)", quote(name), ErrUnknownDType, s.kind())
			}
			d, err := s.readString()
			if err != nil {
				return err
			}
			t.DType = DType(d)
			if !t.DType.Valid() {
				return fmt.Errorf("tensor %s: %w (%s)", quote(name), ErrUnknownDType, quote(d))
			}
		case "shape":
			shape, err := s.readIntArray(name, "shape", ErrShapeMismatch, ErrOverflow, -1)
			if err != nil {
				return err
			}
			t.Shape = shape
		case "data_offsets":
			offs, err := s.readIntArray(name, "data_offsets", ErrOffsets, ErrOffsets, 2)
			if err != nil {
				return err
			}
			begin, end = offs[0], offs[1]
			if begin > end {
				return fmt.Errorf("tensor %s: %w (begin %d > end %d)", quote(name), ErrOffsets, begin, end)
			}
		}
		return nil
	})
	if err != nil {
		return t, err
	}
	var missing string
	switch {
	case !haveDType:
		missing = "dtype"
	case !haveShape:
		missing = "shape"
	case !haveOffsets:
		missing = "data_offsets"
	}
	if missing != "" {
		return t, fmt.Errorf("tensor %s: %w (missing key %q)", quote(name), ErrInvalidHeader, missing)
	}
	size, err := t.DType.ByteSize(t.Shape)
	if err != nil {
		return t, fmt.Errorf("tensor %s: %w", quote(name), err)
	}
	t.Offset, t.Size = begin, end-begin
	if size != t.Size {
		return t, fmt.Errorf("tensor %s: %w (shape %s %s needs %d bytes, data_offsets [%d, %d] have %d)",
			quote(name), ErrShapeMismatch, shapeString(t.Shape), t.DType, size, begin, end, t.Size)
	}
	return t, nil
}

// members reads the members of an object whose '{' has been consumed, up
// to and including its '}': for each, the key and the ':' after it, then
// fn(key), which must read the value.
func (s *scanner) members(fn func(key string) error) error {
	for first := true; ; first = false {
		s.skipWS()
		if s.peek() == '}' {
			s.pos++
			return nil
		}
		if !first {
			if err := s.expect(','); err != nil {
				return err
			}
			s.skipWS()
		}
		key, err := s.readString()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := fn(key); err != nil {
			return err
		}
	}
}

// scanner is a minimal JSON tokenizer over a byte slice.
type scanner struct {
	buf []byte
	pos int
}

func (s *scanner) skipWS() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the byte at the current position, 0 at the end.
func (s *scanner) peek() byte {
	if s.pos < len(s.buf) {
		return s.buf[s.pos]
	}
	return 0
}

func (s *scanner) expect(c byte) error {
	s.skipWS()
	if s.peek() != c {
		return s.syntaxErr(fmt.Sprintf("expected %q", c))
	}
	s.pos++
	return nil
}

func (s *scanner) syntaxErr(what string) error {
	if s.pos >= len(s.buf) {
		return fmt.Errorf("%w (%s at end of header)", ErrInvalidHeader, what)
	}
	return fmt.Errorf("%w (%s at offset %d, found %q)", ErrInvalidHeader, what, s.pos, s.buf[s.pos])
}

// kind names the JSON value starting at the current position, for messages.
func (s *scanner) kind() string {
	switch c := s.peek(); {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	}
	return "not a JSON value"
}

// readString reads a JSON string at the current position and returns its
// decoded value (always a fresh copy). Lone UTF-16 surrogates in \u escapes
// are rejected, as serde_json does.
func (s *scanner) readString() (string, error) {
	if s.peek() != '"' {
		return "", s.syntaxErr("expected a string")
	}
	s.pos++
	start := s.pos
	// Fast path: no escapes.
	for i := start; i < len(s.buf); i++ {
		switch c := s.buf[i]; {
		case c == '"':
			s.pos = i + 1
			return string(s.buf[start:i]), nil
		case c == '\\':
			return s.readEscapedString(start)
		case c < 0x20:
			s.pos = i
			return "", s.syntaxErr("control character in string")
		}
	}
	s.pos = len(s.buf)
	return "", s.syntaxErr("unterminated string")
}

func (s *scanner) readEscapedString(start int) (string, error) {
	// Size the buffer by the string's encoded length (an upper bound of the
	// decoded one), not by the rest of the header, to stay linear.
	end := start
	for end < len(s.buf) && s.buf[end] != '"' {
		if s.buf[end] == '\\' {
			end++
		}
		end++
	}
	out := make([]byte, 0, min(end, len(s.buf))-start)
	i := start
	for i < len(s.buf) {
		c := s.buf[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return string(out), nil
		case c < 0x20:
			s.pos = i
			return "", s.syntaxErr("control character in string")
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(s.buf) {
			break
		}
		e := s.buf[i+1]
		i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(s.buf, i)
			if !ok {
				s.pos = i
				return "", s.syntaxErr("invalid \\u escape")
			}
			i += 4
			if utf16.IsSurrogate(r) {
				var r2 rune = -1
				if r < 0xdc00 && i+1 < len(s.buf) && s.buf[i] == '\\' && s.buf[i+1] == 'u' {
					r2, ok = hex4(s.buf, i+2)
					if !ok {
						r2 = -1
					}
				}
				dec := utf16.DecodeRune(r, r2)
				if dec == utf8.RuneError {
					s.pos = i - 6
					return "", s.syntaxErr("lone UTF-16 surrogate in \\u escape")
				}
				i += 6
				r = dec
			}
			out = utf8.AppendRune(out, r)
		default:
			s.pos = i - 1
			return "", s.syntaxErr("invalid escape")
		}
	}
	s.pos = len(s.buf)
	return "", s.syntaxErr("unterminated string")
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// readNumber returns the text of the JSON number at the current position.
func (s *scanner) readNumber() []byte {
	start := s.pos
	for s.pos < len(s.buf) {
		switch c := s.buf[s.pos]; {
		case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
			s.pos++
			continue
		}
		break
	}
	return s.buf[start:s.pos]
}

// readIntArray reads an array of non-negative int64 values for field of
// tensor name. Entries that are not non-negative integers fail with errType,
// integers too large for an int64 with errRange. want >= 0 requires exactly
// that many entries (errType otherwise).
func (s *scanner) readIntArray(name, field string, errType, errRange error, want int) ([]int64, error) {
	if s.peek() != '[' {
		return nil, fmt.Errorf("tensor %s: %w (%s is %s, not an array)", quote(name), errType, field, s.kind())
	}
	s.pos++
	vals := []int64{}
	for first := true; ; first = false {
		s.skipWS()
		if s.peek() == ']' {
			s.pos++
			break
		}
		if !first {
			if err := s.expect(','); err != nil {
				return nil, err
			}
			s.skipWS()
		}
		c := s.peek()
		if c != '-' && (c < '0' || c > '9') {
			return nil, fmt.Errorf("tensor %s: %w (%s entry %d is %s, not an integer)", quote(name), errType, field, len(vals), s.kind())
		}
		num := s.readNumber()
		if len(num) == 0 {
			return nil, s.syntaxErr("expected a number")
		}
		if num[0] == '-' {
			return nil, fmt.Errorf("tensor %s: %w (%s entry %d is negative: %s)", quote(name), errType, field, len(vals), quote(string(num)))
		}
		for _, d := range num {
			if d < '0' || d > '9' {
				return nil, fmt.Errorf("tensor %s: %w (%s entry %d is not an integer: %s)", quote(name), errType, field, len(vals), quote(string(num)))
			}
		}
		v, err := strconv.ParseInt(string(num), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("tensor %s: %w (%s entry %d does not fit in an int64: %s)", quote(name), errRange, field, len(vals), quote(string(num)))
		}
		vals = append(vals, v)
	}
	if want >= 0 && len(vals) != want {
		return nil, fmt.Errorf("tensor %s: %w (%s has %d entries, want %d)", quote(name), errType, field, len(vals), want)
	}
	return vals, nil
}
