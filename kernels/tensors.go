package kernels

import (
	"fmt"

	"github.com/nlpodyssey/spago/mat"
)

// Operands and results: the float32 data and shapes of spago tensors, new
// matrices, and the errors the operations report.

// dense returns the float32 data and the 2-D shape of t's value.
// op and name are used to build a helpful error message.
func dense(op, name string, t mat.Tensor) ([]float32, int, int, error) {
	if t == nil {
		return nil, 0, 0, opError(op, "%s is nil", name)
	}
	d, ok := t.Value().(*mat.Dense[float32])
	if !ok {
		return nil, 0, 0, opError(op, "%s must be a *mat.Dense[float32], got %T", name, t.Value())
	}
	s := d.Shape()
	return d.Data().F32(), s[0], s[1], nil
}

// vector returns the float32 data of t, which must hold exactly n values
// (a 1×n or n×1 matrix).
func vector(op, name string, t mat.Tensor, n int) ([]float32, error) {
	data, r, c, err := dense(op, name, t)
	if err != nil {
		return nil, err
	}
	if len(data) != n || (r != 1 && c != 1) {
		return nil, opError(op, "%s must be a vector of %d values (1×%d or %d×1), got [%d,%d]", name, n, n, n, r, c)
	}
	return data, nil
}

// gradData returns the float32 data of an output gradient. It is read-only.
func gradData(gy mat.Tensor) []float32 {
	if d, ok := gy.(*mat.Dense[float32]); ok {
		return d.Data().F32()
	}
	return gy.Data().F32()
}

// newMatrix returns a new zeroed float32 matrix [rows, cols].
func newMatrix(rows, cols int) *mat.Dense[float32] {
	return mat.NewDense[float32](mat.WithShape(rows, cols))
}

// wrap returns a float32 matrix backed by data (no copy), shaped like shape.
func wrap(data []float32, shape []int) *mat.Dense[float32] {
	// Copy the shape: spago stores the slice it is given.
	return mat.NewDense[float32](mat.WithShape(append([]int(nil), shape...)...), mat.WithBacking(data))
}

// opError returns the error of the operation op ("Attention", ...):
// "kernels.<op>: " and the formatted message. Forward reports bad operands
// with it (which run turns into a panic).
func opError(op, format string, args ...any) error {
	return fmt.Errorf("kernels."+op+": "+format, args...)
}

// cloneInts copies an index slice kept for the backward pass, so that the
// caller may reuse its buffer. nil stays nil.
func cloneInts(x []int) []int {
	if x == nil {
		return nil
	}
	return append(make([]int, 0, len(x)), x...)
}
