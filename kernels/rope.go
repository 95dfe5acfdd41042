package kernels

import (
	"math"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
)

// RoPE applies rotary position embeddings to x [T, heads*headDim] in the
// Hugging Face rotate-half convention. For every head and pair
// i ∈ [0, headDim/2): freq = theta^(−2i/headDim), angle = pos·freq,
//
//	out[i]      = x[i]·cos − x[i+half]·sin
//	out[i+half] = x[i+half]·cos + x[i]·sin
//
// where pos = positions[t] for row t. positions must have T entries, or be
// nil to mean 0, 1, …, T−1. Angles are computed in float64. headDim must be
// even.
func RoPE(x mat.Tensor, heads, headDim int, positions []int, theta float64) mat.Tensor {
	// positions is copied: the backward pass must not see later changes.
	return ag.NewOperator(&ropeFn{x: x, heads: heads, headDim: headDim, positions: cloneInts(positions), theta: theta}).Run()
}

type ropeFn struct {
	x              mat.Tensor
	heads, headDim int
	positions      []int
	theta          float64
	rows           int
}

func (f *ropeFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *ropeFn) Forward() (mat.Tensor, error) {
	x, r, c, err := dense("RoPE", "x", f.x)
	if err != nil {
		return nil, err
	}
	if f.heads <= 0 || f.headDim <= 0 || f.headDim%2 != 0 || f.heads*f.headDim != c {
		return nil, shapeError("RoPE", "x is [%d,%d], want %d columns (heads=%d × headDim=%d, headDim even)", r, c, f.heads*f.headDim, f.heads, f.headDim)
	}
	if f.positions != nil && len(f.positions) != r {
		return nil, shapeError("RoPE", "x has %d rows but %d positions were given", r, len(f.positions))
	}
	if !(f.theta > 0) {
		return nil, shapeError("RoPE", "theta must be positive, got %v", f.theta)
	}
	f.rows = r
	y := newMatrix(r, c)
	ropeApply(y.Data().F32(), x, r, f.heads, f.headDim, f.positions, f.theta, false)
	return y, nil
}

func (f *ropeFn) Backward(gy mat.Tensor) error {
	if !f.x.RequiresGrad() {
		return nil
	}
	g := gradData(gy)
	n := f.rows * f.heads * f.headDim
	if len(g) != n {
		return shapeError("RoPE", "output gradient has %d values, want %d", len(g), n)
	}
	dx := make([]float32, n)
	ropeApply(dx, g, f.rows, f.heads, f.headDim, f.positions, f.theta, true)
	accGrad(f.x, dx)
	return nil
}

// ropeApply rotates every head pair of x into y by the RoPE angle of its
// row, or by the opposite angle when inverse is set (the backward pass: the
// rotation is orthogonal, so its transpose is its inverse).
func ropeApply(y, x []float32, rows, heads, headDim int, positions []int, theta float64, inverse bool) {
	half := headDim / 2
	width := heads * headDim
	invFreq := make([]float64, half)
	for i := range invFreq {
		invFreq[i] = math.Pow(theta, -float64(2*i)/float64(headDim))
	}
	parallelFor(rows, max(1, 4096/max(width, 1)), func(_, lo, hi int) {
		cos := make([]float32, half)
		sin := make([]float32, half)
		for t := lo; t < hi; t++ {
			pos := t
			if positions != nil {
				pos = positions[t]
			}
			for i, fr := range invFreq {
				s, c := math.Sincos(float64(pos) * fr)
				cos[i], sin[i] = float32(c), float32(s)
				if inverse {
					sin[i] = -sin[i]
				}
			}
			for h := 0; h < heads; h++ {
				o := t*width + h*headDim
				x1, x2 := x[o:o+half], x[o+half:o+headDim]
				y1, y2 := y[o:o+half], y[o+half:o+headDim]
				for i := 0; i < half; i++ {
					a, b := x1[i], x2[i]
					y1[i] = a*cos[i] - b*sin[i]
					y2[i] = b*cos[i] + a*sin[i]
				}
			}
		}
	})
}
