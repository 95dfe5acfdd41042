package kernels

import (
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/mat"
)

// Softcap returns cap·tanh(x/cap) element-wise (Gemma 2's logit soft
// capping); a cap of 0 means none, and x itself is returned. cap must not
// be negative. tanh is computed in float64 (ftanh) and the result rounded
// to float32; the backward pass multiplies the gradient by 1 − tanh², from
// the tanh values kept (as float32) by the forward pass.
//
// For the final logits, LinearCrossEntropySoftcap and LinearNLLSoftcap cap
// them inside the fused LM head and loss instead.
func Softcap(x mat.Tensor, cap float32) mat.Tensor {
	if cap == 0 {
		return x
	}
	return run(&softcapFn{x: x, cap: cap})
}

type softcapFn struct {
	output
	x   mat.Tensor
	cap float32
	th  []float32 // tanh(x/cap), kept for the backward pass
}

func (f *softcapFn) Operands() []mat.Tensor { return []mat.Tensor{f.x} }

func (f *softcapFn) Forward() (mat.Tensor, error) {
	x, r, c, err := dense("Softcap", "x", f.x)
	if err != nil {
		return nil, err
	}
	if !(f.cap > 0) || math.IsInf(float64(f.cap), 0) {
		return nil, fmt.Errorf("kernels.Softcap: cap must be finite and > 0, got %v", f.cap)
	}
	y := f.keep(newMatrix(r, c))
	if f.x.RequiresGrad() {
		f.th = getF32(len(x))
	}
	yd, th, cp := y.Data().F32(), f.th, float64(f.cap)
	parallelFor(len(x), 1<<14, func(_, lo, hi int) {
		for i, v := range x[lo:hi] {
			t := ftanh(float64(v) / cp)
			yd[lo+i] = float32(cp * t)
			if th != nil {
				th[lo+i] = float32(t)
			}
		}
	})
	return y, nil
}

func (f *softcapFn) Backward(gy mat.Tensor) error {
	defer f.releaseGrad()
	if !f.x.RequiresGrad() || f.th == nil {
		return nil
	}
	g := gradData(gy)
	th := f.th
	if len(g) != len(th) {
		return opError("Softcap", "output gradient has %d values, want %d", len(g), len(th))
	}
	dx := getF32(len(th))
	parallelFor(len(th), 1<<15, func(_, lo, hi int) {
		for i, t := range th[lo:hi] {
			dx[lo+i] = g[lo+i] * (1 - t*t)
		}
	})
	putF32(th)
	f.th = nil
	accGrad(f.x, dx)
	return nil
}

// ftanh returns tanh(x) with a relative error below 1e-9: an odd Taylor
// polynomial for |x| < 1/8, (1 − e^(−2|x|))/(1 + e^(−2|x|)) with fexpNeg
// beyond. About three times faster than math.Tanh; the soft-capped
// kernels call it once per logit.
func ftanh(x float64) float64 {
	a := math.Abs(x)
	if a < 0.125 {
		x2 := x * x
		return x * (1 + x2*(-1.0/3+x2*(2.0/15+x2*(-17.0/315+x2*(62.0/2835)))))
	}
	if a != a {
		return x // NaN
	}
	e := fexpNeg(-2 * a)
	t := (1 - e) / (1 + e)
	if x < 0 {
		return -t
	}
	return t
}

// capLogit returns the soft-capped logit c·tanh(f·z/c) (rounded to
// float32) and the tanh: the one definition the soft-capped attention
// kernels use, forward and backward, so that both see the same logits.
func capLogit(f, z, c float32) (float32, float64) {
	th := ftanh(float64(f*z) / float64(c))
	return float32(float64(c) * th), th
}

// capRow replaces x[i] by the soft-capped logit capLogit(f, x[i], c).
func capRow(x []float32, f, c float32) {
	for i, z := range x {
		x[i], _ = capLogit(f, z, c)
	}
}

// softcapGradRow is softmaxGradRow for soft-capped logits
// l = capLogit(f, s[c], C): p = e^(l − L), dl = p·(dp[c] − D) and, through
// the cap, du = dl·(1 − tanh²) the gradient of the uncapped logit f·s[c];
// it sets s[c] = p and dp[c] = du·f and returns Σ du·s[c] (with the s[c]
// it was given).
func softcapGradRow(s, dp []float32, f, C, L, D float32) float32 {
	dp = dp[:len(s)]
	var dc float32
	for c, z := range s {
		l, th := capLogit(f, z, C)
		p := float32(fexpNeg(float64(l - L)))
		du := p * (dp[c] - D) * float32(1-th*th)
		dc += du * z
		s[c] = p
		dp[c] = du * f
	}
	return dc
}
