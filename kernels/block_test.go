package kernels

import (
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/ssmax/ssmax/attnscale"
)

// TestBlockChain runs a small pre-norm transformer block built from every
// kernel, with a tied embedding / LM-head table (one parameter receiving two
// gradient contributions), intermediate operators as operands and spago's
// implicit scalar seed, and checks all parameter gradients against finite
// differences of the same composition of float64 references.
func TestBlockChain(t *testing.T) {
	const (
		T, V, D    = 12, 11, 8
		H, KVH, hd = 4, 2, 4
		F          = 10
		eps        = 1e-5
	)
	ids := []int{3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8}
	targets := []int{1, 4, 1, 5, -1, 2, 6, 5, 3, 5, 8, -1}
	pos := []int{0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6}
	cfg := AttentionConfig{Heads: H, KVHeads: KVH, HeadDim: hd, Variant: attnscale.Bias, Segments: []int{0, 5}}
	r := newRand(1600)
	ins := []input{
		{name: "E", data: randn(r, V*D, 1), rows: V, cols: D},
		{name: "g1", data: uniform(r, D, 0.5, 1.5), rows: 1, cols: D},
		{name: "Wq", data: randn(r, H*hd*D, 0.4), rows: H * hd, cols: D},
		{name: "Wk", data: randn(r, KVH*hd*D, 0.4), rows: KVH * hd, cols: D},
		{name: "bk", data: randn(r, KVH*hd, 0.2), rows: 1, cols: KVH * hd},
		{name: "Wv", data: randn(r, D*KVH*hd, 0.4), rows: D, cols: KVH * hd},
		{name: "qn", data: uniform(r, hd, 0.5, 1.5), rows: 1, cols: hd},
		{name: "kn", data: uniform(r, hd, 0.5, 1.5), rows: 1, cols: hd},
		{name: "s", data: uniform(r, H, 0.3, 1.0), rows: 1, cols: H},
		{name: "b", data: uniform(r, H, -0.3, 0.3), rows: 1, cols: H},
		{name: "Wo", data: randn(r, D*H*hd, 0.4), rows: D, cols: H * hd},
		{name: "g2", data: uniform(r, D, 0.5, 1.5), rows: 1, cols: D},
		{name: "b2", data: randn(r, D, 0.2), rows: 1, cols: D},
		{name: "Wg", data: randn(r, F*D, 0.4), rows: F, cols: D},
		{name: "Wu", data: randn(r, F*D, 0.4), rows: F, cols: D},
		{name: "Wd", data: randn(r, F*D, 0.4), rows: F, cols: D},
	}
	build := func(p []mat.Tensor) mat.Tensor {
		E, g1, Wq, Wk, bk, Wv, qn, kn, s, b, Wo, g2, b2, Wg, Wu, Wd := p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15]
		x := Embedding(E, ids)
		h := RMSNorm(x, g1, eps)
		q := RoPE(HeadRMSNorm(Linear(h, Wq, nil, false), qn, H, hd, eps), H, hd, pos, 1e4)
		k := RoPE(HeadRMSNorm(Linear(h, Wk, bk, false), kn, KVH, hd, eps), KVH, hd, pos, 1e4)
		v := Linear(h, Wv, nil, true)
		y := Add(x, Linear(Attention(q, k, v, s, b, cfg), Wo, nil, false))
		u := LayerNorm(y, g2, b2, eps)
		m := Activate(GLU(Linear(u, Wg, nil, false), Linear(u, Wu, nil, false), SiLU), GELUTanh)
		z := Add(y, MatMul(m, Wd, false, false))
		return CrossEntropy(Linear(z, E, nil, false), targets)
	}
	ref := func(p [][]float64) []float64 {
		E, g1, Wq, Wk, bk, Wv, qn, kn, s, b, Wo, g2, b2, Wg, Wu, Wd := p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15]
		e := float64(float32(eps))
		x := embeddingRef(E, ids, D)
		h := rmsNormRef(x, g1, T, D, e)
		q := ropeRef(rmsNormRef(linearRef(h, Wq, nil, T, D, H*hd, false), qn, T*H, hd, e), T, H, hd, pos, 1e4)
		k := ropeRef(rmsNormRef(linearRef(h, Wk, bk, T, D, KVH*hd, false), kn, T*KVH, hd, e), T, KVH, hd, pos, 1e4)
		v := linearRef(h, Wv, nil, T, D, KVH*hd, true)
		y := addRef(x, linearRef(attentionRef(q, k, v, s, b, T, cfg), Wo, nil, T, H*hd, D, false))
		u := layerNormRef(y, g2, b2, T, D, e)
		m := geluRef(siluGateRef(linearRef(u, Wg, nil, T, D, F, false), linearRef(u, Wu, nil, T, D, F, false)))
		z := addRef(y, matmulRef(m, Wd, T, D, F, false, false))
		return crossEntropyRef(linearRef(z, E, nil, T, D, V, false), targets, V)
	}
	checkOpWith(t, 1600, ins, build, ref, checkOpts{autoSeed: true})
}
