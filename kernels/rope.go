package kernels

import (
	"math"
	"sync"

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
// nil to mean 0, 1, …, T−1. Angles are computed in float64 (and cos, sin
// rounded to float32). headDim must be even.
//
// Attention can apply the same rotation itself while it packs its operands
// (AttentionConfig.RoPE), which saves this operation's copies.
func RoPE(x mat.Tensor, heads, headDim int, positions []int, theta float64) mat.Tensor {
	// positions is copied: the backward pass must not see later changes.
	return run(&ropeFn{x: x, heads: heads, headDim: headDim, positions: cloneInts(positions), theta: theta})
}

type ropeFn struct {
	output
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
	y := f.keep(newMatrix(r, c))
	ropeApply(y.Data().F32(), x, r, f.heads, f.headDim, f.positions, f.theta, false)
	return y, nil
}

func (f *ropeFn) Backward(gy mat.Tensor) error {
	defer f.releaseGrad()
	if !f.x.RequiresGrad() {
		return nil
	}
	g := gradData(gy)
	n := f.rows * f.heads * f.headDim
	if len(g) != n {
		return shapeError("RoPE", "output gradient has %d values, want %d", len(g), n)
	}
	dx := getF32(n)
	ropeApply(dx, g, f.rows, f.heads, f.headDim, f.positions, f.theta, true)
	accGrad(f.x, dx)
	return nil
}

// ropeApply rotates every head pair of x into y by the RoPE angle of its
// row, or by the opposite angle when inverse is set (the backward pass: the
// rotation is orthogonal, so its transpose is its inverse).
func ropeApply(y, x []float32, rows, heads, headDim int, positions []int, theta float64, inverse bool) {
	rt := newRoPERows(positions, rows, headDim, theta)
	defer rt.release()
	width := heads * headDim
	parallelFor(rows, max(1, (1<<14)/max(width, 1)), func(_, lo, hi int) {
		for t := lo; t < hi; t++ {
			c, s := rt.row(t)
			for h := 0; h < heads; h++ {
				o := t*width + h*headDim
				rotateHalf(y[o:o+headDim], x[o:o+headDim], c, s, inverse)
			}
		}
	})
}

// rotateHalf sets y to x (one head, len(c)*2 values) rotated by the angles
// whose cosines and sines are c and s, or by their opposites when inverse.
// y may be x.
func rotateHalf(y, x, c, s []float32, inverse bool) {
	half := len(c)
	s = s[:half]
	x1, x2 := x[:half], x[half:][:half]
	y1, y2 := y[:half], y[half:][:half]
	if inverse {
		for i, ci := range c {
			a, b := x1[i], x2[i]
			y1[i] = a*ci + b*s[i]
			y2[i] = b*ci - a*s[i]
		}
		return
	}
	for i, ci := range c {
		a, b := x1[i], x2[i]
		y1[i] = a*ci - b*s[i]
		y2[i] = b*ci + a*s[i]
	}
}

// ropeRows gives the cosines and sines of the RoPE angles of every row of a
// call: rows of a table shared by all calls with the same theta and head
// size (indexed by position), or a table of this call's rows when
// positions are too large to share.
type ropeRows struct {
	cos, sin []float32 // [n][half]
	index    []int     // row → table row; nil: row t is table row t
	half     int
	pooled   bool
}

func (r *ropeRows) row(t int) (c, s []float32) {
	i := t
	if r.index != nil {
		i = r.index[t]
	}
	return r.cos[i*r.half : (i+1)*r.half], r.sin[i*r.half : (i+1)*r.half]
}

func (r *ropeRows) release() {
	if r.pooled {
		putF32(r.cos)
		putF32(r.sin)
	}
}

// ropeCacheMax bounds the positions kept in the shared tables.
const ropeCacheMax = 1 << 16

type ropeKey struct {
	theta   float64
	headDim int
}

var (
	ropeMu     sync.Mutex
	ropeTables = map[ropeKey]*ropeRows{}
)

// newRoPERows returns the angles of the rows of a call (positions nil:
// 0..rows-1).
func newRoPERows(positions []int, rows, headDim int, theta float64) *ropeRows {
	half := headDim / 2
	maxPos, minPos := rows-1, 0
	for _, p := range positions {
		maxPos = max(maxPos, p)
		minPos = min(minPos, p)
	}
	if maxPos < ropeCacheMax && minPos >= 0 {
		tab := sharedRoPETable(theta, headDim, maxPos+1)
		return &ropeRows{cos: tab.cos, sin: tab.sin, index: positions, half: half}
	}
	r := &ropeRows{cos: getF32(rows * half), sin: getF32(rows * half), half: half, pooled: true}
	invFreq := ropeInvFreq(theta, headDim)
	for t := 0; t < rows; t++ {
		pos := t
		if positions != nil {
			pos = positions[t]
		}
		ropeAngles(r.cos[t*half:(t+1)*half], r.sin[t*half:(t+1)*half], pos, invFreq)
	}
	return r
}

// sharedRoPETable returns a table covering at least n positions. Tables
// are immutable once published; a larger one replaces a smaller one (every
// entry is computed the same way, so results do not depend on which a call
// gets).
func sharedRoPETable(theta float64, headDim, n int) *ropeRows {
	key := ropeKey{theta, headDim}
	ropeMu.Lock()
	defer ropeMu.Unlock()
	if t := ropeTables[key]; t != nil && len(t.cos) >= n*t.half {
		return t
	}
	half := headDim / 2
	size := 256
	for size < n {
		size *= 2
	}
	size = min(size, ropeCacheMax)
	t := &ropeRows{cos: make([]float32, size*half), sin: make([]float32, size*half), half: half}
	invFreq := ropeInvFreq(theta, headDim)
	parallelFor(size, 64, func(_, lo, hi int) {
		for p := lo; p < hi; p++ {
			ropeAngles(t.cos[p*half:(p+1)*half], t.sin[p*half:(p+1)*half], p, invFreq)
		}
	})
	ropeTables[key] = t
	return t
}

// ropeInvFreq returns theta^(−2i/headDim) for i < headDim/2.
func ropeInvFreq(theta float64, headDim int) []float64 {
	f := make([]float64, headDim/2)
	for i := range f {
		f[i] = math.Pow(theta, -float64(2*i)/float64(headDim))
	}
	return f
}

// ropeAngles sets c[i], s[i] to the cosine and sine of pos·invFreq[i].
func ropeAngles(c, s []float32, pos int, invFreq []float64) {
	for i, fr := range invFreq {
		si, ci := math.Sincos(float64(pos) * fr)
		c[i], s[i] = float32(ci), float32(si)
	}
}
