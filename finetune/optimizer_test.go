package finetune

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/nlpodyssey/spago/optimizers/adam"
	"github.com/ssmax/ssmax/model"
)

// TestFusedAdamMatchesSpago: fusedAdam gives spago's Adam and AdamW
// updates (weights and moments) bit for bit, over several steps, with the
// gradient scaled first as scaleAndClip used to scale it in place.
func TestFusedAdamMatchesSpago(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const n = 1000
	for _, lambda := range []float64{0, 0.1} {
		cfg := adam.NewAdamWConfig(3e-3, 0.9, 0.95, 1e-8, lambda)
		ref, fused := adam.New(cfg), adam.New(cfg)
		ref.TimeStep, fused.TimeStep = 0, 0
		w0 := make([]float32, n)
		for i := range w0 {
			w0[i] = float32(r.NormFloat64())
		}
		pr := nn.NewParam(mat.NewDense[float32](mat.WithShape(n, 1), mat.WithBacking(append([]float32(nil), w0...))))
		w := append([]float32(nil), w0...)
		v, m := make([]float32, n), make([]float32, n)
		for step := 0; step < 5; step++ {
			g := make([]float32, n)
			for i := range g {
				g[i] = float32(r.NormFloat64() * 0.1)
			}
			factor := float32(0.37)
			if step == 2 {
				factor = 1
			}
			scaled := make([]float32, n)
			for i := range g {
				scaled[i] = g[i]
				if factor != 1 {
					scaled[i] *= factor
				}
			}
			pr.AccGrad(mat.NewDense[float32](mat.WithShape(n, 1), mat.WithBacking(scaled)))
			ref.StepSize, fused.StepSize = 1e-3*float64(step+1), 1e-3*float64(step+1)
			ref.IncExample()
			fused.IncExample()
			if err := ref.OptimizeParams(pr); err != nil {
				t.Fatal(err)
			}
			fusedAdam(fused, w, g, v, m, factor)
			st := pr.State.(*adam.State)
			want, wv, wm := pr.Value().Data().F32(), st.V.Data().F32(), st.M.Data().F32()
			for i := range w {
				if w[i] != want[i] || v[i] != wv[i] || m[i] != wm[i] {
					t.Fatalf("lambda %v step %d [%d]: fused w %v v %v m %v, spago w %v v %v m %v", lambda, step, i, w[i], v[i], m[i], want[i], wv[i], wm[i])
				}
			}
		}
	}
}

// BenchmarkOptimizerStep is scaleAndClip and one AdamW step over every
// parameter of the bench/models/s1.yaml model (about 7.3M values).
func BenchmarkOptimizerStep(b *testing.B) {
	preset, err := LoadPreset("../bench/models/s1.yaml")
	if err != nil {
		b.Fatal(err)
	}
	m, err := model.New(preset, 1)
	if err != nil {
		b.Fatal(err)
	}
	cfg := Defaults()
	o := newOptimizer(&cfg)
	o.add(m.Params()...)
	r := rand.New(rand.NewPCG(1, 1))
	grads := map[*model.Param][]float32{}
	for _, p := range m.Params() {
		g := make([]float32, len(p.Values()))
		for i := range g {
			g[i] = float32(r.NormFloat64() * 1e-3)
		}
		grads[p] = g
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for p, g := range grads {
			p.AccGrad(mat.NewDense[float32](mat.WithShape(p.Value().Shape()...), mat.WithBacking(append([]float32(nil), g...))))
		}
		b.StartTimer()
		o.scaleAndClip(1, 1)
		if err := o.step(1e-3); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOptimizerStepSpago is the same step with spago's Adam strategy
// (the previous implementation), for comparison.
func BenchmarkOptimizerStepSpago(b *testing.B) {
	preset, err := LoadPreset("../bench/models/s1.yaml")
	if err != nil {
		b.Fatal(err)
	}
	m, err := model.New(preset, 1)
	if err != nil {
		b.Fatal(err)
	}
	a := adam.New(adam.NewAdamWConfig(1e-3, 0.9, 0.95, 1e-8, 0.1))
	r := rand.New(rand.NewPCG(1, 1))
	grads := map[*model.Param][]float32{}
	for _, p := range m.Params() {
		g := make([]float32, len(p.Values()))
		for i := range g {
			g[i] = float32(r.NormFloat64() * 1e-3)
		}
		grads[p] = g
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for p, g := range grads {
			p.AccGrad(mat.NewDense[float32](mat.WithShape(p.Value().Shape()...), mat.WithBacking(append([]float32(nil), g...))))
		}
		b.StartTimer()
		var wg sync.WaitGroup
		sem := make(chan struct{}, 4)
		for _, p := range m.Params() {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				for _, v := range gradOf(p) {
					_ = v
				}
				a.OptimizeParams(p.Param)
			}()
		}
		wg.Wait()
	}
}
