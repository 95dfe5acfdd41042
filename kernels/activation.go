package kernels

import (
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/mat"
)

// Activation is the element-wise function of a transformer MLP. The zero
// value is not an activation.
type Activation uint8

// The activations, with the names Hugging Face's ACT2FN gives them in
// config.json (activation_function, hidden_act).
const (
	// SiLU is x·σ(x): "silu", "swish".
	SiLU Activation = iota + 1
	// GELU is the exact x·Φ(x), Φ the normal distribution function
	// (0.5·(1+erf(x/√2))): "gelu", "gelu_python".
	GELU
	// GELUTanh is the tanh approximation 0.5·x·(1+tanh(√(2/π)·(x+0.044715·x³))):
	// "gelu_new" (GPT-2), "gelu_pytorch_tanh", "gelu_accurate".
	GELUTanh
	// GELUFast is GELUTanh with √(2/π) written 0.7978845608: "gelu_fast".
	GELUFast
	// QuickGELU is x·σ(1.702·x): "quick_gelu".
	QuickGELU
	// ReLU is max(x, 0): "relu".
	ReLU
)

// activationNames maps every accepted config.json name to its function;
// the first name of each is its canonical name (String).
var activationNames = []struct {
	name string
	act  Activation
}{
	{"silu", SiLU}, {"swish", SiLU},
	{"gelu", GELU}, {"gelu_python", GELU},
	{"gelu_new", GELUTanh}, {"gelu_pytorch_tanh", GELUTanh}, {"gelu_accurate", GELUTanh},
	{"gelu_fast", GELUFast},
	{"quick_gelu", QuickGELU},
	{"relu", ReLU},
}

// ActivationNamed returns the activation config.json calls name, and
// whether there is one.
func ActivationNamed(name string) (Activation, bool) {
	for _, a := range activationNames {
		if a.name == name {
			return a.act, true
		}
	}
	return 0, false
}

// ActivationNames lists every name ActivationNamed accepts.
func ActivationNames() []string {
	names := make([]string, len(activationNames))
	for i, a := range activationNames {
		names[i] = a.name
	}
	return names
}

// Valid reports whether a is one of the activations.
func (a Activation) Valid() bool { return a >= SiLU && a <= ReLU }

// String returns a's config.json name.
func (a Activation) String() string {
	for _, n := range activationNames {
		if n.act == a {
			return n.name
		}
	}
	return fmt.Sprintf("Activation(%d)", uint8(a))
}

// Activate returns act(x) element-wise (GPT-2's MLP).
func Activate(x mat.Tensor, act Activation) mat.Tensor {
	return run(&activationFn{act: act, x: x})
}

// GLU returns act(gate) ⊙ up element-wise, the gated linear unit of the
// Llama-family MLP (SwiGLU with SiLU, GeGLU with GELU). gate and up must
// have the same shape.
func GLU(gate, up mat.Tensor, act Activation) mat.Tensor {
	return run(&activationFn{act: act, x: gate, up: up})
}

// activationFn is Activate (up nil) and GLU.
type activationFn struct {
	output
	act   Activation
	x, up mat.Tensor
	// saved is what the backward pass needs besides x, one float32 per
	// element (act.saves): σ(z) for the sigmoid-weighted activations, Φ(x)
	// for GELU; nil when no operand requires a gradient.
	saved []float32
}

func (f *activationFn) Operands() []mat.Tensor {
	if f.up == nil {
		return []mat.Tensor{f.x}
	}
	return []mat.Tensor{f.x, f.up}
}

// names returns the operation's name and its first operand's, for errors.
func (f *activationFn) names() (op, x string) {
	if f.up == nil {
		return "Activate", "x"
	}
	return "GLU", "gate"
}

func (f *activationFn) requiresGrad() bool {
	return f.x.RequiresGrad() || (f.up != nil && f.up.RequiresGrad())
}

func (f *activationFn) Forward() (mat.Tensor, error) {
	op, xName := f.names()
	if !f.act.Valid() {
		return nil, opError(op, "invalid activation %v", f.act)
	}
	x, r, c, err := dense(op, xName, f.x)
	if err != nil {
		return nil, err
	}
	var u []float32
	if f.up != nil {
		var ur, uc int
		if u, ur, uc, err = dense(op, "up", f.up); err != nil {
			return nil, err
		}
		if r != ur || c != uc {
			return nil, opError(op, "shapes differ: gate is [%d,%d], up is [%d,%d]", r, c, ur, uc)
		}
	}
	y := f.keep(newMatrix(r, c))
	if f.act.saves() && f.requiresGrad() {
		f.saved = getF32(len(x))
	}
	activationForward(f.act, y.Data().F32(), f.saved, x, u)
	return y, nil
}

func (f *activationFn) Backward(gy mat.Tensor) error {
	defer f.releaseGrad()
	if !f.requiresGrad() || (f.act.saves() && f.saved == nil) {
		return nil
	}
	op, xName := f.names()
	x, _, _, _ := dense(op, xName, f.x)
	var u []float32
	if f.up != nil {
		u, _, _, _ = dense(op, "up", f.up)
	}
	dy := gradData(gy)
	if len(dy) != len(x) {
		return opError(op, "output gradient has %d values, want %d", len(dy), len(x))
	}
	var dx, du []float32
	if f.x.RequiresGrad() {
		dx = getF32(len(x))
	}
	if f.up != nil && f.up.RequiresGrad() {
		du = getF32(len(u))
	}
	activationBackward(f.act, dx, du, dy, x, u, f.saved)
	if f.saved != nil {
		putF32(f.saved)
		f.saved = nil
	}
	if dx != nil {
		accGrad(f.x, dx)
	}
	if du != nil {
		accGrad(f.up, du)
	}
	return nil
}

// elementwiseChunk is the minimum number of elements per goroutine for
// transcendental element-wise kernels.
const elementwiseChunk = 1 << 13

// saves reports whether a's backward pass needs a value kept by its
// forward pass (ReLU's needs x only).
func (a Activation) saves() bool { return a != ReLU }

// sigmoidWeighted returns k and c such that a(x) = x·σ(k·(x + c·x³)), for
// the activations of that form (SiLU, GELUTanh, GELUFast, QuickGELU): the
// tanh GELUs are such since 0.5·(1+tanh u) = σ(2u).
func (a Activation) sigmoidWeighted() (k, c float64, ok bool) {
	switch a {
	case SiLU:
		return 1, 0, true
	case GELUTanh:
		return 2 * 0.7978845608028654, 0.044715, true // √(2/π)
	case GELUFast:
		return 2 * 0.7978845608, 0.044715, true
	case QuickGELU:
		return 1.702, 0, true
	}
	return 0, 0, false
}

// activationForward sets y = act(x), times up when up is not nil (the
// product of the float32 act(x) and up), and saved (when not nil) to what
// the backward pass needs.
func activationForward(act Activation, y, saved, x, up []float32) {
	k, c, sigmoid := act.sigmoidWeighted()
	parallelFor(len(x), elementwiseChunk, func(_, lo, hi int) {
		ys, xs := y[lo:hi], x[lo:hi]
		var ss []float32
		if saved != nil {
			ss = saved[lo:hi]
		}
		switch {
		case sigmoid:
			sigmoidWeightedRows(ys, ss, xs, k, c)
		case act == GELU:
			geluRows(ys, ss, xs)
		default:
			reluRows(ys, xs)
		}
		if up != nil {
			for i, u := range up[lo:hi] {
				ys[i] *= u
			}
		}
	})
}

// activationBackward sets dx = dy·act'(x) (times up when up is not nil)
// and du = dy·act(x), from the values activationForward saved; dx or du
// may be nil.
func activationBackward(act Activation, dx, du, dy, x, up, saved []float32) {
	k, c, sigmoid := act.sigmoidWeighted()
	parallelFor(len(x), elementwiseChunk, func(_, lo, hi int) {
		// Each loop takes its own chunk of every slice (nil stays nil).
		part := func(s []float32) []float32 {
			if s == nil {
				return nil
			}
			return s[lo:hi]
		}
		dxs, dus, dys, xs, ups, ss := part(dx), part(du), dy[lo:hi], x[lo:hi], part(up), part(saved)
		switch {
		case sigmoid:
			sigmoidWeightedBackward(dxs, dus, dys, xs, ups, ss, k, c)
		case act == GELU:
			geluBackward(dxs, dus, dys, xs, ups, ss)
		default:
			reluBackward(dxs, dus, dys, xs, ups)
		}
	})
}

// setGrads stores element i's gradients, from the activation's value a(x)
// and slope a'(x): dx = dy·up·a'(x) (up taken as 1 when nil), and
// du = dy·a(x) with a(x) rounded to float32, as the forward pass multiplied
// it. The backward loops share it (it is inlined).
func setGrads(dx, du, dy, up []float32, i int, value, slope float64) {
	m := float64(dy[i])
	if up != nil {
		m *= float64(up[i])
		if du != nil {
			du[i] = dy[i] * float32(value)
		}
	}
	if dx != nil {
		dx[i] = float32(m * slope)
	}
}

// sigmoidWeightedRows sets y = x·σ(z) with z = k·(x + c·x³), and s = σ(z)
// when s is not nil: one exponential (fexp written out, as every hot loop
// does; see fastmath.go) and one division, no branch on the sign. It uses
// the AVX2 loop where the CPU has it (vec_amd64.go; the same bits).
func sigmoidWeightedRows(y, s, x []float32, k, c float64) {
	sigmoidWeightedRowsWith(y, s, x, k, c, useVec)
}

// sigmoidWeightedRowsWith is sigmoidWeightedRows, with the AVX2 loop when
// vec (and the architecture has one) and the Go loop alone otherwise.
func sigmoidWeightedRowsWith(y, s, x []float32, k, c float64, vec bool) {
	y = y[:len(x)]
	if s != nil {
		s = s[:len(x)]
	}
	i0 := 0
	if vec {
		i0 = sigmoidWeightedRowsVec(y, s, x, k, c)
	}
	x, y = x[i0:], y[i0:][:len(x)-i0]
	if s != nil {
		s = s[i0:][:len(x)]
	}
	for i, xv := range x {
		v := float64(xv)
		z := v
		if c != 0 { // (0·x³ would turn x = ±Inf into NaN)
			z += c * v * v * v
		}
		a := -k * z // σ(z) = 1/(1+e^a)
		if a < -708 {
			a = -708
		}
		if a > 708 {
			a = 708
		}
		t := a*(64*expLog2e) + expMagic
		n := t - expMagic
		r := (a - n*(expLn2Hi/64)) - n*(expLn2Lo/64)
		p := 1 + r*(1+r*(0.5+r*(1.0/6)))
		j := int64(int32(uint32(math.Float64bits(t))))
		sig := 1 / (1 + p*math.Float64frombits(expTable[j&63]+uint64(j>>6)<<52))
		y[i] = float32(v * sig)
		if s != nil {
			s[i] = float32(sig)
		}
	}
}

// sigmoidWeightedBackward is the backward pass of sigmoidWeightedRows
// (see setGrads) from the saved s = σ(z): d/dx x·s = s + x·s·(1−s)·z′,
// z′ = k·(1 + 3c·x²). (Unlike the forward pass it needs no branch for
// c = 0: the slope at x = ±Inf is NaN either way.)
func sigmoidWeightedBackward(dx, du, dy, x, up, saved []float32, k, c float64) {
	dy, saved = dy[:len(x)], saved[:len(x)]
	for i, xv := range x {
		v := float64(xv)
		s := float64(saved[i])
		zp := k * (1 + 3*c*v*v)
		setGrads(dx, du, dy, up, i, v*s, s+v*s*(1-s)*zp)
	}
}

// geluRows sets y = x·Φ(x), and phi = Φ(x) when phi is not nil. Φ is
// 0.5·erfc(−x/√2), accurate in both tails.
func geluRows(y, phi, x []float32) {
	y = y[:len(x)]
	for i, xv := range x {
		v := float64(xv)
		cdf := 0.5 * math.Erfc(-v/math.Sqrt2)
		y[i] = float32(v * cdf)
		if phi != nil {
			phi[i] = float32(cdf)
		}
	}
}

// geluBackward is the backward pass of geluRows (see setGrads) from the
// saved Φ(x): d/dx x·Φ(x) = Φ(x) + x·φ(x), φ the normal density.
func geluBackward(dx, du, dy, x, up, phi []float32) {
	phi = phi[:len(x)]
	for i, xv := range x {
		v := float64(xv)
		cdf := float64(phi[i])
		pdf := fexp(-0.5*v*v) * (1 / math.Sqrt(2*math.Pi))
		setGrads(dx, du, dy, up, i, v*cdf, cdf+v*pdf)
	}
}

// reluRows sets y = max(x, 0) (NaN stays NaN).
func reluRows(y, x []float32) {
	y = y[:len(x)]
	for i, v := range x {
		if v <= 0 {
			v = 0
		}
		y[i] = v
	}
}

// reluBackward is the backward pass of reluRows (see setGrads): the slope
// is 1 where x > 0, else 0 (0 at 0, as PyTorch takes it).
func reluBackward(dx, du, dy, x, up []float32) {
	for i, xv := range x {
		if xv > 0 {
			setGrads(dx, du, dy, up, i, float64(xv), 1)
		} else {
			setGrads(dx, du, dy, up, i, 0, 0)
		}
	}
}
