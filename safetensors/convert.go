package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
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
		decodeF32(src, dst)
	case F16:
		decodeF16(src, dst)
	case BF16:
		decodeBF16(src, dst)
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
		encodeF32(src, dst)
	case F16:
		encodeF16(src, dst)
	case BF16:
		encodeBF16(src, dst)
	case F64:
		for i, v := range src {
			binary.LittleEndian.PutUint64(dst[8*i:], math.Float64bits(float64(v)))
		}
	}
	return nil
}

// The loops below are the bulk paths of DecodeFloat32 and EncodeFloat32.
// Where halfAsm is set (amd64 with AVX2 and F16C) assembly converts all
// but the last few elements, 16 at a time. The portable loops handle the
// common case (normal numbers) inline, with no function call per element,
// and defer every other value to the scalar conversion functions, so their
// results are bit-identical to those functions, as the assembly's are.
// len(src) and len(dst) are as DecodeFloat32 and EncodeFloat32 check.

// littleEndian is set on machines that store a float32 as its
// little-endian bytes: F32 data is then copied, not decoded.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// f32Bytes is the memory of v as bytes.
func f32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

func decodeF32(src []byte, dst []float32) {
	src = src[:4*len(dst)]
	if littleEndian {
		copy(f32Bytes(dst), src)
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

func decodeBF16(src []byte, dst []float32) {
	start := 0
	if b := len(dst) / 16; halfAsm && b > 0 {
		bf16ToF32x16((*byte)(unsafe.Pointer(&dst[0])), &src[0], b)
		start = 16 * b
	}
	n := len(dst) &^ 3
	for i := start; i < n; i += 4 {
		x := binary.LittleEndian.Uint64(src[2*i : 2*i+8])
		d := dst[i : i+4 : i+4]
		d[0] = math.Float32frombits(uint32(x) << 16)
		d[1] = math.Float32frombits(uint32(x>>16) << 16)
		d[2] = math.Float32frombits(uint32(x>>32) << 16)
		d[3] = math.Float32frombits(uint32(x>>48) << 16)
	}
	for i := n; i < len(dst); i++ {
		dst[i] = BF16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

// f16Normal reports whether the F16 bits h (in the low 16 bits) hold a
// normal number, and f16ToF32Normal converts such a number exactly.
func f16Normal(h uint32) bool { return h&0x7fff-0x400 < 0x7800 } // exponent 1..30

func f16ToF32Normal(h uint32) float32 {
	return math.Float32frombits((h&0x8000)<<16 | ((h&0x7fff)<<13 + (127-15)<<23))
}

func decodeF16(src []byte, dst []float32) {
	start := 0
	if b := len(dst) / 16; halfAsm && b > 0 {
		f16ToF32x16((*byte)(unsafe.Pointer(&dst[0])), &src[0], b)
		start = 16 * b
	}
	n := len(dst) &^ 3
	for i := start; i < n; i += 4 {
		x := binary.LittleEndian.Uint64(src[2*i : 2*i+8])
		h0, h1, h2, h3 := uint32(x)&0xffff, uint32(x>>16)&0xffff, uint32(x>>32)&0xffff, uint32(x>>48)
		d := dst[i : i+4 : i+4]
		if f16Normal(h0) && f16Normal(h1) && f16Normal(h2) && f16Normal(h3) {
			d[0] = f16ToF32Normal(h0)
			d[1] = f16ToF32Normal(h1)
			d[2] = f16ToF32Normal(h2)
			d[3] = f16ToF32Normal(h3)
		} else {
			d[0] = F16ToFloat32(uint16(h0))
			d[1] = F16ToFloat32(uint16(h1))
			d[2] = F16ToFloat32(uint16(h2))
			d[3] = F16ToFloat32(uint16(h3))
		}
	}
	for i := n; i < len(dst); i++ {
		dst[i] = F16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

func encodeF32(src []float32, dst []byte) {
	if littleEndian {
		copy(dst, f32Bytes(src))
		return
	}
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:4*i+4], math.Float32bits(v))
	}
}

func encodeBF16(src []float32, dst []byte) {
	start := 0
	if b := len(src) / 16; halfAsm && b > 0 {
		f32ToBF16x16(&dst[0], (*byte)(unsafe.Pointer(&src[0])), b)
		start = 16 * b
	}
	n := len(src) &^ 3
	for i := start; i < n; i += 4 {
		s := src[i : i+4 : i+4]
		x := uint64(Float32ToBF16(s[0])) | uint64(Float32ToBF16(s[1]))<<16 |
			uint64(Float32ToBF16(s[2]))<<32 | uint64(Float32ToBF16(s[3]))<<48
		binary.LittleEndian.PutUint64(dst[2*i:2*i+8], x)
	}
	for i := n; i < len(src); i++ {
		binary.LittleEndian.PutUint16(dst[2*i:], Float32ToBF16(src[i]))
	}
}

// f32F16Normal reports whether the F32 bits b have an exponent of 113..142
// (2^-14 <= |v| < 2^16): they round to a normal F16 or, past 65504, to Inf.
// f32ToF16Normal rounds such a value: rebias, then round to nearest even by
// adding 0xfff plus the lowest kept bit, which carries into the exponent when
// the mantissa overflows, up to 0x7c00 (Inf). The result equals
// Float32ToF16's.
func f32F16Normal(b uint32) bool { return b&0x7fffffff-113<<23 < (143-113)<<23 }

func f32ToF16Normal(b uint32) uint64 {
	a := b&0x7fffffff - (127-15)<<23
	return uint64(b>>16&0x8000 | (a+0xfff+a>>13&1)>>13)
}

func encodeF16(src []float32, dst []byte) {
	start := 0
	if b := len(src) / 16; halfAsm && b > 0 {
		f32ToF16x16(&dst[0], (*byte)(unsafe.Pointer(&src[0])), b)
		start = 16 * b
	}
	n := len(src) &^ 3
	for i := start; i < n; i += 4 {
		s := src[i : i+4 : i+4]
		b0, b1, b2, b3 := math.Float32bits(s[0]), math.Float32bits(s[1]), math.Float32bits(s[2]), math.Float32bits(s[3])
		var x uint64
		if f32F16Normal(b0) && f32F16Normal(b1) && f32F16Normal(b2) && f32F16Normal(b3) {
			x = f32ToF16Normal(b0) | f32ToF16Normal(b1)<<16 | f32ToF16Normal(b2)<<32 | f32ToF16Normal(b3)<<48
		} else {
			x = uint64(Float32ToF16(s[0])) | uint64(Float32ToF16(s[1]))<<16 |
				uint64(Float32ToF16(s[2]))<<32 | uint64(Float32ToF16(s[3]))<<48
		}
		binary.LittleEndian.PutUint64(dst[2*i:2*i+8], x)
	}
	for i := n; i < len(src); i++ {
		binary.LittleEndian.PutUint16(dst[2*i:], Float32ToF16(src[i]))
	}
}

// convertHalf converts src between F16 and BF16 (either direction) into
// dst, bit-identical to decoding to float32 and encoding, four values at a
// time when they are all in the range where a few integer operations do
// it. It reports false, doing nothing, for other pairs of dtypes.
func convertHalf(from, to DType, src, dst []byte) bool {
	n := len(src) &^ 7
	blocks := len(src) / 32 // of 16 values, for the assembly loops
	if !halfAsm || len(dst) < len(src) {
		blocks = 0
	}
	switch {
	case from == BF16 && to == F16:
		if blocks > 0 {
			bf16ToF16x16(&dst[0], &src[0], blocks)
		}
		for i := 32 * blocks; i < n; i += 8 {
			x := binary.LittleEndian.Uint64(src[i : i+8])
			y, ok := bf16ToF16x4(x)
			if !ok {
				y = each16(x, bf16ToF16)
			}
			binary.LittleEndian.PutUint64(dst[i:i+8], y)
		}
		for i := n; i+1 < len(src); i += 2 {
			binary.LittleEndian.PutUint16(dst[i:], bf16ToF16(binary.LittleEndian.Uint16(src[i:])))
		}
	case from == F16 && to == BF16:
		if blocks > 0 {
			f16ToBF16x16(&dst[0], &src[0], blocks)
		}
		for i := 32 * blocks; i < n; i += 8 {
			x := binary.LittleEndian.Uint64(src[i : i+8])
			y, ok := f16ToBF16x4(x)
			if !ok {
				y = each16(x, f16ToBF16)
			}
			binary.LittleEndian.PutUint64(dst[i:i+8], y)
		}
		for i := n; i+1 < len(src); i += 2 {
			binary.LittleEndian.PutUint16(dst[i:], f16ToBF16(binary.LittleEndian.Uint16(src[i:])))
		}
	default:
		return false
	}
	return true
}

func bf16ToF16(h uint16) uint16 { return Float32ToF16(BF16ToFloat32(h)) }
func f16ToBF16(h uint16) uint16 { return Float32ToBF16(F16ToFloat32(h)) }

// each16 applies f to the four 16-bit lanes of x.
func each16(x uint64, f func(uint16) uint16) uint64 {
	return uint64(f(uint16(x))) | uint64(f(uint16(x>>16)))<<16 |
		uint64(f(uint16(x>>32)))<<32 | uint64(f(uint16(x>>48)))<<48
}

// lanes16 repeats a 16-bit value in the four lanes of a uint64; signs16
// has the sign bit of each lane.
const (
	lanes16 = 0x0001000100010001
	signs16 = 0x8000 * lanes16
)

// inRange16 reports whether every 15-bit magnitude lane of a (signs clear)
// is in [lo, hi). Setting the sign bit before subtracting keeps each lane's
// borrow inside it; the sign bit then tells whether the lane was >= the
// bound.
func inRange16(a uint64, lo, hi uint64) bool {
	return (a|signs16-lo*lanes16)&^(a|signs16-hi*lanes16)&signs16 == signs16
}

// bf16ToF16x4 converts four BF16 values exactly when their exponents are
// 113..142 (the F16 normal range; BF16's 7 mantissa bits fit in F16's 10):
// rebias the exponent by 127-15 and shift left 3.
func bf16ToF16x4(x uint64) (uint64, bool) {
	a := x &^ signs16
	if !inRange16(a, 113<<7, 143<<7) {
		return 0, false
	}
	return (a-(127-15)<<7*lanes16)<<3 | x&signs16, true
}

// f16ToBF16x4 converts four normal F16 values (exponent 1..30) to BF16:
// drop 3 mantissa bits rounding to nearest even (adding 3 plus the lowest
// kept bit carries into the exponent as it should), then rebias the
// exponent by 127-15. No lane overflows: magnitudes stay below 0x7c04.
func f16ToBF16x4(x uint64) (uint64, bool) {
	a := x &^ signs16
	if !inRange16(a, 1<<10, 31<<10) {
		return 0, false
	}
	r := (a + 3*lanes16 + a>>3&lanes16) >> 3 & (0x1fff * lanes16)
	return r + (127-15)<<7*lanes16 | x&signs16, true
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
