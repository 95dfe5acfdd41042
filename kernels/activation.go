package kernels

import (
	"math"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
)

// GELUTanh returns the tanh approximation of GELU applied element-wise
// (GPT-2 "gelu_new"): 0.5·x·(1+tanh(√(2/π)·(x+0.044715·x³))).
func GELUTanh(x mat.Tensor) mat.Tensor {
	return ag.NewOperator(&geluFn{x: x}).Run()
}

type geluFn struct{ x mat.Tensor }

func (f *geluFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *geluFn) Forward() (mat.Tensor, error) {
	x, r, c, err := dense("GELUTanh", "x", f.x)
	if err != nil {
		return nil, err
	}
	y := newMatrix(r, c)
	geluForward(y.Data().F32(), x)
	return y, nil
}

func (f *geluFn) Backward(gy mat.Tensor) error {
	if !f.x.RequiresGrad() {
		return nil
	}
	x, _, _, _ := dense("GELUTanh", "x", f.x)
	g := gradData(gy)
	if len(g) != len(x) {
		return shapeError("GELUTanh", "output gradient has %d values, want %d", len(g), len(x))
	}
	dx := make([]float32, len(x))
	geluBackward(dx, g, x)
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

// geluForward sets y = gelu_tanh(x) element-wise.
func geluForward(y, x []float32) {
	parallelFor(len(x), elementwiseChunk, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			v := float64(x[i])
			y[i] = float32(0.5 * v * (1 + math.Tanh(geluC*(v+geluA*v*v*v))))
		}
	})
}

// geluBackward sets dx = gy · gelu_tanh'(x) element-wise.
func geluBackward(dx, gy, x []float32) {
	parallelFor(len(x), elementwiseChunk, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			v := float64(x[i])
			th := math.Tanh(geluC * (v + geluA*v*v*v))
			d := 0.5*(1+th) + 0.5*v*(1-th*th)*geluC*(1+3*geluA*v*v)
			dx[i] = float32(float64(gy[i]) * d)
		}
	})
}

// SiLUGate returns silu(gate) ⊙ up element-wise, with silu(g) = g·σ(g)
// (the Llama MLP gate). gate and up must have the same shape.
func SiLUGate(gate, up mat.Tensor) mat.Tensor {
	return ag.NewOperator(&siluGateFn{gate: gate, up: up}).Run()
}

type siluGateFn struct{ gate, up mat.Tensor }

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
	y := newMatrix(gr, gc)
	siluGateForward(y.Data().F32(), g, u)
	return y, nil
}

func (f *siluGateFn) Backward(gy mat.Tensor) error {
	g, _, _, _ := dense("SiLUGate", "gate", f.gate)
	u, _, _, _ := dense("SiLUGate", "up", f.up)
	dy := gradData(gy)
	if len(dy) != len(g) {
		return shapeError("SiLUGate", "output gradient has %d values, want %d", len(dy), len(g))
	}
	var dg, du []float32
	if f.gate.RequiresGrad() {
		dg = make([]float32, len(g))
	}
	if f.up.RequiresGrad() {
		du = make([]float32, len(u))
	}
	siluGateBackward(dg, du, dy, g, u)
	if dg != nil {
		accGrad(f.gate, dg)
	}
	if du != nil {
		accGrad(f.up, du)
	}
	return nil
}

// sigmoid returns 1/(1+e^(−v)) without overflow for large |v|.
func sigmoid(v float64) float64 {
	if v >= 0 {
		return 1 / (1 + math.Exp(-v))
	}
	e := math.Exp(v)
	return e / (1 + e)
}

// siluGateForward sets y = silu(g)·u element-wise.
func siluGateForward(y, g, u []float32) {
	parallelFor(len(g), elementwiseChunk, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			v := float64(g[i])
			y[i] = float32(v*sigmoid(v)) * u[i]
		}
	})
}

// siluGateBackward sets dg = dy·u·silu'(g) and du = dy·silu(g); either
// output may be nil.
func siluGateBackward(dg, du, dy, g, u []float32) {
	parallelFor(len(g), elementwiseChunk, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			v := float64(g[i])
			s := sigmoid(v)
			if du != nil {
				du[i] = dy[i] * float32(v*s)
			}
			if dg != nil {
				dg[i] = float32(float64(dy[i]) * float64(u[i]) * s * (1 + v*(1-s)))
			}
		}
	})
}
