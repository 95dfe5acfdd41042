package kernels

import (
	"math"
	"testing"
)

// TestAdamWStep checks AdamW.Step against a float64 reference of the
// update on ordinary values, and (on AVX2) the assembly loop against the
// Go loop bit for bit over lengths 0..70, special values in every lane and
// tail, with and without gradient scaling and weight decay; and that the
// finite flag reports an Inf or NaN weight wherever it lands.
func TestAdamWStep(t *testing.T) {
	params := []AdamW{
		{Factor: 1, Beta1: 0.9, OneMinusBeta1: 0.1, Beta2: 0.95, OneMinusBeta2: 0.05, Eps: 1e-8, Alpha: 1e-3},
		{Factor: 0.37, Beta1: 0.9, OneMinusBeta1: 0.1, Beta2: 0.999, OneMinusBeta2: 0.001, Eps: 1e-6, Alpha: 3e-2, Lambda: 0.1, Decay: true},
	}
	t.Run("reference", func(t *testing.T) {
		r := newRand(3)
		for _, p := range params {
			w, g, v := randn(r, 37, 1), randn(r, 37, 1), randn(r, 37, 0.1)
			m := randn(r, 37, 0.1)
			for i := range m {
				m[i] *= m[i]
			}
			w0, v0, m0 := clone32(w), clone32(v), clone32(m)
			if !p.Step(w, g, v, m) {
				t.Fatal("finite weights reported non-finite")
			}
			for i := range w {
				gi := float64(g[i]) * float64(p.Factor)
				vi := float64(v0[i])*float64(p.Beta1) + gi*float64(p.OneMinusBeta1)
				mi := float64(m0[i])*float64(p.Beta2) + gi*gi*float64(p.OneMinusBeta2)
				d := vi / (math.Sqrt(mi) + float64(p.Eps))
				if p.Decay {
					d += float64(w0[i]) * float64(p.Lambda)
				}
				want := float64(w0[i]) - d*float64(p.Alpha)
				for _, c := range [][2]float64{{float64(w[i]), want}, {float64(v[i]), vi}, {float64(m[i]), mi}} {
					if math.Abs(c[0]-c[1]) > 1e-6*math.Max(1, math.Abs(c[1])) {
						t.Fatalf("%+v: value %d: %g, want %g", p, i, c[0], c[1])
					}
				}
			}
		}
	})
	t.Run("vector=go", func(t *testing.T) {
		if !useVec {
			t.Skip("no assembly loops on this CPU or architecture")
		}
		for _, p := range params {
			for _, x := range vecInputs() {
				n := len(x)
				// Weights, gradients and moments from the same inputs, shifted
				// so that specials meet each other in every combination of
				// lanes; the second moment made non-negative, as Adam keeps it.
				w, g, v, m := clone32(x), rotate32(x, 1), rotate32(x, 2), rotate32(x, 3)
				for i := range m {
					m[i] = float32(math.Abs(float64(m[i])))
				}
				wg, vg, mg := clone32(w), clone32(v), clone32(m)
				okGo := p.stepGo(wg, g, vg, mg)
				ok := p.Step(w, g, v, m)
				for _, c := range [][2][]float32{{w, wg}, {v, vg}, {m, mg}} {
					if i := bitsEqual32(c[0], c[1]); i >= 0 {
						t.Fatalf("%+v len %d: differ at %d: %g, want %g", p, n, i, c[0][i], c[1][i])
					}
				}
				if ok != okGo {
					t.Fatalf("%+v len %d: finite %v, Go loop %v", p, n, ok, okGo)
				}
			}
		}
	})
	t.Run("finite", func(t *testing.T) {
		p := params[0]
		for n := 1; n <= 20; n++ {
			for at := 0; at < n; at++ {
				w, g, v, m := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
				g[at] = float32(math.Inf(1))
				if p.Step(w, g, v, m) {
					t.Fatalf("len %d: an Inf gradient at %d went unreported", n, at)
				}
			}
		}
	})
}

func clone32(x []float32) []float32 { return append([]float32{}, x...) }

// rotate32 returns x rotated left by k.
func rotate32(x []float32, k int) []float32 {
	if len(x) == 0 {
		return nil
	}
	k %= len(x)
	return append(clone32(x[k:]), x[:k]...)
}

// BenchmarkAdamW measures AdamW.Step on 4M values (48 MB of weights,
// gradients and moments, beyond the caches as a model's are): impl=go is the
// Go loop, impl=vec what Step runs here.
func BenchmarkAdamW(b *testing.B) {
	const n = 1 << 22
	r := newRand(1)
	w, g, v, m := randn(r, n, 1), randn(r, n, 1), randn(r, n, 0.1), randn(r, n, 0.1)
	for i := range m {
		m[i] *= m[i]
	}
	p := AdamW{Factor: 0.5, Beta1: 0.9, OneMinusBeta1: 0.1, Beta2: 0.95, OneMinusBeta2: 0.05, Eps: 1e-8, Alpha: 1e-9, Lambda: 0.1, Decay: true}
	for _, impl := range []string{"go", "vec"} {
		b.Run("impl="+impl, func(b *testing.B) {
			b.SetBytes(7 * 4 * n) // four arrays read, three written
			for i := 0; i < b.N; i++ {
				if impl == "go" {
					p.stepGo(w, g, v, m)
				} else {
					p.Step(w, g, v, m)
				}
			}
		})
	}
}
