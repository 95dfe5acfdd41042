package kernels

import (
	"math"
	"testing"
	"time"
)

// vecSpecials are the special values the vector loops must treat as the Go
// loops do: ±0, tiny (denormal and normal), huge, ±Inf and NaN, and a few
// ordinary values.
var vecSpecials = []float32{
	0, float32(math.Copysign(0, -1)),
	math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, 1e-30, -1e-30, 1e-7, -1e-7,
	1e30, -1e30, math.MaxFloat32, -math.MaxFloat32,
	float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
	-708, 708, -745, 745, -88, 88, 0.5, -0.5, 1, -1, 3, -3, 17.25, -40,
}

// vecInputs returns the inputs of TestVecKernels: every length 0..70 over
// the special values and expArguments (rotated so that each value meets
// every lane and the tails), then expArguments and their negations whole.
func vecInputs() [][]float32 {
	xs := expArguments()
	pool := append(append([]float32(nil), vecSpecials...), xs[:4096]...)
	for _, x := range xs[len(xs)-64:] {
		pool = append(pool, x, -x)
	}
	var in [][]float32
	for n := 0; n <= 70; n++ {
		for off := 0; off < len(pool); off += 7 + n {
			x := make([]float32, n)
			for i := range x {
				x[i] = pool[(off+i)%len(pool)]
			}
			in = append(in, x)
		}
	}
	all := append([]float32(nil), xs...)
	for _, x := range xs {
		all = append(all, -x)
	}
	return append(in, all)
}

// bitsEqual32 returns the first index where a and b differ in their bits,
// or -1. NaNs count as equal: where two NaNs meet in an operation, which
// one's sign and payload the result carries depends on the operand order
// the Go compiler picks for a commutative operation, which is unspecified.
func bitsEqual32(a, b []float32) int {
	for i := range a {
		if !same32(a[i], b[i]) {
			return i
		}
	}
	return -1
}

// same64 reports whether a and b have the same bits, or are both NaN.
func same64(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || (a != a && b != b)
}

// TestVecKernels compares the AVX2 loops with the Go loops bit for bit:
// every stored value and the returned sums, over lengths 0..70 and the
// special values (see vecInputs); NaNs only need to be NaN (bitsEqual32).
func TestVecKernels(t *testing.T) {
	if !useVec {
		t.Skip("no assembly loops on this CPU or architecture")
	}
	if e, d := float32(1+1.0/4096), 1+1.0/(1<<27); fusedMulAdd32(e, e, -(1+1.0/2048)) != 0 || fusedMulAdd64(d, d, -(1+1.0/(1<<26))) != 0 {
		t.Skip("this build fuses x*y+z (GOAMD64=v3 or higher): the Go loops round once where the assembly rounds twice")
	}
	inputs := vecInputs()
	clone := func(x []float32) []float32 { return append([]float32{}, x...) }

	t.Run("expScaledSub", func(t *testing.T) {
		for _, fm := range [][2]float32{{1, 0}, {0.5, 0}, {1, 0.25}, {0.125, 3.5}, {1.7, -2}} {
			f, m := fm[0], fm[1]
			for _, x := range inputs {
				yg, yv := make([]float32, len(x)), make([]float32, len(x))
				sg := expScaledSubWith(yg, x, f, m, false)
				sv := expScaledSubWith(yv, x, f, m, true)
				if i := bitsEqual32(yg, yv); i >= 0 || !same64(sg, sv) {
					t.Fatalf("f %g m %g len %d: differ at %d; sums %g, %g", f, m, len(x), i, sg, sv)
				}
				// Without storing, and in place: the same sum, the same values.
				if s := expScaledSubWith(nil, x, f, m, true); !same64(s, sg) {
					t.Fatalf("f %g m %g len %d: sum without y %g, want %g", f, m, len(x), s, sg)
				}
				in := clone(x)
				if s := expScaledSubWith(in, in, f, m, true); !same64(s, sg) || bitsEqual32(in, yg) >= 0 {
					t.Fatalf("f %g m %g len %d: in place differs", f, m, len(x))
				}
			}
		}
	})

	t.Run("softmaxGradRow", func(t *testing.T) {
		for _, p := range [][3]float32{{1, 0, 0.5}, {0.125, 2, -0.25}, {1.3, -1, 3}} {
			f, L, D := p[0], p[1], p[2]
			for j, x := range inputs {
				dp := make([]float32, len(x))
				for i := range dp {
					dp[i] = vecSpecials[(i+j)%len(vecSpecials)] * 0.75
				}
				sg, dg := clone(x), clone(dp)
				sv, dv := clone(x), clone(dp)
				cg := softmaxGradRowWith(sg, dg, f, L, D, false)
				cv := softmaxGradRowWith(sv, dv, f, L, D, true)
				if i, k := bitsEqual32(sg, sv), bitsEqual32(dg, dv); i >= 0 || k >= 0 || !same32(cg, cv) {
					t.Fatalf("f %g L %g D %g len %d: s differ at %d, dp at %d; dc %g, %g", f, L, D, len(x), i, k, cg, cv)
				}
			}
		}
	})

	t.Run("sigmoidWeightedRows", func(t *testing.T) {
		for a := SiLU; a.Valid(); a++ {
			k, c, ok := a.sigmoidWeighted()
			if !ok {
				continue
			}
			for _, x := range inputs {
				yg, sg := make([]float32, len(x)), make([]float32, len(x))
				yv, sv := make([]float32, len(x)), make([]float32, len(x))
				sigmoidWeightedRowsWith(yg, sg, x, k, c, false)
				sigmoidWeightedRowsWith(yv, sv, x, k, c, true)
				y2 := make([]float32, len(x))
				sigmoidWeightedRowsWith(y2, nil, x, k, c, true)
				if i, j, l := bitsEqual32(yg, yv), bitsEqual32(sg, sv), bitsEqual32(yg, y2); i >= 0 || j >= 0 || l >= 0 {
					t.Fatalf("%v len %d: y differ at %d, σ at %d, unsaved y at %d", a, len(x), i, j, l)
				}
			}
		}
	})

	t.Run("rotateHalf", func(t *testing.T) {
		for _, inverse := range []bool{false, true} {
			for j, x := range inputs {
				half := len(x) / 2
				x = x[:2*half]
				c, s := make([]float32, half), make([]float32, half)
				for i := range c {
					c[i] = vecSpecials[(i+j)%len(vecSpecials)]
					s[i] = vecSpecials[(3*i+j+5)%len(vecSpecials)] * 0.5
				}
				yg, yv := make([]float32, len(x)), make([]float32, len(x))
				rotateHalfWith(yg, x, c, s, inverse, false)
				rotateHalfWith(yv, x, c, s, inverse, true)
				in := clone(x)
				rotateHalfWith(in, in, c, s, inverse, true)
				if i, k := bitsEqual32(yg, yv), bitsEqual32(yg, in); i >= 0 || k >= 0 {
					t.Fatalf("inverse %v half %d: differ at %d, in place at %d", inverse, half, i, k)
				}
			}
		}
	})
}

// fusedMulAdd32 returns x*y + z as this build compiles it: 0 for
// x = y = 1+2⁻¹², z = −(1+2⁻¹¹) when x*y is rounded to float32 before the
// addition (as at GOAMD64=v1, and in the assembly), 2⁻²⁴ when the compiler
// fuses them into one FMA. fusedMulAdd64 is the same in float64 (x = y =
// 1+2⁻²⁷, z = −(1+2⁻²⁶): 0 or 2⁻⁵⁴).
//
//go:noinline
func fusedMulAdd32(x, y, z float32) float32 { return x*y + z }

//go:noinline
func fusedMulAdd64(x, y, z float64) float64 { return x*y + z }

// BenchmarkVecKernels runs each element-wise loop in Go and in assembly,
// alternately in every iteration (so both see the same machine load), and
// reports each one's ns/value and the speed-up go/asm.
func BenchmarkVecKernels(b *testing.B) {
	if !useVec {
		b.Skip("no assembly loops on this CPU or architecture")
	}
	r := newRand(5)
	// Softmax-like arguments (logits within a few units of their maximum),
	// activations of unit scale.
	const total = 1 << 14
	logits := randn(r, total, 2)
	var mx float32
	for _, v := range logits {
		mx = max(mx, v)
	}
	acts := randn(r, total, 1)
	dpIn := randn(r, total, 1)
	y := make([]float32, total)
	s2 := make([]float32, total)
	dp2 := make([]float32, total)
	cs, sn := make([]float32, total/2), make([]float32, total/2)
	for i := range cs {
		a := float64(i) * 0.01
		cs[i], sn[i] = float32(math.Cos(a)), float32(math.Sin(a))
	}
	var sink float64

	type kernel struct {
		name string
		run  func(vec bool) // over total values
	}
	rows := func(n int, fn func(lo, hi int, vec bool)) func(bool) {
		return func(vec bool) {
			for lo := 0; lo < total; lo += n {
				fn(lo, lo+n, vec)
			}
		}
	}
	kernels := []kernel{
		{"expScaledSub/store/row256", rows(256, func(lo, hi int, vec bool) {
			sink += expScaledSubWith(y[lo:hi], logits[lo:hi], 1, mx, vec)
		})},
		{"expScaledSub/sum/row4096", rows(4096, func(lo, hi int, vec bool) {
			sink += expScaledSubWith(nil, logits[lo:hi], 1, mx, vec)
		})},
		{"softmaxGradRow/row64", func(vec bool) {
			copy(s2, logits)
			copy(dp2, dpIn)
			rows(64, func(lo, hi int, vec bool) {
				sink += float64(softmaxGradRowWith(s2[lo:hi], dp2[lo:hi], 0.125, mx, 0.1, vec))
			})(vec)
		}},
		{"sigmoidWeightedRows/gelu_new", rows(elementwiseChunk, func(lo, hi int, vec bool) {
			k, c, _ := GELUTanh.sigmoidWeighted()
			sigmoidWeightedRowsWith(y[lo:hi], s2[lo:hi], acts[lo:hi], k, c, vec)
		})},
		{"sigmoidWeightedRows/silu", rows(elementwiseChunk, func(lo, hi int, vec bool) {
			sigmoidWeightedRowsWith(y[lo:hi], s2[lo:hi], acts[lo:hi], 1, 0, vec)
		})},
		{"rotateHalf/head64", rows(64, func(lo, hi int, vec bool) {
			h := (lo / 2) % (total / 2 / 32 * 32)
			rotateHalfWith(y[lo:hi], acts[lo:hi], cs[h:h+32], sn[h:h+32], false, vec)
		})},
		{"rotateHalf/inverse/head64", rows(64, func(lo, hi int, vec bool) {
			h := (lo / 2) % (total / 2 / 32 * 32)
			rotateHalfWith(y[lo:hi], acts[lo:hi], cs[h:h+32], sn[h:h+32], true, vec)
		})},
	}
	for _, k := range kernels {
		b.Run(k.name, func(b *testing.B) {
			var tg, tv time.Duration
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				k.run(false)
				t1 := time.Now()
				k.run(true)
				tg += t1.Sub(t0)
				tv += time.Since(t1)
			}
			n := float64(b.N) * total
			b.ReportMetric(float64(tg.Nanoseconds())/n, "go-ns/value")
			b.ReportMetric(float64(tv.Nanoseconds())/n, "asm-ns/value")
			b.ReportMetric(float64(tg)/float64(tv), "speedup")
		})
	}
	sinkF = sink
}
