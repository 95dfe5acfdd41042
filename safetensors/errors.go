package safetensors

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// Sentinel errors. Every error returned by this package that stems from one of
// these conditions wraps the matching sentinel, so callers test with
// errors.Is. The message of the wrapping error is a single line naming the
// file (when there is one), the tensor (when there is one) and the detail.
var (
	// ErrTruncated: the file is shorter than 8 bytes, or a tensor's data
	// range ends past the end of the file.
	ErrTruncated = errors.New("file truncated")
	// ErrHeaderTooLarge: the header length N exceeds MaxHeaderSize.
	ErrHeaderTooLarge = errors.New("header too large")
	// ErrHeaderLength: 8+N is past the end of the file.
	ErrHeaderLength = errors.New("header length past end of file")
	// ErrInvalidUTF8: the header is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("header is not valid UTF-8")
	// ErrInvalidHeader: the header is not a JSON object, is not valid JSON,
	// or a tensor entry is malformed (not an object, unknown or missing key).
	ErrInvalidHeader = errors.New("invalid header")
	// ErrMetadata: "__metadata__" is not an object of string to string.
	ErrMetadata = errors.New("invalid __metadata__")
	// ErrUnknownDType: a dtype that is not one of the known kinds.
	ErrUnknownDType = errors.New("unknown dtype")
	// ErrShapeMismatch: a shape entry is negative or not an integer, a
	// sub-byte tensor is not a whole number of bytes, or the byte size implied
	// by shape and dtype differs from the data range.
	ErrShapeMismatch = errors.New("shape does not match data")
	// ErrOverflow: element count or byte size does not fit in an int64.
	ErrOverflow = errors.New("size overflows int64")
	// ErrOffsets: data_offsets is not two non-negative integers with
	// begin <= end.
	ErrOffsets = errors.New("invalid data_offsets")
	// ErrGap: the data ranges, sorted by begin, leave unused bytes between
	// two tensors or before the first one.
	ErrGap = errors.New("gap between tensor data ranges")
	// ErrOverlap: two data ranges overlap.
	ErrOverlap = errors.New("overlapping tensor data ranges")
	// ErrTrailingBytes: the data section has bytes after the last tensor.
	ErrTrailingBytes = errors.New("trailing bytes after last tensor")
	// ErrDuplicateName: a key occurs twice in the same JSON object (tensor
	// names, keys of a tensor entry, metadata keys), or a writer was given
	// two tensors of the same name.
	ErrDuplicateName = errors.New("duplicate name")

	// ErrNotFound: no tensor of that name in the file.
	ErrNotFound = errors.New("tensor not found")
	// ErrUnsupportedDType: a conversion was asked of a dtype it does not
	// handle (for instance Float32s of an I64 tensor).
	ErrUnsupportedDType = errors.New("unsupported dtype")
	// ErrWriteSize: a WriteTensor's Write produced a different number of
	// bytes than its Size, or a buffer has the wrong length.
	ErrWriteSize = errors.New("wrong number of bytes")
	// ErrClosed: the File was closed.
	ErrClosed = errors.New("file already closed")
	// ErrInvalidIndex: a model.safetensors.index.json file is malformed.
	ErrInvalidIndex = errors.New("invalid safetensors index")
	// ErrInvalidSize: ParseSize could not parse its argument.
	ErrInvalidSize = errors.New("invalid size")
)

// maxQuoted bounds how much of a file-provided string goes into an error
// message, so that a hostile header cannot produce megabyte-long errors.
const maxQuoted = 200

// quote returns s quoted with strconv.Quote (so the message stays on one
// line whatever s holds), shortened to about maxQuoted bytes.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}
