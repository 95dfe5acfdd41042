package kernels

import (
	"github.com/nlpodyssey/spago/mat"
)

// Scale returns c·x element-wise (Gemma's embedding scale √hidden); its
// backward pass gives c·gy. spago's ag.ProdScalar does the same through a
// scalar node and generic code; this is one node and one parallel loop
// each way.
func Scale(x mat.Tensor, c float32) mat.Tensor {
	return run(&scaleFn{x: x, c: c})
}

type scaleFn struct {
	output
	x mat.Tensor
	c float32
}

func (f *scaleFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *scaleFn) Forward() (mat.Tensor, error) {
	x, r, c, err := dense("Scale", "x", f.x)
	if err != nil {
		return nil, err
	}
	y := f.keep(newMatrix(r, c))
	scaleInto(y.Data().F32(), x, f.c)
	return y, nil
}

func (f *scaleFn) Backward(gy mat.Tensor) error {
	defer f.releaseGrad()
	if !f.x.RequiresGrad() {
		return nil
	}
	g := gradData(gy)
	if len(g) != f.x.Value().Size() {
		return opError("Scale", "output gradient has %d values, want %d", len(g), f.x.Value().Size())
	}
	dx := getF32(len(g))
	scaleInto(dx, g, f.c)
	accGrad(f.x, dx)
	return nil
}

// scaleInto sets y = c·x.
func scaleInto(y, x []float32, c float32) {
	parallelFor(len(y), 1<<16, func(_, lo, hi int) {
		for i, v := range x[lo:hi] {
			y[lo+i] = c * v
		}
	})
}
