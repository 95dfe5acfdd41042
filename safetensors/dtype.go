package safetensors

import (
	"fmt"
	"math"
	"strings"
)

// DType is a tensor element type, spelled exactly as in the "dtype" field of
// a safetensors header ("F32", "BF16", ...).
type DType string

// The element types of the safetensors format. The Go names match the header
// spelling so that a DType converts to and from the file text unchanged.
const (
	BOOL    DType = "BOOL"    // boolean, one byte per element
	U8      DType = "U8"      // unsigned 8-bit integer
	I8      DType = "I8"      // signed 8-bit integer
	F8_E4M3 DType = "F8_E4M3" // 8-bit float, 4 exponent and 3 mantissa bits
	F8_E5M2 DType = "F8_E5M2" // 8-bit float, 5 exponent and 2 mantissa bits
	F8_E8M0 DType = "F8_E8M0" // 8-bit exponent-only scale (MX formats)
	F4      DType = "F4"      // 4-bit float (fp4 e2m1), two elements per byte
	F6_E2M3 DType = "F6_E2M3" // 6-bit float, 2 exponent and 3 mantissa bits
	F6_E3M2 DType = "F6_E3M2" // 6-bit float, 3 exponent and 2 mantissa bits
	I16     DType = "I16"     // signed 16-bit integer
	U16     DType = "U16"     // unsigned 16-bit integer
	F16     DType = "F16"     // IEEE 754 half precision
	BF16    DType = "BF16"    // bfloat16: the top half of an F32
	I32     DType = "I32"     // signed 32-bit integer
	U32     DType = "U32"     // unsigned 32-bit integer
	F32     DType = "F32"     // IEEE 754 single precision
	F64     DType = "F64"     // IEEE 754 double precision
	I64     DType = "I64"     // signed 64-bit integer
	U64     DType = "U64"     // unsigned 64-bit integer
	C64     DType = "C64"     // complex64: two F32 (real, imaginary)
)

// DTypes lists every known element type, in increasing element size.
func DTypes() []DType {
	return []DType{
		F4, F6_E2M3, F6_E3M2,
		BOOL, U8, I8, F8_E4M3, F8_E5M2, F8_E8M0,
		I16, U16, F16, BF16,
		I32, U32, F32,
		F64, I64, U64, C64,
	}
}

// Bits is the size of one element in bits: 8 for one-byte kinds (BOOL
// included), 4 for F4, 6 for the F6 kinds, 64 for C64. It is 0 for an unknown
// DType.
func (d DType) Bits() int {
	switch d {
	case F4:
		return 4
	case F6_E2M3, F6_E3M2:
		return 6
	case BOOL, U8, I8, F8_E4M3, F8_E5M2, F8_E8M0:
		return 8
	case I16, U16, F16, BF16:
		return 16
	case I32, U32, F32:
		return 32
	case F64, I64, U64, C64:
		return 64
	}
	return 0
}

// Valid reports whether d is one of the known element types.
func (d DType) Valid() bool { return d.Bits() != 0 }

// IsFloat reports whether d is a real floating-point kind (F4, F6_*, F8_*,
// F16, BF16, F32, F64). C64 is complex and reports false.
func (d DType) IsFloat() bool {
	switch d {
	case F4, F6_E2M3, F6_E3M2, F8_E4M3, F8_E5M2, F8_E8M0, F16, BF16, F32, F64:
		return true
	}
	return false
}

// String returns the header spelling of d.
func (d DType) String() string { return string(d) }

// NumElements returns the number of elements of a tensor of the given shape:
// the product of its dimensions, 1 for a scalar (empty shape). It fails with
// ErrShapeMismatch for a negative dimension and ErrOverflow when the product
// does not fit in an int64. Like the reference implementation it multiplies
// left to right, so an overflowing prefix is an error even when a later
// dimension is 0.
func NumElements(shape []int64) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%w (negative dimension %d in shape %s)", ErrShapeMismatch, d, shapeString(shape))
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("%w (element count of shape %s)", ErrOverflow, shapeString(shape))
		}
		n *= d
	}
	return n, nil
}

// ByteSize returns the number of bytes a tensor of dtype d and the given shape
// occupies. It fails with ErrUnknownDType for an unknown d, ErrShapeMismatch
// for a negative dimension or, for the sub-byte kinds (F4, F6_*), when the
// total number of bits is not a whole number of bytes, and ErrOverflow when the
// size does not fit in an int64.
func (d DType) ByteSize(shape []int64) (int64, error) {
	bits := int64(d.Bits())
	if bits == 0 {
		return 0, fmt.Errorf("%w (%q)", ErrUnknownDType, string(d))
	}
	n, err := NumElements(shape)
	if err != nil {
		return 0, err
	}
	// n*bits/8 computed without overflowing n*bits: split n = 8q + r.
	q, r := n/8, n%8
	if q > math.MaxInt64/bits {
		return 0, fmt.Errorf("%w (shape %s %s)", ErrOverflow, shapeString(shape), d)
	}
	if r*bits%8 != 0 {
		return 0, fmt.Errorf("%w (shape %s %s has %d elements of %d bits, not a whole number of bytes)",
			ErrShapeMismatch, shapeString(shape), d, n, bits)
	}
	size := q * bits
	extra := r * bits / 8
	if size > math.MaxInt64-extra {
		return 0, fmt.Errorf("%w (shape %s %s)", ErrOverflow, shapeString(shape), d)
	}
	return size + extra, nil
}

// shapeString formats a shape like fmt's %v ("[2 3]"), eliding the middle of
// very long shapes so that error messages stay short.
func shapeString(shape []int64) string {
	const keep = 8
	if len(shape) <= 2*keep {
		return fmt.Sprint(shape)
	}
	head := strings.TrimSuffix(fmt.Sprint(shape[:keep]), "]")
	tail := strings.TrimPrefix(fmt.Sprint(shape[len(shape)-keep:]), "[")
	return fmt.Sprintf("%s ...(%d dims)... %s", head, len(shape)-2*keep, tail)
}
