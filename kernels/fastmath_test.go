package kernels

import (
	"math"
	"testing"
)

func TestFastExp(t *testing.T) {
	worst := 0.0
	for i := 0; i <= 400000; i++ {
		x := -float64(i) * 0.00177 // [-708, 0]
		if e, w := fexpNeg(x), math.Exp(x); w > 0 {
			worst = math.Max(worst, math.Abs(e-w)/w)
		}
	}
	if worst > 1e-10 {
		t.Errorf("fexpNeg relative error %g", worst)
	}
	if fexpNeg(-800) != 0 || fexpNeg(math.Inf(-1)) != 0 || fexpNeg(0) != 1 {
		t.Error("fexpNeg special values")
	}
	x := []float32{0.5, -2, 3, 1e-3, -40}
	y := append([]float32(nil), x...)
	const f, m = float32(1.5), float32(4.5)
	sum := expSubRow(y, f, m)
	var want float64
	for i, v := range x {
		e := math.Exp(float64(f*v - m))
		want += e
		if math.Abs(float64(y[i])-e) > 1e-7*e {
			t.Errorf("expSubRow[%d] = %v, want %v", i, y[i], e)
		}
	}
	if math.Abs(sum-want) > 1e-7*want {
		t.Errorf("expSubRow sum %v, want %v", sum, want)
	}
	if got := maxScaledRow(x, f); got != 4.5 {
		t.Errorf("maxScaledRow = %v", got)
	}
	t.Logf("fexpNeg relative error %.2g", worst)
}

var sinkF float64

func BenchmarkFastExp(b *testing.B) {
	x := make([]float64, 4096)
	for i := range x {
		x[i] = -float64(i) * 0.003
	}
	for _, c := range []struct {
		name string
		fn   func(float64) float64
	}{{"math.Exp", math.Exp}, {"fexpNeg", fexpNeg}} {
		b.Run(c.name, func(b *testing.B) {
			var cm cpuMeter
			cm.start()
			defer cm.stop(b)
			for i := 0; i < b.N; i++ {
				s := 0.0
				for _, v := range x {
					s += c.fn(v)
				}
				sinkF = s
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/value")
		})
	}
}

func BenchmarkGELUForward(b *testing.B) {
	r := newRand(3)
	x := randn(r, 1<<21, 2)
	y := make([]float32, len(x))
	th := make([]float32, len(x))
	var cm cpuMeter
	cm.start()
	defer cm.stop(b)
	for i := 0; i < b.N; i++ {
		activationForward(GELUTanh, y, th, x, nil)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/value")
}

func TestSizeClass(t *testing.T) {
	prevClass, prevSize := -1, 0
	for n := 1; n < 1<<22; n += 1 + n/37 {
		c, size := sizeClass(n)
		if size < n || (n > 8 && float64(size) > 1.125*float64(n)+1) {
			t.Fatalf("sizeClass(%d) = %d, %d", n, c, size)
		}
		if c2, s2 := sizeClass(size); c2 != c || s2 != size {
			t.Fatalf("sizeClass(%d) = %d, %d; of its size %d, %d", n, c, size, c2, s2)
		}
		if c < prevClass || (c == prevClass) != (size == prevSize) {
			t.Fatalf("classes not monotone at %d", n)
		}
		prevClass, prevSize = c, size
	}
	if c, _ := sizeClass(1 << 40); c >= len(f32Free.classes) {
		t.Fatalf("class %d of 2^40 past the lists", c)
	}
}

// expArguments is a dense sweep of float32 exponential arguments <= 0:
// every 1021st float32 from -0 down to -750 (past the clamp at -708 and
// float64's underflow at -745), the table boundaries (where x·64/ln2
// rounds to the next integer, so the table entry changes: every one from
// -708 to 0, with the float32 values around each), and the special
// values 0, -0, the smallest denormal, -708 and its neighbours, -Inf and
// NaN.
func expArguments() []float32 {
	var xs []float32
	end := math.Float32bits(-750)
	for b := math.Float32bits(float32(math.Copysign(0, -1))); b <= end; b += 1021 {
		xs = append(xs, math.Float32frombits(b))
	}
	for n := -65372; n <= 0; n++ { // 708·64/ln2 ≈ 65371.4
		x := float32((float64(n) + 0.5) * math.Ln2 / 64)
		xs = append(xs, math.Nextafter32(x, -1e9), x, math.Nextafter32(x, 1e9))
	}
	inf := float32(math.Inf(-1))
	xs = append(xs, 0, float32(math.Copysign(0, -1)), -math.SmallestNonzeroFloat32, -1e-30, -1e-7,
		-708, math.Nextafter32(-708, inf), math.Nextafter32(-708, 0), -708.5, -745, -1e30, -math.MaxFloat32, inf,
		float32(math.NaN()))
	return xs
}

// same32 reports whether a and b have the same bits, or are both NaN.
func same32(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

// TestFexp: fexp against math.Exp in its range, its clamps and NaN, and
// fexpNeg as fexp with 0 below -708.
func TestFexp(t *testing.T) {
	worst := 0.0
	for i := -400000; i <= 400000; i++ {
		x := float64(i) * 0.00177 // [-708, 708]
		worst = math.Max(worst, math.Abs(fexp(x)-math.Exp(x))/math.Exp(x))
	}
	if worst > 1e-10 {
		t.Errorf("fexp relative error %g", worst)
	}
	if fexp(0) != 1 || fexp(-800) != fexp(-708) || fexp(math.Inf(-1)) != fexp(-708) ||
		fexp(800) != fexp(708) || fexp(math.Inf(1)) != fexp(708) || !math.IsNaN(fexp(math.NaN())) {
		t.Error("fexp special values")
	}
	for _, x := range expArguments() {
		v := float64(x)
		want := fexp(v)
		if !(v >= -708) {
			want = 0
		}
		if got := fexpNeg(v); math.Float64bits(got) != math.Float64bits(want) {
			t.Errorf("fexpNeg(%g) = %g, want %g", v, got, want)
		}
	}
}

// TestInlinedExp checks each hot loop that writes fexp out by hand
// against fexp itself, bit for bit, over expArguments (and their
// negations where the loop takes positive arguments too).
func TestInlinedExp(t *testing.T) {
	xs := expArguments()

	t.Run("expScaledSub", func(t *testing.T) {
		// f and m where f·x − m is exact, fused or not: the argument is
		// the loop's, the exponential must be fexp's.
		for _, fm := range [][2]float32{{1, 0}, {0.5, 0}, {1, 0.25}} {
			f, m := fm[0], fm[1]
			y := make([]float32, len(xs))
			sum := expScaledSub(y, xs, f, m)
			var lanes [4]float64 // the sum's order: lane i&3
			for i, x := range xs {
				e := float32(fexp(float64(f*x - m)))
				if !same32(y[i], e) {
					t.Fatalf("f %g m %g: e^%g: loop %g (%#x), fexp %g (%#x)", f, m, f*x-m, y[i], math.Float32bits(y[i]), e, math.Float32bits(e))
				}
				lanes[i&3] += float64(e)
			}
			want := (lanes[0] + lanes[2]) + (lanes[1] + lanes[3])
			if !same32(float32(sum), float32(want)) || (sum == sum && sum != want) {
				t.Fatalf("f %g m %g: sum %g, want %g", f, m, sum, want)
			}
			// In place (expSubRow) and without storing: the same.
			in := append([]float32(nil), xs...)
			if s := expSubRow(in, f, m); !same32(float32(s), float32(sum)) {
				t.Fatalf("expSubRow sum %g, want %g", s, sum)
			}
			for i := range in {
				if !same32(in[i], y[i]) {
					t.Fatalf("expSubRow[%d] = %g, want %g", i, in[i], y[i])
				}
			}
		}
	})

	t.Run("softmaxGradRow", func(t *testing.T) {
		s := append([]float32(nil), xs...)
		dp := make([]float32, len(xs))
		for i := range dp {
			dp[i] = 1
		}
		got := softmaxGradRow(s, dp, 1, 0, 0.5)
		var lanes [4]float32 // the sum's order: lane i&3
		for i, x := range xs {
			p := float32(fexp(float64(x)))
			dl := p * (1 - 0.5)
			lanes[i&3] += dl * x
			if !same32(s[i], p) || !same32(dp[i], dl) {
				t.Fatalf("e^%g: loop p %g dl %g, fexp p %g dl %g", x, s[i], dp[i], p, dl)
			}
		}
		if want := (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]); !same32(got, want) {
			t.Fatalf("Σ dl·s = %g, want %g", got, want)
		}
	})

	t.Run("sigmoidWeightedRows", func(t *testing.T) {
		// Every activation's k and c, over the arguments and their
		// negations (σ takes e^(−k·z), both signs, clamped to ±708).
		vs := append([]float32(nil), xs...)
		for _, x := range xs {
			vs = append(vs, -x)
		}
		for a := SiLU; a.Valid(); a++ {
			k, c, ok := a.sigmoidWeighted()
			if !ok {
				continue
			}
			y, s := make([]float32, len(vs)), make([]float32, len(vs))
			sigmoidWeightedRows(y, s, vs, k, c)
			y2 := make([]float32, len(vs))
			sigmoidWeightedRows(y2, nil, vs, k, c)
			for i, x := range vs {
				v := float64(x)
				z := v
				if c != 0 {
					z += c * v * v * v
				}
				sig := 1 / (1 + fexp(-k*z))
				wy, ws := float32(v*sig), float32(sig)
				if !same32(y[i], wy) || !same32(s[i], ws) || !same32(y2[i], wy) {
					t.Fatalf("%v(%g): loop y %g σ %g (unsaved y %g), fexp y %g σ %g", a, x, y[i], s[i], y2[i], wy, ws)
				}
			}
		}
	})
}
