package model_test

import (
	"path/filepath"
	"testing"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/ssmax/ssmax/model"
)

// TestGradientsAreDeterministic: spago runs backward operations
// concurrently and accumulates gradients in completion order, so a node
// with three consumers could sum them in different orders. The model keeps
// every node at two consumers at most; repeated backward passes must give
// bit-identical gradients (training resumes and reruns depend on it).
func TestGradientsAreDeterministic(t *testing.T) {
	for _, name := range []string{"gpt2-tiny-ssmax", "llama-tiny-ssmax-bias"} {
		t.Run(name, func(t *testing.T) {
			m, _ := load(t, filepath.Join(fixtures, name), model.Options{})
			g, _ := readGolden(t, filepath.Join(fixtures, name))
			var first map[string][]float32
			for run := 0; run < 12; run++ {
				loss, err := m.Loss(model.Input{IDs: g.Tokens}, targetsOf(g.Tokens))
				if err != nil {
					t.Fatal(err)
				}
				if err := ag.Backward(loss); err != nil {
					t.Fatal(err)
				}
				grads := map[string][]float32{}
				for _, p := range m.Params() {
					grads[p.Name] = append([]float32(nil), p.Grad().(*mat.Dense[float32]).Data().F32()...)
					p.ZeroGrad()
				}
				if first == nil {
					first = grads
					continue
				}
				for n, g := range grads {
					for i := range g {
						if g[i] != first[n][i] {
							t.Fatalf("run %d: gradient of %s[%d] = %v, first run %v", run, n, i, g[i], first[n][i])
						}
					}
				}
			}
		})
	}
}
