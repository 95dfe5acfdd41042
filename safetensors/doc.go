// Package safetensors reads and writes the Hugging Face safetensors format.
// It is the project's only reader and writer of tensor files: checkpoint
// loading, conversion and model saving all go through it.
//
// # Format
//
// A safetensors file is
//
//	8 bytes    N, the header length, a little-endian uint64
//	N bytes    the header: a UTF-8 JSON object, padded with spaces
//	the rest   the data section: the tensors' bytes, back to back
//
// The header maps each tensor name to its entry, and may hold a
// "__metadata__" object of string to string:
//
//	{"__metadata__":{"format":"pt"},
//	 "h.0.attn.bias":{"dtype":"F32","shape":[192],"data_offsets":[0,768]},...}
//
// data_offsets are [begin, end) byte offsets relative to the start of the
// data section. Data is little-endian and row-major. Hugging Face writers
// emit compact JSON, "__metadata__" first, then the tensors in data-offset
// order with keys in the order dtype, shape, data_offsets, and pad the
// header with spaces so that 8+N is a multiple of 8. EncodeHeader and
// WriteFile write exactly that (JSON strings escaped as serde_json does), so
// a file written by Hugging Face, opened and written again with its metadata
// and FromFile for every tensor in order, is byte-identical.
//
// # Validation
//
// Open and ParseHeader check, and report with a distinct sentinel error
// (test with errors.Is; the message is one line and names the file and the
// tensor):
//
//   - ErrTruncated: the file is shorter than 8 bytes, or a tensor's range
//     ends past the end of the file;
//   - ErrHeaderTooLarge: N > MaxHeaderSize (100,000,000);
//   - ErrHeaderLength: 8+N is past the end of the file;
//   - ErrInvalidUTF8: the header is not valid UTF-8;
//   - ErrInvalidHeader: the header does not start with '{', is not valid
//     JSON (trailing whitespace is allowed), has a \u escape with a lone
//     surrogate, or a tensor entry is not an object, has an unknown key or
//     lacks one of dtype, shape, data_offsets;
//   - ErrMetadata: "__metadata__" is not an object whose values are all
//     strings;
//   - ErrUnknownDType: a dtype not in DTypes();
//   - ErrShapeMismatch: a shape entry is negative or not an integer (1.0 and
//     1e3 are rejected), a sub-byte tensor (F4, F6_*) does not fill a whole
//     number of bytes, or shape × dtype size ≠ end − begin;
//   - ErrOverflow: the element count or byte size overflows an int64;
//   - ErrOffsets: data_offsets is not two non-negative integers with
//     begin ≤ end;
//   - ErrGap, ErrOverlap: sorted by begin, the first range must start at 0
//     and each must start exactly where the previous ended (zero-size
//     tensors are allowed);
//   - ErrTrailingBytes: the data section has bytes after the last range;
//   - ErrDuplicateName: a key occurs twice in an object: two tensors of the
//     same name, a repeated key in a tensor entry (also ErrInvalidHeader)
//     or in "__metadata__" (also ErrMetadata). The header is parsed with a
//     scanner that sees every key, since encoding/json would silently keep
//     the last.
//
// This follows the reference Rust implementation and is stricter where it
// is lenient: unknown keys in a tensor entry, duplicate keys, a null
// "__metadata__" and non-integer numbers are all rejected. ParseHeader never
// panics; FuzzParseHeader and FuzzOpen check that.
//
// # Reading
//
// Open maps the file read-only (MAP_SHARED; on platforms without mmap it
// reads the file into memory). Bytes returns zero-copy views into the
// mapping, Float32s decodes float tensors, and CopyTensor streams a tensor's
// bytes with pread or, to an *os.File, in the kernel (copy_file_range or
// sendfile on Linux), so copying a 70B model neither buffers it in user space
// nor grows the resident set. A File is safe for concurrent use.
//
// # Writing
//
// WriteFile takes the tensors as WriteTensor values, each with a function
// that streams its data: FromFile (raw copy), Convert (re-encode a float
// tensor in 1 MiB chunks), FromBytes and FromFloat32. The header is computed
// up front, the data is streamed, and the file is written to a temporary
// sibling, fsynced and renamed into place, so a failed write leaves nothing
// behind; on Linux write-back starts every 8 MB while writing, so the final
// fsync has little left. A failed write is an *atomicfile.Error naming the
// file, the tensor and the cause once each. WriteSharded and PlanShards split a checkpoint into
// model-0000i-of-0000N.safetensors shards with a model.safetensors.index.json
// (WriteIndex), and ReadIndex reads one back.
//
// # Conversions
//
// DecodeFloat32 and EncodeFloat32 convert between F32, F16, BF16, F64 bytes
// and float32 values without allocating; F16 and BF16 encoding rounds to
// nearest even, overflows to infinity and keeps NaN a NaN. On amd64 with
// AVX2 and F16C the bulk of a buffer goes through assembly loops with the
// same bits (half_amd64.s); -tags purego keeps the portable loops.
package safetensors
