package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DecodeFloat32 decodes little-endian elements of dtype dt (F32, F16, BF16 or
// F64) from src into dst. len(src) must be exactly len(dst) elements of dt.
// F16 and BF16 decode exactly (subnormals, infinities and NaN payloads
// included); F64 rounds to nearest even, overflowing to ±Inf. It does not
// allocate.
func DecodeFloat32(dt DType, src []byte, dst []float32) error {
	size := floatSize(dt)
	if size == 0 {
		return fmt.Errorf("decode %s to float32: %w", dt, ErrUnsupportedDType)
	}
	if len(src) != len(dst)*size {
		return fmt.Errorf("decode %s: %w (%d source bytes for %d values)", dt, ErrWriteSize, len(src), len(dst))
	}
	switch dt {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = F16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BF16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:])))
		}
	}
	return nil
}

// EncodeFloat32 encodes src as little-endian elements of dtype dt (F32, F16,
// BF16 or F64) into dst, which must be exactly len(src) elements of dt long.
// F16 and BF16 round to nearest, ties to even; values beyond the largest
// finite value become ±Inf, NaN stays NaN (quieted, sign and top payload bits
// kept), and F16 subnormals are rounded correctly. F32 and F64 are exact. It
// does not allocate.
func EncodeFloat32(dt DType, src []float32, dst []byte) error {
	size := floatSize(dt)
	if size == 0 {
		return fmt.Errorf("encode float32 to %s: %w", dt, ErrUnsupportedDType)
	}
	if len(dst) != len(src)*size {
		return fmt.Errorf("encode %s: %w (%d destination bytes for %d values)", dt, ErrWriteSize, len(dst), len(src))
	}
	switch dt {
	case F32:
		for i, v := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case F16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], Float32ToF16(v))
		}
	case BF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], Float32ToBF16(v))
		}
	case F64:
		for i, v := range src {
			binary.LittleEndian.PutUint64(dst[8*i:], math.Float64bits(float64(v)))
		}
	}
	return nil
}

// floatSize is the element size in bytes of the dtypes the float
// conversions handle, 0 for the others.
func floatSize(dt DType) int {
	switch dt {
	case F16, BF16:
		return 2
	case F32:
		return 4
	case F64:
		return 8
	}
	return 0
}

// F16ToFloat32 converts IEEE half-precision bits to a float32 (exact).
func F16ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf, NaN: payload moves to the top of the F32 mantissa.
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: mant * 2^-24, normalized for F32.
	e := uint32(127 - 15 + 1)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}

// BF16ToFloat32 converts bfloat16 bits to a float32 (exact).
func BF16ToFloat32(b uint16) float32 {
	return math.Float32frombits(uint32(b) << 16)
}

// Float32ToBF16 rounds f to bfloat16 bits, to nearest even. NaN stays NaN.
func Float32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: quiet it, keep sign and top payload.
		return uint16(b>>16) | 0x40
	}
	// Adding 0x7fff plus the lowest kept bit rounds to nearest even; a carry
	// out of the mantissa correctly bumps the exponent (up to Inf).
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// Float32ToF16 rounds f to IEEE half-precision bits, to nearest even,
// overflowing to ±Inf and producing subnormals below 2^-14. NaN stays NaN.
func Float32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	switch {
	case exp == 0xff && mant != 0: // NaN
		return sign | 0x7e00 | uint16(mant>>13)
	case exp == 0xff: // Inf
		return sign | 0x7c00
	case exp == 0: // zero or F32 subnormal (< 2^-126): rounds to ±0
		return sign
	}
	return sign | roundToHalf(exp-127, uint64(mant|0x800000), 23, 10, 15)
}

// Float64ToF16 rounds f to IEEE half-precision bits, to nearest even, in one
// rounding step (no double rounding through float32).
func Float64ToF16(f float64) uint16 {
	return float64ToSmall(f, 10, 15)
}

// Float64ToBF16 rounds f to bfloat16 bits, to nearest even, in one rounding
// step (no double rounding through float32).
func Float64ToBF16(f float64) uint16 {
	return float64ToSmall(f, 7, 127)
}

// float64ToSmall rounds f to a 16-bit binary float with mbits mantissa bits
// and the given exponent bias (F16: 10, 15; BF16: 7, 127).
func float64ToSmall(f float64, mbits int, bias int) uint16 {
	b := math.Float64bits(f)
	sign := uint16(b>>48) & 0x8000
	exp := int(b>>52) & 0x7ff
	mant := b & (1<<52 - 1)
	expMask := uint16(0x7fff) &^ (1<<mbits - 1)
	switch {
	case exp == 0x7ff && mant != 0: // NaN: quiet, keep top payload bits.
		return sign | expMask | 1<<(mbits-1) | uint16(mant>>(52-mbits))
	case exp == 0x7ff:
		return sign | expMask
	case exp == 0: // F64 subnormal (< 2^-1022) rounds to ±0 in both formats.
		return sign
	}
	return sign | roundToHalf(exp-1023, mant|1<<52, 52, mbits, bias)
}

// roundToHalf encodes the positive value m * 2^(e-frac) (m has its leading 1
// at bit frac) into a 16-bit float with mbits mantissa bits and the given
// bias, rounding to nearest even. It returns the bits without sign.
func roundToHalf(e int, m uint64, frac, mbits, bias int) uint16 {
	emin := 1 - bias
	expMask := uint16(0x7fff) &^ (1<<mbits - 1)
	if e > bias {
		return expMask // overflow: Inf
	}
	if e >= emin {
		q := rne(m, uint(frac-mbits))
		if q == 1<<(mbits+1) { // rounding carried into the next binade
			q >>= 1
			e++
			if e > bias {
				return expMask
			}
		}
		return uint16(e+bias)<<mbits | uint16(q)&(1<<mbits-1)
	}
	// Subnormal: count units of 2^(emin-mbits). A result of 1<<mbits is the
	// smallest normal, whose encoding is exactly that integer.
	shift := frac - mbits + (emin - e)
	if shift >= 64 {
		return 0
	}
	return uint16(rne(m, uint(shift)))
}

// rne returns m >> shift rounded to nearest, ties to even.
func rne(m uint64, shift uint) uint64 {
	if shift == 0 {
		return m
	}
	q := m >> shift
	rem := m & (1<<shift - 1)
	half := uint64(1) << (shift - 1)
	if rem > half || (rem == half && q&1 == 1) {
		q++
	}
	return q
}
