package model

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/kernels"
)

// naiveScale is the SSMax scale written out from the paper, independently
// of attnscale.Factor.
func naiveScale(mode attnscale.Variant, s, b float64, n int) float64 {
	switch mode {
	case attnscale.SSMax:
		return s * math.Log(float64(n))
	case attnscale.Fixed:
		return math.Log(float64(n))
	case attnscale.Bias:
		return s*math.Log(float64(n)) + b
	}
	return 1
}

// naiveLastAttention recomputes the last position's attention of every
// layer and head from the queries and keys of the full (non-cached) forward
// pass, in float64: [layer][head][key].
func naiveLastAttention(m *Model, ids []int) [][][]float64 {
	s := m.Spec
	pos := Input{IDs: ids}.Positions()
	x := kernels.Embedding(m.p(arch.RoleEmbed, -1), ids)
	if pe := m.Param(arch.RolePosEmbed, -1); pe != nil {
		x = kernels.Add(x, kernels.Embedding(pe.Param, pos))
	}
	T := len(ids)
	qw, kw := s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
	out := make([][][]float64, s.Layers)
	for l := 0; l < s.Layers; l++ {
		h := m.norm(x, arch.RoleAttnNorm, arch.RoleAttnNormBias, l)
		q, k, _ := m.qkv(l, h, pos, T)
		qv := q.Value().(*mat.Dense[float32]).Data().F32()
		kv := k.Value().(*mat.Dense[float32]).Data().F32()
		a := m.Attention(l)
		out[l] = make([][]float64, s.Heads)
		for hd := 0; hd < s.Heads; hd++ {
			var sh, bh float64
			if a.S != nil {
				sh = float64(a.S.Values()[hd])
			}
			if a.B != nil {
				bh = float64(a.B.Values()[hd])
			}
			c := naiveScale(a.Variant, sh, bh, T)
			kvh := hd / (s.Heads / s.KVHeads)
			logits := make([]float64, T)
			for j := 0; j < T; j++ {
				var dot float64
				for i := 0; i < s.HeadDim; i++ {
					dot += float64(qv[(T-1)*qw+hd*s.HeadDim+i]) * float64(kv[j*kw+kvh*s.HeadDim+i])
				}
				logits[j] = c * dot / math.Sqrt(float64(s.HeadDim))
			}
			var sum float64
			for _, z := range logits {
				sum += math.Exp(z)
			}
			for j, z := range logits {
				logits[j] = math.Exp(z) / sum
			}
			out[l][hd] = logits
		}
		x = m.block(l, x, func(h mat.Tensor) mat.Tensor { return m.attention(l, h, pos, nil, T) })
	}
	return out
}

// TestLastAttention: the probe's rows sum to 1, equal a naive float64
// recomputation from the full forward's queries and keys (softmax and the
// three SSMax variants, multi-head and grouped-query attention, after one
// prefill and after further single-token feeds), and probing leaves the
// decoder's logits unchanged.
func TestLastAttention(t *testing.T) {
	cases := []struct {
		fixture string
		mode    attnscale.Variant
		chunks  []int // tokens per Feed call
	}{
		{"gpt2-tiny", attnscale.Softmax, []int{12}},
		{"gpt2-tiny-ssmax", attnscale.SSMax, []int{9, 1, 1, 1}},
		{"llama-tiny", attnscale.Softmax, []int{1, 11}},
		{"llama-tiny", attnscale.Fixed, []int{12}},
		{"llama-tiny-ssmax-bias", attnscale.Bias, []int{5, 7}},
	}
	ids := []int{3, 17, 42, 99, 5, 250, 8, 8, 61, 123, 77, 200}
	for _, tc := range cases {
		t.Run(tc.fixture+"/"+tc.mode.String(), func(t *testing.T) {
			m, err := Open(filepath.Join("..", "testdata", "fixtures", tc.fixture), "", Options{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.mode == attnscale.Fixed {
				for l := 0; l < m.Spec.Layers; l++ {
					if err := m.SetAttention(l, attnscale.Fixed, nil, nil); err != nil {
						t.Fatal(err)
					}
				}
			}
			if got := m.Attention(0).Variant; got != tc.mode {
				t.Fatalf("mode %v, want %v", got, tc.mode)
			}
			plain, probed := m.NewDecoder(), m.NewDecoder()
			if probed.LastAttention() != nil {
				t.Fatal("LastAttention before probing is not nil")
			}
			probed.ProbeAttention(true)
			fed := 0
			for _, n := range tc.chunks {
				want, err := plain.Feed(ids[fed : fed+n])
				if err != nil {
					t.Fatal(err)
				}
				got, err := probed.Feed(ids[fed : fed+n])
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("probing changed logit %d: %v, want %v", i, got[i], want[i])
					}
				}
				fed += n
			}
			att := probed.LastAttention()
			naive := naiveLastAttention(m, ids[:fed])
			if len(att) != m.Spec.Layers {
				t.Fatalf("%d layers, want %d", len(att), m.Spec.Layers)
			}
			for l := range att {
				if len(att[l]) != m.Spec.Heads {
					t.Fatalf("layer %d: %d heads, want %d", l, len(att[l]), m.Spec.Heads)
				}
				for h, row := range att[l] {
					if len(row) != fed {
						t.Fatalf("layer %d head %d: %d keys, want %d", l, h, len(row), fed)
					}
					var sum float64
					for j, p := range row {
						sum += p
						if math.Abs(p-naive[l][h][j]) > 1e-5 {
							t.Errorf("layer %d head %d key %d: %v, naive %v", l, h, j, p, naive[l][h][j])
						}
					}
					if math.Abs(sum-1) > 1e-12 {
						t.Errorf("layer %d head %d: probabilities sum to %v", l, h, sum)
					}
				}
			}
			probed.ProbeAttention(false)
			if probed.LastAttention() != nil {
				t.Error("LastAttention after probing is turned off is not nil")
			}
		})
	}
}
