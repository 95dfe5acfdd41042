package kernels

import (
	"math"

	"github.com/nlpodyssey/spago/mat"
)

// GELUTanh returns the tanh approximation of GELU applied element-wise
// (GPT-2 "gelu_new"): 0.5·x·(1+tanh(√(2/π)·(x+0.044715·x³))).
//
// When x requires a gradient, the forward pass keeps 0.5·(1+tanh) of every
// element (float32), so the backward pass computes no transcendental.
func GELUTanh(x mat.Tensor) mat.Tensor {
	return run(&geluFn{x: x})
}

type geluFn struct {
	output
	x  mat.Tensor
	th []float32 // 0.5·(1+tanh(√(2/π)·(x+0.044715·x³))), kept for the backward pass
}

func (f *geluFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *geluFn) Forward() (mat.Tensor, error) {
	x, r, c, err := dense("GELUTanh", "x", f.x)
	if err != nil {
		return nil, err
	}
	y := f.keep(newMatrix(r, c))
	if f.x.RequiresGrad() {
		f.th = getF32(len(x))
	}
	geluForward(y.Data().F32(), f.th, x)
	return y, nil
}

func (f *geluFn) Backward(gy mat.Tensor) error {
	defer f.releaseGrad()
	if !f.x.RequiresGrad() || f.th == nil {
		return nil
	}
	x, _, _, _ := dense("GELUTanh", "x", f.x)
	g := gradData(gy)
	if len(g) != len(x) {
		return shapeError("GELUTanh", "output gradient has %d values, want %d", len(g), len(x))
	}
	dx := getF32(len(x))
	geluBackward(dx, g, x, f.th)
	putF32(f.th)
	f.th = nil
	accGrad(f.x, dx)
	return nil
}

const (
	geluC = 0.7978845608028654 // √(2/π)
	geluA = 0.044715
)

// elementwiseChunk is the minimum number of elements per goroutine for
// transcendental element-wise kernels.
const elementwiseChunk = 1 << 13

// geluForward sets y = gelu_tanh(x) element-wise, and sv = σ(2u) (with u
// the tanh argument, so that tanh u = 2σ(2u)−1) when sv is not nil. Since
// 0.5·(1+tanh u) = σ(2u) = 1/(1+e^(−2u)), gelu(x) = x·σ(2u): one
// exponential (fexp inlined, argument clamped to ±708) and one division,
// no branch on the sign.
func geluForward(y, sv, x []float32) {
	parallelFor(len(x), elementwiseChunk, func(_, lo, hi int) {
		if sv != nil {
			geluRows(y[lo:hi], sv[lo:hi], x[lo:hi])
		} else {
			geluRowsNoSave(y[lo:hi], x[lo:hi])
		}
	})
}

// geluRows is geluForward on one chunk (a plain function: the loop keeps
// its slices in registers, which a closure's captured variables do not).
func geluRows(y, sv, x []float32) {
	y, sv = y[:len(x)], sv[:len(x)]
	for i, xv := range x {
		v := float64(xv)
		a := -2 * geluC * (v + geluA*v*v*v)
		if a < -708 {
			a = -708
		}
		if a > 708 {
			a = 708
		}
		t := a*(64*expLog2e) + expMagic
		k := t - expMagic
		r := (a - k*(expLn2Hi/64)) - k*(expLn2Lo/64)
		p := 1 + r*(1+r*(0.5+r*(1.0/6)))
		n := int64(int32(uint32(math.Float64bits(t))))
		e := p * math.Float64frombits(expTable[n&63]+uint64(n>>6)<<52)
		s := 1 / (1 + e)
		y[i] = float32(v * s)
		sv[i] = float32(s)
	}
}

// geluRowsNoSave is geluRows without saving σ(2u) (inference).
func geluRowsNoSave(y, x []float32) {
	y = y[:len(x)]
	for i, xv := range x {
		v := float64(xv)
		a := -2 * geluC * (v + geluA*v*v*v)
		if a < -708 {
			a = -708
		}
		if a > 708 {
			a = 708
		}
		t := a*(64*expLog2e) + expMagic
		k := t - expMagic
		r := (a - k*(expLn2Hi/64)) - k*(expLn2Lo/64)
		p := 1 + r*(1+r*(0.5+r*(1.0/6)))
		n := int64(int32(uint32(math.Float64bits(t))))
		e := p * math.Float64frombits(expTable[n&63]+uint64(n>>6)<<52)
		y[i] = float32(v * (1 / (1 + e))) // as geluRows computes it
	}
}

// geluBackward sets dx = gy · gelu_tanh'(x) element-wise from the saved
// sv = σ(2u): with t = tanh u = 2σ−1, gelu' = 0.5(1+t) + 0.5x(1−t²)·u',
// that is σ + 2x·σ(1−σ)·√(2/π)(1+3·0.044715·x²).
func geluBackward(dx, gy, x, sv []float32) {
	parallelFor(len(x), elementwiseChunk, func(_, lo, hi int) {
		geluBackwardRows(dx[lo:hi], gy[lo:hi], x[lo:hi], sv[lo:hi])
	})
}

func geluBackwardRows(dx, gy, x, sv []float32) {
	dx, gy, sv = dx[:len(x)], gy[:len(x)], sv[:len(x)]
	for i, xv := range x {
		v := float64(xv)
		s := float64(sv[i])
		d := s + 2*v*s*(1-s)*geluC*(1+3*geluA*v*v)
		dx[i] = float32(float64(gy[i]) * d)
	}
}

// SiLUGate returns silu(gate) ⊙ up element-wise, with silu(g) = g·σ(g)
// (the Llama MLP gate). gate and up must have the same shape.
func SiLUGate(gate, up mat.Tensor) mat.Tensor {
	return run(&siluGateFn{gate: gate, up: up})
}

type siluGateFn struct {
	output
	gate, up mat.Tensor
	sig      []float32 // σ(gate), kept for the backward pass
}

func (f *siluGateFn) Operands() []mat.Tensor { return []mat.Tensor{f.gate, f.up} }

func (f *siluGateFn) Forward() (mat.Tensor, error) {
	g, gr, gc, err := dense("SiLUGate", "gate", f.gate)
	if err != nil {
		return nil, err
	}
	u, ur, uc, err := dense("SiLUGate", "up", f.up)
	if err != nil {
		return nil, err
	}
	if gr != ur || gc != uc {
		return nil, shapeError("SiLUGate", "shapes differ: gate is [%d,%d], up is [%d,%d]", gr, gc, ur, uc)
	}
	y := f.keep(newMatrix(gr, gc))
	if f.gate.RequiresGrad() || f.up.RequiresGrad() {
		f.sig = getF32(len(g))
	}
	siluGateForward(y.Data().F32(), f.sig, g, u)
	return y, nil
}

func (f *siluGateFn) Backward(gy mat.Tensor) error {
	defer f.releaseGrad()
	if f.sig == nil {
		return nil
	}
	g, _, _, _ := dense("SiLUGate", "gate", f.gate)
	u, _, _, _ := dense("SiLUGate", "up", f.up)
	dy := gradData(gy)
	if len(dy) != len(g) {
		return shapeError("SiLUGate", "output gradient has %d values, want %d", len(dy), len(g))
	}
	var dg, du []float32
	if f.gate.RequiresGrad() {
		dg = getF32(len(g))
	}
	if f.up.RequiresGrad() {
		du = getF32(len(u))
	}
	siluGateBackward(dg, du, dy, g, u, f.sig)
	putF32(f.sig)
	f.sig = nil
	if dg != nil {
		accGrad(f.gate, dg)
	}
	if du != nil {
		accGrad(f.up, du)
	}
	return nil
}

// siluGateForward sets y = silu(g)·u element-wise, and sig = σ(g) when sig
// is not nil.
func siluGateForward(y, sig, g, u []float32) {
	parallelFor(len(g), elementwiseChunk, func(_, lo, hi int) {
		gs, us, ys := g[lo:hi], u[lo:hi], y[lo:hi]
		var ss []float32
		if sig != nil {
			ss = sig[lo:hi]
		}
		for i, gv := range gs {
			v := float64(gv)
			a := -v // σ(v) = 1/(1+e^(−v)), fexp inlined
			if a < -708 {
				a = -708
			}
			if a > 708 {
				a = 708
			}
			t := a*(64*expLog2e) + expMagic
			k := t - expMagic
			r := (a - k*(expLn2Hi/64)) - k*(expLn2Lo/64)
			p := 1 + r*(1+r*(0.5+r*(1.0/6)))
			n := int64(int32(uint32(math.Float64bits(t))))
			s := 1 / (1 + p*math.Float64frombits(expTable[n&63]+uint64(n>>6)<<52))
			ys[i] = float32(v*s) * us[i]
			if ss != nil {
				ss[i] = float32(s)
			}
		}
	})
}

// siluGateBackward sets dg = dy·u·silu'(g) and du = dy·silu(g) from the
// saved sig = σ(g); either output may be nil.
func siluGateBackward(dg, du, dy, g, u, sig []float32) {
	parallelFor(len(g), elementwiseChunk, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			v := float64(g[i])
			s := float64(sig[i])
			if du != nil {
				du[i] = dy[i] * float32(v*s)
			}
			if dg != nil {
				dg[i] = float32(float64(dy[i]) * float64(u[i]) * s * (1 + v*(1-s)))
			}
		}
	})
}
