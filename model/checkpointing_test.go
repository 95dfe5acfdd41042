package model_test

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/model"
)

// TestActivationCheckpointing: with activation checkpointing the loss and
// every gradient are those of the plain graph, bit for bit, whether every
// weight trains or only the SSMax parameters (frozen bf16 weights
// included), across block layouts (pre-norm, parallel residual, sandwich
// norms, fused projections, windows) and packed documents.
func TestActivationCheckpointing(t *testing.T) {
	for _, name := range []string{"llama-tiny", "llama-tiny-bf16", "gpt2-tiny-ssmax", "pythia-tiny", "gemma2-tiny", "phi3-tiny", "qwen2-tiny-window-ssmax-bias"} {
		for _, train := range []string{"all", "ssmax"} {
			t.Run(name+"/"+train, func(t *testing.T) {
				dir := filepath.Join(fixtures, name)
				g, _ := readGolden(t, dir)
				in := model.Input{IDs: g.Tokens, Segments: []int{0, len(g.Tokens) / 3}}
				var losses [2]float64
				var grads [2]map[string][]float32
				for i, ckpt := range []bool{false, true} {
					m, _ := load(t, dir, model.Options{})
					for l := 0; l < m.Spec.Layers; l++ {
						if m.Attention(l).Variant == attnscale.Softmax {
							if err := m.SetAttention(l, attnscale.SSMax, attnscale.PerHead(m.Spec.Heads, 0.4), nil); err != nil {
								t.Fatal(err)
							}
						}
					}
					for _, p := range m.Params() {
						p.SetRequiresGrad(train == "all" || p.Role.IsSSMax())
					}
					m.SetActivationCheckpointing(ckpt)
					loss, err := m.Loss(in, targetsOf(in.IDs))
					if err != nil {
						t.Fatal(err)
					}
					if err := ag.Backward(loss); err != nil {
						t.Fatal(err)
					}
					losses[i] = loss.Value().Item().F64()
					grads[i] = map[string][]float32{}
					for _, p := range m.Params() {
						if p.HasGrad() {
							grads[i][p.Name] = append([]float32(nil), p.Grad().(*mat.Dense[float32]).Data().F32()...)
						}
					}
				}
				if losses[0] != losses[1] {
					t.Errorf("loss %v with checkpointing, %v without", losses[1], losses[0])
				}
				if len(grads[0]) == 0 || len(grads[0]) != len(grads[1]) {
					t.Fatalf("%d gradients without checkpointing, %d with", len(grads[0]), len(grads[1]))
				}
				for n, want := range grads[0] {
					got := grads[1][n]
					for j := range want {
						if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
							t.Fatalf("%s[%d]: %v with checkpointing, %v without", n, j, got[j], want[j])
						}
					}
				}
			})
		}
	}
}
