package kernels

import (
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
)

// Add returns the element-wise sum a + b of two matrices of the same shape
// (residual connections).
func Add(a, b mat.Tensor) mat.Tensor {
	return ag.NewOperator(&addFn{a: a, b: b}).Run()
}

type addFn struct{ a, b mat.Tensor }

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
		return nil, shapeError("Add", "shapes differ: a is [%d,%d], b is [%d,%d]", ar, ac, br, bc)
	}
	out := newMatrix(ar, ac)
	addInto(out.Data().F32(), a, b)
	return out, nil
}

func (f *addFn) Backward(gy mat.Tensor) error {
	// AccGrad copies (or adds) gy, so passing the output gradient is safe.
	if f.a.RequiresGrad() {
		f.a.AccGrad(gy)
	}
	if f.b.RequiresGrad() {
		f.b.AccGrad(gy)
	}
	return nil
}

// addInto sets out = a + b element-wise.
func addInto(out, a, b []float32) {
	parallelFor(len(out), 1<<15, func(_, lo, hi int) {
		o, x, y := out[lo:hi], a[lo:hi], b[lo:hi]
		for i := range o {
			o[i] = x[i] + y[i]
		}
	})
}
