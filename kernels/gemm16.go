package kernels

import (
	"math"
	"sync"
)

// Packing of a 16-bit B operand (a stored BF16 or F16 Weight): the values
// are converted to float32 as they are packed, so the micro-kernels, the
// accumulation and the result are those of the float32 path on the decoded
// matrix. Conversion costs one pass over B per product, while packing
// already reads B once per product; the float32 path is untouched.

// packB16 is packB for 16-bit values of dtype dt.
func (kern *gemmKernel) packB16(dst []float32, b []uint16, dt WeightDType, transB bool, k, n, j0, nc, p0, kc int) {
	w := kern.nr
	if transB {
		// B is stored [n, k]: convert each panel's lines (w rows of kc
		// values) into a contiguous scratch, then transpose it as float32.
		scratch := getF32(w * kc)
		for q := 0; q*w < nc; q++ {
			d := dst[q*w*kc : (q+1)*w*kc]
			lines := min(w, nc-q*w)
			l0 := j0 + q*w
			for x := 0; x < lines; x++ {
				decode16(scratch[x*kc:(x+1)*kc], b[(l0+x)*k+p0:(l0+x)*k+p0+kc], dt)
			}
			packTrans(d, scratch, kc, kc, w, lines, kern.packBT)
		}
		putF32(scratch)
		return
	}
	// B is stored [k, n]: each depth step of a panel is w consecutive values.
	for q := 0; q*w < nc; q++ {
		d := dst[q*w*kc : (q+1)*w*kc]
		cols := min(w, nc-q*w)
		l0 := j0 + q*w
		for p := 0; p < kc; p++ {
			row := (p0+p)*n + l0
			dp := d[p*w : (p+1)*w]
			decode16(dp[:cols], b[row:row+cols], dt)
			clear(dp[cols:])
		}
	}
}

// decode16 converts src (bf16 or f16) into dst.
func decode16(dst []float32, src []uint16, dt WeightDType) {
	if dt == WeightBF16 {
		decodeBF16(dst, src)
	} else {
		decodeF16Table(dst, src)
	}
}

// len is the number of values.
func (o gemmOperand) len() int {
	if o.u16 != nil {
		return len(o.u16)
	}
	return len(o.f32)
}

// decode writes values [lo, hi) of the operand as float32 into dst.
func (o gemmOperand) decode(dst []float32, lo, hi int) {
	switch {
	case o.u16 == nil:
		copy(dst, o.f32[lo:hi])
	default:
		decode16(dst[:hi-lo], o.u16[lo:hi], o.dtype)
	}
}

// f16Table maps every half-precision bit pattern to its float32 value.
var (
	f16TableOnce sync.Once
	f16Table     []float32
)

// decodeF16Table is decodeF16 through a table (exact, and faster than the
// bit manipulation of f16ToF32 with its branches).
func decodeF16Table(dst []float32, src []uint16) {
	f16TableOnce.Do(func() {
		f16Table = make([]float32, 1<<16)
		for h := range f16Table {
			f16Table[h] = f16ToF32(uint16(h))
		}
	})
	t := (*[1 << 16]float32)(f16Table)
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = t[v]
	}
}

// bf16FromF32 rounds f to bfloat16 (to nearest, ties to even; NaNs stay
// NaN). For tests and callers that make 16-bit weights.
func bf16FromF32(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}
