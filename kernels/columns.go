package kernels

import (
	"github.com/nlpodyssey/spago/mat"
)

// Columns returns columns [from, to) of x [rows, cols] as a new matrix
// [rows, to-from]. The backward pass adds the gradient into those columns of
// x's gradient. GPT-2's fused query/key/value projection is split with it.
func Columns(x mat.Tensor, from, to int) mat.Tensor {
	return run(&columnsFn{x: x, from: from, to: to})
}

type columnsFn struct {
	output
	x          mat.Tensor
	from, to   int
	rows, cols int
}

func (f *columnsFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *columnsFn) Forward() (mat.Tensor, error) {
	x, rows, cols, err := dense("Columns", "x", f.x)
	if err != nil {
		return nil, err
	}
	if f.from < 0 || f.to > cols || f.from >= f.to {
		return nil, opError("Columns", "columns [%d, %d) of a matrix with %d columns", f.from, f.to, cols)
	}
	f.rows, f.cols = rows, cols
	w := f.to - f.from
	y := f.keep(newMatrix(rows, w))
	yd := y.Data().F32()
	for r := 0; r < rows; r++ {
		copy(yd[r*w:(r+1)*w], x[r*cols+f.from:r*cols+f.to])
	}
	return y, nil
}

func (f *columnsFn) Backward(gy mat.Tensor) error {
	defer f.releaseGrad()
	if !f.x.RequiresGrad() {
		return nil
	}
	g := gradData(gy)
	w := f.to - f.from
	if len(g) != f.rows*w {
		return opError("Columns", "output gradient has %d values, want %d", len(g), f.rows*w)
	}
	dx := getF32Zero(f.rows * f.cols)
	for r := 0; r < f.rows; r++ {
		copy(dx[r*f.cols+f.from:r*f.cols+f.to], g[r*w:(r+1)*w])
	}
	accGrad(f.x, dx)
	return nil
}
