package kernels

import (
	"fmt"
	"math"
	"sync"

	"github.com/nlpodyssey/spago/mat"
)

// RoPEConfig is a rotary position embedding: the configuration of RoPEWith
// and of the rotation Attention applies to its queries and keys
// (AttentionConfig.RoPE).
//
// The first Dim dims of every head are rotated in the Hugging Face
// rotate-half convention, pairs (i, i+Dim/2) for i < Dim/2; dims >= Dim
// pass through unchanged (partial rotary, as in GPT-NeoX, Phi and
// StableLM). With angle = pos·InvFreq[i] and c = cos(angle)·AttnFactor,
// s = sin(angle)·AttnFactor (computed in float64, rounded to float32),
//
//	out[i]       = x[i]·c − x[i+Dim/2]·s
//	out[i+Dim/2] = x[i+Dim/2]·c + x[i]·s
//
// With AttnFactor ≠ 1 (YaRN, LongRoPE) this is a rotation scaled by
// AttnFactor; the backward pass applies its transpose.
type RoPEConfig struct {
	// Theta is the base of the default frequencies
	// InvFreq[i] = Theta^(−2i/Dim). Unused when InvFreq is set.
	Theta float64
	// Positions holds every row's position (nil: 0, 1, …, T−1).
	Positions []int
	// InvFreq, when set, gives the Dim/2 inverse frequencies (RoPE
	// scaling: linear, dynamic NTK, YaRN, Llama 3, LongRoPE compute them).
	InvFreq []float64
	// Dim is the number of rotated dims of a head: even, in (0, HeadDim];
	// 0 means HeadDim.
	Dim int
	// AttnFactor multiplies cos and sin; 0 means 1.
	AttnFactor float64
}

// ropeParams is a RoPEConfig resolved for a head size.
type ropeParams struct {
	dim     int
	theta   float64
	invFreq []float64 // nil: theta^(−2i/dim)
	factor  float64
}

// params resolves c for heads of headDim values (c is assumed valid).
func (c *RoPEConfig) params(headDim int) ropeParams {
	p := ropeParams{dim: c.Dim, theta: c.Theta, invFreq: c.InvFreq, factor: c.AttnFactor}
	if p.dim == 0 {
		p.dim = headDim
	}
	if p.factor == 0 {
		p.factor = 1
	}
	return p
}

// check validates c for heads of headDim values.
func (c *RoPEConfig) check(headDim int) error {
	dim := c.Dim
	if dim == 0 {
		dim = headDim
	}
	if dim <= 0 || dim%2 != 0 || dim > headDim {
		return fmt.Errorf("RoPE needs an even number of rotated dims in (0, HeadDim=%d], got Dim=%d (headDim even)", headDim, dim)
	}
	if c.InvFreq != nil {
		if len(c.InvFreq) != dim/2 {
			return fmt.Errorf("RoPE has %d inverse frequencies, want Dim/2 = %d", len(c.InvFreq), dim/2)
		}
		for i, f := range c.InvFreq {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("RoPE inverse frequency %d is %v", i, f)
			}
		}
	} else if !(c.Theta > 0) || math.IsInf(c.Theta, 0) {
		return fmt.Errorf("RoPE needs a positive theta, got %v", c.Theta)
	}
	if !(c.AttnFactor >= 0) || math.IsInf(c.AttnFactor, 0) {
		return fmt.Errorf("RoPE attention factor must be finite and >= 0 (0 meaning 1), got %v", c.AttnFactor)
	}
	return nil
}

// clone copies the slices of c, so that the caller may reuse them.
func (c RoPEConfig) clone() RoPEConfig {
	c.Positions = cloneInts(c.Positions)
	if c.InvFreq != nil {
		c.InvFreq = append([]float64(nil), c.InvFreq...)
	}
	return c
}

// RoPE applies rotary position embeddings to x [T, heads*headDim] in the
// Hugging Face rotate-half convention over whole heads, with the default
// frequencies theta^(−2i/headDim): RoPEWith(x, heads, headDim, positions,
// RoPEConfig{Theta: theta}). headDim must be even.
//
// Attention can apply the same rotation itself while it packs its operands
// (AttentionConfig.RoPE), which saves this operation's copies.
func RoPE(x mat.Tensor, heads, headDim int, positions []int, theta float64) mat.Tensor {
	return RoPEWith(x, heads, headDim, positions, RoPEConfig{Theta: theta})
}

// RoPEWith applies the rotary position embedding cfg (see RoPEConfig) to
// every head of x [T, heads*headDim]. Row t is at position positions[t];
// positions must have T entries, or be nil to use cfg.Positions (and when
// that is nil too, 0, 1, …, T−1). The backward pass applies the transpose
// (the inverse rotation times AttnFactor).
func RoPEWith(x mat.Tensor, heads, headDim int, positions []int, cfg RoPEConfig) mat.Tensor {
	if positions == nil {
		positions = cfg.Positions
	}
	// positions and the frequencies are copied: the backward pass must not
	// see later changes.
	var inv []float64
	if cfg.InvFreq != nil {
		inv = append([]float64(nil), cfg.InvFreq...)
	}
	return run(&ropeFn{x: x, heads: heads, headDim: headDim, positions: cloneInts(positions),
		theta: cfg.Theta, invFreq: inv, dim: cfg.Dim, factor: cfg.AttnFactor})
}

type ropeFn struct {
	output
	x              mat.Tensor
	heads, headDim int
	positions      []int
	theta          float64
	invFreq        []float64 // RoPEConfig.InvFreq
	dim            int       // RoPEConfig.Dim
	factor         float64   // RoPEConfig.AttnFactor
	rows           int
}

func (f *ropeFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *ropeFn) config() RoPEConfig {
	return RoPEConfig{Theta: f.theta, InvFreq: f.invFreq, Dim: f.dim, AttnFactor: f.factor}
}

func (f *ropeFn) Forward() (mat.Tensor, error) {
	x, r, c, err := dense("RoPE", "x", f.x)
	if err != nil {
		return nil, err
	}
	if f.heads <= 0 || f.headDim <= 0 || f.headDim%2 != 0 && f.dim == 0 || f.heads*f.headDim != c {
		return nil, opError("RoPE", "x is [%d,%d], want %d columns (heads=%d × headDim=%d, headDim even)", r, c, f.heads*f.headDim, f.heads, f.headDim)
	}
	if f.positions != nil && len(f.positions) != r {
		return nil, opError("RoPE", "x has %d rows but %d positions were given", r, len(f.positions))
	}
	cfg := f.config()
	if err := cfg.check(f.headDim); err != nil {
		return nil, opError("RoPE", "%v", err)
	}
	f.rows = r
	y := f.keep(newMatrix(r, c))
	ropeApply(y.Data().F32(), x, r, f.heads, f.headDim, f.positions, cfg.params(f.headDim), false)
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
		return opError("RoPE", "output gradient has %d values, want %d", len(g), n)
	}
	dx := getF32(n)
	cfg := f.config()
	ropeApply(dx, g, f.rows, f.heads, f.headDim, f.positions, cfg.params(f.headDim), true)
	accGrad(f.x, dx)
	return nil
}

// ropeApply rotates every head of x into y by the RoPE angles of its row,
// or applies the transpose when inverse is set (the backward pass).
func ropeApply(y, x []float32, rows, heads, headDim int, positions []int, p ropeParams, inverse bool) {
	rt := newRoPERows(positions, rows, p)
	defer rt.release()
	width := heads * headDim
	parallelFor(rows, max(1, (1<<14)/max(width, 1)), func(_, lo, hi int) {
		for t := lo; t < hi; t++ {
			c, s := rt.row(t)
			for h := 0; h < heads; h++ {
				o := t*width + h*headDim
				rotateHead(y[o:o+headDim], x[o:o+headDim], c, s, inverse)
			}
		}
	})
}

// rotateHead sets y to the head x rotated by rotateHalf over its first
// 2·len(c) values, the others copied. y may be x.
func rotateHead(y, x, c, s []float32, inverse bool) {
	rotateHalf(y, x, c, s, inverse)
	if n := 2 * len(c); n < len(x) {
		copy(y[n:len(x)], x[n:])
	}
}

// rotateHalf sets y to x (len(c)*2 values) rotated by the angles whose
// cosines and sines are c and s, or by the transpose when inverse (for a
// pure rotation, the opposite angles). y may be x. It uses the AVX2 loop
// where the CPU has it (vec_amd64.go; the same bits).
func rotateHalf(y, x, c, s []float32, inverse bool) {
	rotateHalfWith(y, x, c, s, inverse, useVec)
}

// rotateHalfWith is rotateHalf, with the AVX2 loop when vec (and the
// architecture has one) and the Go loop alone otherwise.
func rotateHalfWith(y, x, c, s []float32, inverse, vec bool) {
	half := len(c)
	s = s[:half]
	x1, x2 := x[:half], x[half:][:half]
	y1, y2 := y[:half], y[half:][:half]
	if vec {
		if i := rotateHalfVec(y1, y2, x1, x2, c, s, inverse); i > 0 {
			c, s, x1, x2, y1, y2 = c[i:], s[i:], x1[i:], x2[i:], y1[i:], y2[i:]
		}
	}
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
// call: rows of a table shared by all calls with the same frequencies,
// rotated dims and factor (indexed by position), or a table of this call's
// rows when positions are too large to share.
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

// ropeCacheMax bounds the positions kept in the shared tables, and
// ropeTablesMax the number of tables (dynamic RoPE scaling may change the
// frequencies from call to call): when it is reached, the tables are
// dropped (calls using them keep theirs).
const (
	ropeCacheMax  = 1 << 16
	ropeTablesMax = 16
)

type ropeKey struct {
	theta  float64 // 0 when the frequencies are given
	dim    int
	factor float64
	freq   string // the bits of the given frequencies ("" for theta's)
}

var (
	ropeMu     sync.Mutex
	ropeTables = map[ropeKey]*ropeRows{}
)

// inv returns the inverse frequencies of p.
func (p ropeParams) inv() []float64 {
	if p.invFreq != nil {
		return p.invFreq
	}
	return ropeInvFreq(p.theta, p.dim)
}

func (p ropeParams) key() ropeKey {
	k := ropeKey{theta: p.theta, dim: p.dim, factor: p.factor}
	if p.invFreq != nil {
		b := make([]byte, 0, 8*len(p.invFreq))
		for _, f := range p.invFreq {
			u := math.Float64bits(f)
			for i := 0; i < 8; i++ {
				b = append(b, byte(u>>(8*i)))
			}
		}
		k.theta, k.freq = 0, string(b)
	}
	return k
}

// newRoPERows returns the angles of the rows of a call (positions nil:
// 0..rows-1).
func newRoPERows(positions []int, rows int, p ropeParams) *ropeRows {
	half := p.dim / 2
	maxPos, minPos := rows-1, 0
	for _, q := range positions {
		maxPos = max(maxPos, q)
		minPos = min(minPos, q)
	}
	if maxPos < ropeCacheMax && minPos >= 0 {
		tab := sharedRoPETable(p, maxPos+1)
		return &ropeRows{cos: tab.cos, sin: tab.sin, index: positions, half: half}
	}
	r := &ropeRows{cos: getF32(rows * half), sin: getF32(rows * half), half: half, pooled: true}
	invFreq := p.inv()
	for t := 0; t < rows; t++ {
		pos := t
		if positions != nil {
			pos = positions[t]
		}
		ropeAngles(r.cos[t*half:(t+1)*half], r.sin[t*half:(t+1)*half], pos, invFreq, p.factor)
	}
	return r
}

// sharedRoPETable returns a table covering at least n positions. Tables
// are immutable once published; a larger one replaces a smaller one (every
// entry is computed the same way, so results do not depend on which a call
// gets).
func sharedRoPETable(p ropeParams, n int) *ropeRows {
	key := p.key()
	ropeMu.Lock()
	defer ropeMu.Unlock()
	t := ropeTables[key]
	if t != nil && len(t.cos) >= n*t.half {
		return t
	}
	if t == nil && len(ropeTables) >= ropeTablesMax {
		clear(ropeTables)
	}
	half := p.dim / 2
	size := 256
	for size < n {
		size *= 2
	}
	size = min(size, ropeCacheMax)
	t = &ropeRows{cos: make([]float32, size*half), sin: make([]float32, size*half), half: half}
	invFreq := p.inv()
	parallelFor(size, 64, func(_, lo, hi int) {
		for q := lo; q < hi; q++ {
			ropeAngles(t.cos[q*half:(q+1)*half], t.sin[q*half:(q+1)*half], q, invFreq, p.factor)
		}
	})
	ropeTables[key] = t
	return t
}

// ropeInvFreq returns theta^(−2i/dim) for i < dim/2.
func ropeInvFreq(theta float64, dim int) []float64 {
	f := make([]float64, dim/2)
	for i := range f {
		f[i] = math.Pow(theta, -float64(2*i)/float64(dim))
	}
	return f
}

// ropeAngles sets c[i], s[i] to the cosine and sine of pos·invFreq[i],
// times factor.
func ropeAngles(c, s []float32, pos int, invFreq []float64, factor float64) {
	for i, fr := range invFreq {
		si, ci := math.Sincos(float64(pos) * fr)
		c[i], s[i] = float32(ci*factor), float32(si*factor)
	}
}
