package kernels

import (
	"fmt"
	"math"
	"runtime"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/mat/float"
)

// WeightDType is the element type a Weight holds.
type WeightDType uint8

const (
	// WeightF32 holds float32 values.
	WeightF32 WeightDType = iota
	// WeightBF16 holds bfloat16 values (the high 16 bits of a float32).
	WeightBF16
	// WeightF16 holds IEEE 754 half-precision values.
	WeightF16
)

func (d WeightDType) String() string {
	switch d {
	case WeightF32:
		return "F32"
	case WeightBF16:
		return "BF16"
	case WeightF16:
		return "F16"
	}
	return fmt.Sprintf("WeightDType(%d)", uint8(d))
}

// Weight is a frozen, read-only matrix [rows, cols] kept in the dtype it is
// stored in: a model weight that does not train needs no float32 copy.
// BF16 and F16 values take 2 bytes each; the operations convert them to
// float32 as they read them (the GEMM while it packs panels of B, Embedding
// row by row), and compute and accumulate in float32 as with a
// *mat.Dense[float32], so the results are those of the same operation on
// the decoded float32 matrix.
//
// A Weight is accepted wherever an operation documents it: Linear's and
// LinearCrossEntropy's w, HeadNLL's w and Embedding's table. It never
// requires a gradient. It is a spago tensor (so it can be an operand and
// be wrapped in an nn.Param) whose only methods are those defined here;
// the other mat.Matrix methods panic. Value returns the Weight itself.
//
// The values slice is referenced, not copied: it may be a read-only view
// (for instance a memory-mapped file) that must outlive the Weight.
type Weight struct {
	// mat.Matrix is nil: it only completes the interface, and its methods
	// (not meaningful for a read-only weight) panic.
	mat.Matrix
	rows, cols int
	dtype      WeightDType
	f32        []float32
	u16        []uint16
	// owner is kept reachable as long as the Weight is.
	owner any
}

// NewWeight16 returns the Weight [rows, cols] of the BF16 or F16 values v
// (row-major, not copied). owner, when not nil, is kept reachable as long
// as the Weight is: the owner of the memory v lives in, if that memory is
// released when its owner is garbage (a runtime cleanup). The operations
// keep the Weight reachable while they read v.
func NewWeight16(rows, cols int, dtype WeightDType, v []uint16, owner any) *Weight {
	if dtype != WeightBF16 && dtype != WeightF16 {
		panic(fmt.Sprintf("kernels.NewWeight16: dtype %v is not 16-bit", dtype))
	}
	if rows < 0 || cols < 0 || len(v) != rows*cols {
		panic(fmt.Sprintf("kernels.NewWeight16: %d values for [%d,%d]", len(v), rows, cols))
	}
	return &Weight{rows: rows, cols: cols, dtype: dtype, u16: v, owner: owner}
}

// NewWeightF32 returns the Weight [rows, cols] of the float32 values v
// (row-major, not copied); owner as for NewWeight16.
func NewWeightF32(rows, cols int, v []float32, owner any) *Weight {
	if rows < 0 || cols < 0 || len(v) != rows*cols {
		panic(fmt.Sprintf("kernels.NewWeightF32: %d values for [%d,%d]", len(v), rows, cols))
	}
	return &Weight{rows: rows, cols: cols, dtype: WeightF32, f32: v, owner: owner}
}

// DType is the element type of the values.
func (w *Weight) DType() WeightDType { return w.dtype }

// Raw16 returns the 16-bit values (nil for a WeightF32); read-only. The
// caller keeps w reachable while it uses them (runtime.KeepAlive).
func (w *Weight) Raw16() []uint16 { return w.u16 }

// RawF32 returns the float32 values of a WeightF32 (nil otherwise);
// read-only, as Raw16.
func (w *Weight) RawF32() []float32 { return w.f32 }

// Float32s returns the values as a new float32 slice.
func (w *Weight) Float32s() []float32 {
	out := make([]float32, w.rows*w.cols)
	w.decodeRows(out, 0, w.rows)
	return out
}

// decodeRows writes rows [r0, r1) as float32 into dst.
func (w *Weight) decodeRows(dst []float32, r0, r1 int) {
	lo, hi := r0*w.cols, r1*w.cols
	switch w.dtype {
	case WeightF32:
		copy(dst, w.f32[lo:hi])
	default:
		decode16(dst[:hi-lo], w.u16[lo:hi], w.dtype)
	}
	runtime.KeepAlive(w)
}

// operand is the Weight as a GEMM operand.
func (w *Weight) operand() gemmOperand {
	return gemmOperand{f32: w.f32, u16: w.u16, dtype: w.dtype, keep: w}
}

// Shape is [rows, cols].
func (w *Weight) Shape() []int { return []int{w.rows, w.cols} }

// Dims is 2.
func (w *Weight) Dims() int { return 2 }

// Size is rows·cols.
func (w *Weight) Size() int { return w.rows * w.cols }

// Value returns w.
func (w *Weight) Value() mat.Tensor { return w }

// Data returns the values decoded to float32 (a new slice).
func (w *Weight) Data() float.Slice { return float.Make(w.Float32s()...) }

// Grad is nil: a Weight has no gradient.
func (w *Weight) Grad() mat.Tensor { return nil }

// HasGrad is false.
func (w *Weight) HasGrad() bool { return false }

// RequiresGrad is false.
func (w *Weight) RequiresGrad() bool { return false }

// SetRequiresGrad panics when asked for a gradient: a Weight is frozen (a
// trainable weight is a float32 *mat.Dense made from Float32s).
func (w *Weight) SetRequiresGrad(on bool) {
	if on {
		panic("kernels.Weight: a stored weight is frozen; train a float32 copy (Float32s)")
	}
}

// AccGrad panics: a Weight has no gradient.
func (w *Weight) AccGrad(mat.Tensor) { panic("kernels.Weight: a stored weight has no gradient") }

// ZeroGrad does nothing.
func (w *Weight) ZeroGrad() {}

// Clone returns w: a Weight is immutable.
func (w *Weight) Clone() mat.Matrix { return w }

// gemmOperand is the B operand of a product: float32 values, or 16-bit
// values converted to float32 while B is packed.
type gemmOperand struct {
	f32   []float32
	u16   []uint16
	dtype WeightDType
	keep  *Weight // kept reachable while the values are read
}

// f32Operand wraps float32 values.
func f32Operand(v []float32) gemmOperand { return gemmOperand{f32: v} }

// weightOperand returns the data and the 2-D shape of t's value, a
// *mat.Dense[float32] or a *Weight, as a GEMM operand.
func weightOperand(op, name string, t mat.Tensor) (gemmOperand, int, int, error) {
	if t == nil {
		return gemmOperand{}, 0, 0, opError(op, "%s is nil", name)
	}
	if w, ok := t.Value().(*Weight); ok {
		return w.operand(), w.rows, w.cols, nil
	}
	d, r, c, err := dense(op, name, t)
	if err != nil {
		return gemmOperand{}, 0, 0, opError(op, "%s must be a *mat.Dense[float32] or a *kernels.Weight, got %T", name, t.Value())
	}
	return f32Operand(d), r, c, nil
}

// decodeBF16 sets dst[i] to the bfloat16 src[i].
func decodeBF16(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = math.Float32frombits(uint32(v) << 16)
	}
}

// f16ToF32 converts an IEEE half to float32 exactly (subnormals,
// infinities and NaNs included).
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	man := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf, NaN
		return math.Float32frombits(sign | 0x7f800000 | man<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
	case man == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: value man·2^-24, normalised.
	e := uint32(113)
	for man&0x400 == 0 {
		man <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (man&0x3ff)<<13)
}
