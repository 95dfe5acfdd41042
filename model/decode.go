package model

import (
	"fmt"

	"github.com/nlpodyssey/spago/mat"
	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/kernels"
)

// Decoder runs the model forward one chunk of tokens at a time over a
// single document, keeping each layer's keys and values (a KV cache), so
// generation costs one new row per step. A query at position p sees
// n = p+1 keys: the cached ones and itself.
type Decoder struct {
	m    *Model
	k, v [][]float32 // per layer: rows of [KVHeads*HeadDim]
	n    int
	// probe, when set, records the last position's attention (attention_probe.go).
	probe *attentionProbe
}

// NewDecoder returns an empty decoder.
func (m *Model) NewDecoder() *Decoder {
	return &Decoder{m: m, k: make([][]float32, m.Spec.Layers), v: make([][]float32, m.Spec.Layers)}
}

// Len is the number of tokens fed so far.
func (d *Decoder) Len() int { return d.n }

// Feed appends ids to the document and returns the logits [len(ids), vocab]
// of the new positions, row-major.
func (d *Decoder) Feed(ids []int) ([]float32, error) {
	m, s := d.m, d.m.Spec
	if len(ids) == 0 {
		return nil, fmt.Errorf("decoder: no tokens to feed")
	}
	for i, id := range ids {
		if id < 0 || id >= s.Vocab {
			return nil, fmt.Errorf("decoder: token %d at position %d is outside the vocabulary of %d", id, d.n+i, s.Vocab)
		}
	}
	if s.Position == arch.LearnedPositions && d.n+len(ids) > s.Context {
		return nil, fmt.Errorf("decoder: %d tokens exceed the model's %d learned positions", d.n+len(ids), s.Context)
	}
	pos := make([]int, len(ids))
	for i := range pos {
		pos[i] = d.n + i
	}
	x := kernels.Embedding(m.p(arch.RoleEmbed, -1), ids)
	if pe := m.Param(arch.RolePosEmbed, -1); pe != nil {
		x = kernels.Add(x, kernels.Embedding(pe.Param, pos))
	}
	for l := 0; l < s.Layers; l++ {
		h := m.norm(x, arch.RoleAttnNorm, arch.RoleAttnNormBias, l)
		q, k, v := m.qkv(l, h, pos)
		d.k[l] = append(d.k[l], values(k)...)
		d.v[l] = append(d.v[l], values(v)...)
		a := m.attn[l]
		var sv, bv []float32
		if a.S != nil {
			sv = a.S.Values()
		}
		if a.B != nil {
			bv = a.B.Values()
		}
		out := make([]float32, len(ids)*s.Heads*s.HeadDim)
		kernels.AttendCached(out, values(q), d.k[l], d.v[l], 0, d.n, len(ids), sv, bv, kernels.AttentionConfig{
			Heads: s.Heads, KVHeads: s.KVHeads, HeadDim: s.HeadDim, Variant: a.Variant,
		})
		if d.probe != nil {
			d.probe.record(m, l, values(q), d.k[l], d.n, len(ids), a)
		}
		att := mat.NewDense[float32](mat.WithShape(len(ids), s.Heads*s.HeadDim), mat.WithBacking(out))
		x = kernels.Add(x, m.linear(att, arch.RoleOut, arch.RoleOutBias, l))
		x = m.mlp(l, x)
	}
	d.n += len(ids)
	logits := m.Logits(m.norm(x, arch.RoleFinalNorm, arch.RoleFinalNormBias, -1))
	return values(logits), nil
}

// values returns a node's float32 values.
func values(t mat.Tensor) []float32 { return t.Value().(*mat.Dense[float32]).Data().F32() }
