package kernels

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/nlpodyssey/spago/mat"
)

// dense returns the float32 data and the 2-D shape of t's value.
// op and name are used to build a helpful error message.
func dense(op, name string, t mat.Tensor) ([]float32, int, int, error) {
	if t == nil {
		return nil, 0, 0, fmt.Errorf("kernels.%s: %s is nil", op, name)
	}
	d, ok := t.Value().(*mat.Dense[float32])
	if !ok {
		return nil, 0, 0, fmt.Errorf("kernels.%s: %s must be a *mat.Dense[float32], got %T", op, name, t.Value())
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
		return nil, fmt.Errorf("kernels.%s: %s must be a vector of %d values (1×%d or %d×1), got [%d,%d]", op, name, n, n, n, r, c)
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

// accGrad accumulates data, shaped like t, into t's gradient.
func accGrad(t mat.Tensor, data []float32) {
	t.AccGrad(wrap(data, t.Shape()))
}

// shapeError formats a shape mismatch error.
func shapeError(op, format string, args ...any) error {
	return fmt.Errorf("kernels."+op+": "+format, args...)
}

// numWorkers returns how many goroutines to use for n work units when each
// goroutine should receive at least minPer units.
func numWorkers(n, minPer int) int {
	if minPer < 1 {
		minPer = 1
	}
	w := runtime.GOMAXPROCS(0)
	if m := n / minPer; m < w {
		w = m
	}
	if w < 1 {
		w = 1
	}
	return w
}

// parallelFor splits [0, n) into numWorkers(n, minPer) contiguous chunks and
// calls fn(chunk, lo, hi) for each, concurrently. It returns when all calls
// have returned.
func parallelFor(n, minPer int, fn func(chunk, lo, hi int)) {
	w := numWorkers(n, minPer)
	if w <= 1 {
		fn(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	size := (n + w - 1) / w
	for c := 0; c < w; c++ {
		lo, hi := c*size, min((c+1)*size, n)
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func(c, lo, hi int) {
			defer wg.Done()
			fn(c, lo, hi)
		}(c, lo, hi)
	}
	wg.Wait()
}

// parallelItems runs fn(worker, item) for every item in [0, n) on `workers`
// goroutines that pull items dynamically (for unbalanced work such as causal
// attention rows). worker is in [0, workers).
func parallelItems(n, workers int, fn func(worker, item int)) {
	if workers > n {
		workers = n
	}
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(0, i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(w, i)
			}
		}(w)
	}
	wg.Wait()
}

// dot64 returns the float64-accumulated dot product of two equal-length slices.
func dot64(a, b []float32) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += float64(a[i]) * float64(b[i])
		s1 += float64(a[i+1]) * float64(b[i+1])
		s2 += float64(a[i+2]) * float64(b[i+2])
		s3 += float64(a[i+3]) * float64(b[i+3])
	}
	for ; i < len(a); i++ {
		s0 += float64(a[i]) * float64(b[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// cloneInts copies an index slice kept for the backward pass, so that the
// caller may reuse its buffer. nil stays nil.
func cloneInts(x []int) []int {
	if x == nil {
		return nil
	}
	return append(make([]int, 0, len(x)), x...)
}
