package kernels

import (
	"github.com/nlpodyssey/spago/mat"
)

// Add returns the element-wise sum a + b of two matrices of the same shape
// (residual connections).
func Add(a, b mat.Tensor) mat.Tensor {
	return run(&addFn{a: a, b: b})
}

type addFn struct {
	output
	a, b mat.Tensor
}

func (f *addFn) Operands() []mat.Tensor { return []mat.Tensor{f.a, f.b} }

func (f *addFn) Forward() (mat.Tensor, error) {
	a, ar, ac, err := dense("Add", "a", f.a)
	if err != nil {
		return nil, err
	}
	b, br, bc, err := dense("Add", "b", f.b)
	if err != nil {
		return nil, err
	}
	if ar != br || ac != bc {
		return nil, opError("Add", "shapes differ: a is [%d,%d], b is [%d,%d]", ar, ac, br, bc)
	}
	out := f.keep(newMatrix(ar, ac))
	addInto(out.Data().F32(), a, b)
	return out, nil
}

func (f *addFn) Backward(gy mat.Tensor) error {
	defer f.releaseGrad()
	// Both operands receive gy. b gets it through AccGrad, which copies (or
	// adds) it; then a is handed the output gradient's buffer itself (see
	// ownedDense), saving one copy. The order matters: once handed over, a's
	// other consumers may add into the buffer concurrently.
	if f.b.RequiresGrad() {
		f.b.AccGrad(gy)
	}
	if f.a.RequiresGrad() {
		if d, ok := gy.(*mat.Dense[float32]); ok {
			f.passedOn = true
			f.a.AccGrad(ownedDense{d})
			// When a already had a gradient, gy was added to it and is
			// free again.
			if ad, ok := f.a.Value().(*mat.Dense[float32]); ok && ad.Grad() != mat.Tensor(d) {
				f.passedOn = false
			}
		} else {
			f.a.AccGrad(gy)
		}
	}
	return nil
}

// addInto sets out = a + b element-wise.
func addInto(out, a, b []float32) {
	parallelFor(len(out), 1<<16, func(_, lo, hi int) { addRange(out[lo:hi], a[lo:hi], b[lo:hi]) })
}

func addRange(o, x, y []float32) {
	x, y = x[:len(o)], y[:len(o)]
	for i := range o {
		o[i] = x[i] + y[i]
	}
}
