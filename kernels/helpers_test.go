package kernels

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
)

// Tolerances. Forward: the float32 op against the float64 reference,
// relative to the largest reference magnitude. Gradients: the op's analytic
// float32 gradient against a central finite difference (float64) of the
// float64 reference, relative to the largest finite-difference magnitude of
// that input.
const (
	fwdTol  = 1e-5
	gradTol = 1e-5
	fdStep  = 1e-5
	maxFD   = 160 // elements checked per input (random subset beyond that)
)

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

func randn(r *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * scale)
	}
	return x
}

func uniform(r *rand.Rand, n int, lo, hi float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + (hi-lo)*r.Float64())
	}
	return x
}

func f64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func newDense32(data []float32, rows, cols int) *mat.Dense[float32] {
	return mat.NewDense[float32](mat.WithShape(rows, cols), mat.WithBacking(append([]float32(nil), data...)))
}

// input describes one operand of an op under test.
type input struct {
	name       string
	data       []float32
	rows, cols int
	noGrad     bool // a constant (not a parameter)
}

// maxAbs returns max |x|.
func maxAbs(x []float64) float64 {
	m := 0.0
	for _, v := range x {
		m = math.Max(m, math.Abs(v))
	}
	return m
}

// relErr returns max|got−want| / max(max|want|, floor).
func relErr(got []float32, want []float64, floor float64) float64 {
	e := 0.0
	for i := range want {
		e = math.Max(e, math.Abs(float64(got[i])-want[i]))
	}
	return e / math.Max(maxAbs(want), floor)
}

// grad32 returns the accumulated gradient of p, or zeros if there is none.
// (Dense.Grad returns a typed nil pointer, so test HasGrad, not Grad()==nil.)
func grad32(p *nn.Param) []float32 {
	if !p.HasGrad() {
		return make([]float32, p.Size())
	}
	return p.Grad().Data().F32()
}

// checkOp builds the op over parameters holding ins, checks its forward value
// against ref and the gradients of every non-constant input against central
// finite differences of L = Σ ref(x) ⊙ R computed in float64.
func checkOp(t *testing.T, seed uint64, ins []input, build func([]mat.Tensor) mat.Tensor, ref func([][]float64) []float64) {
	t.Helper()
	checkOpWith(t, seed, ins, build, ref, checkOpts{})
}

// checkOpts tunes checkOpWith.
type checkOpts struct {
	// autoSeed: the output must be a scalar, and spago's implicit dL/dL = 1
	// seed is used instead of a random one.
	autoSeed bool
	// fdElems: elements checked per input (default maxFD).
	fdElems int
}

// checkOpWith is checkOp with options.
func checkOpWith(t *testing.T, seed uint64, ins []input, build func([]mat.Tensor) mat.Tensor, ref func([][]float64) []float64, o checkOpts) {
	t.Helper()
	if o.fdElems == 0 {
		o.fdElems = maxFD
	}
	params := make([]*nn.Param, len(ins))
	ts := make([]mat.Tensor, len(ins))
	xs := make([][]float64, len(ins))
	for i, in := range ins {
		if len(in.data) != in.rows*in.cols {
			t.Fatalf("bad test input %s: %d values for [%d,%d]", in.name, len(in.data), in.rows, in.cols)
		}
		params[i] = nn.NewParam(newDense32(in.data, in.rows, in.cols))
		params[i].SetRequiresGrad(!in.noGrad)
		ts[i] = params[i]
		xs[i] = f64(in.data)
	}
	out := build(ts)
	got := out.Value().Data().F32()
	want := ref(xs)
	if len(got) != len(want) {
		t.Fatalf("forward: %d values, reference has %d", len(got), len(want))
	}
	fe := relErr(got, want, 1e-6)
	if fe > fwdTol {
		t.Errorf("forward: relative error %.3g > %.0g", fe, fwdTol)
	}

	r := newRand(seed ^ 0xabcdef)
	R := randn(r, len(got), 1)
	if o.autoSeed {
		R = []float32{1}
	} else {
		out.AccGrad(newDense32(R, out.Shape()[0], out.Shape()[1]))
	}
	if err := ag.Backward(out); err != nil {
		t.Fatalf("backward: %v", err)
	}
	loss := func() float64 {
		y := ref(xs)
		s := 0.0
		for i, v := range y {
			s += v * float64(R[i])
		}
		return s
	}
	worst := 0.0
	for i, in := range ins {
		if in.noGrad {
			if params[i].HasGrad() {
				t.Errorf("%s: constant input received a gradient", in.name)
			}
			continue
		}
		g := grad32(params[i])
		idx := r.Perm(len(in.data))
		if len(idx) > o.fdElems {
			idx = idx[:o.fdElems]
		}
		fd := make([]float64, len(idx))
		an := make([]float32, len(idx))
		for n, e := range idx {
			orig := xs[i][e]
			xs[i][e] = orig + fdStep
			lp := loss()
			xs[i][e] = orig - fdStep
			lm := loss()
			xs[i][e] = orig
			fd[n] = (lp - lm) / (2 * fdStep)
			an[n] = g[e]
		}
		e := relErr(an, fd, 1e-6)
		worst = math.Max(worst, e)
		if e > gradTol {
			t.Errorf("grad %s: relative error %.3g > %.0g (max |fd| %.3g)", in.name, e, gradTol, maxAbs(fd))
		}
	}
	t.Logf("forward relative error %.2g, worst gradient relative error %.2g", fe, worst)
}

// backwardWith seeds y's gradient with g (L = Σ y ⊙ g) and runs spago's
// backward pass from y.
func backwardWith(tb testing.TB, y mat.Tensor, g []float32) {
	tb.Helper()
	y.AccGrad(newDense32(g, y.Shape()[0], y.Shape()[1]))
	if err := ag.Backward(y); err != nil {
		tb.Fatalf("backward: %v", err)
	}
}
