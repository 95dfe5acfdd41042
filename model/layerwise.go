package model

import (
	"github.com/nlpodyssey/spago/mat"
	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/kernels"
)

// Long inputs without gradients (scoring and evaluating long documents) are
// computed layer by layer and, within a layer, a chunk of rows at a time:
// the keys and values of the chunk join the layer's cache (all rows so far)
// and the chunk's queries attend over it (kernels.AttendCached, which runs
// Attention's forward kernel), then the rest of the block (projections,
// residuals, MLP) runs on the chunk alone. Memory is the residual stream
// twice, one layer's keys and values and one chunk's activations, instead
// of every intermediate of a layer over all rows (the MLP's [T,
// intermediate] matrices dominate at long lengths). The long-lived buffers
// are outside the Go heap (see memory.go) and freed when the pass ends.
//
// Row by row the computation is the full forward pass's: the matrix
// products of a row do not depend on the other rows, positions and the
// RoPE tables are those of the whole sequence, and the attention kernel is
// the same, so the results agree to float32 rounding.

// layerwiseChunk is the rows per chunk of the layer-by-layer pass, and
// layerwiseMin the shortest input that takes it (variables for the tests).
var (
	layerwiseChunk = 2048
	layerwiseMin   = 8192
)

// useLayerwise reports whether Hidden takes the layer-by-layer path: a
// single document, long enough, and no weight needing a gradient.
func (m *Model) useLayerwise(in Input) bool {
	if len(in.IDs) < layerwiseMin || len(in.Segments) > 1 {
		return false
	}
	for _, p := range m.params {
		if p.RequiresGrad() {
			return false
		}
	}
	return true
}

// hiddenLayerwise is Hidden for useLayerwise inputs.
func (m *Model) hiddenLayerwise(ids, pos []int, seqLen int) (mat.Tensor, error) {
	s := m.Spec
	T, d := len(ids), s.Hidden
	kvw := s.KVHeads * s.HeadDim
	mem, release, err := allocOffHeap(4 * (2*T*d + 2*T*kvw))
	if err != nil {
		return nil, err
	}
	if release != nil {
		defer release(mem)
	}
	all := f32View(mem)
	x, next := all[:T*d], all[T*d:2*T*d]
	kc, vc := all[2*T*d:2*T*d+T*kvw], all[2*T*d+T*kvw:]
	chunk := layerwiseChunk
	for r0 := 0; r0 < T; r0 += chunk {
		r1 := min(r0+chunk, T)
		copy(x[r0*d:r1*d], values(m.embed(ids[r0:r1], pos[r0:r1])))
	}
	for l := 0; l < s.Layers; l++ {
		for r0 := 0; r0 < T; r0 += chunk {
			r1 := min(r0+chunk, T)
			xc := mat.NewDense[float32](mat.WithShape(r1-r0, d), mat.WithBacking(x[r0*d:r1*d]))
			y := m.block(l, xc, func(h mat.Tensor) mat.Tensor {
				return m.attendRows(l, h, pos[r0:r1], seqLen, r0, kc, vc)
			})
			copy(next[r0*d:r1*d], values(y))
			// The attention's scratch buffers grow with the cache: let
			// the collector have the smaller ones.
			kernels.FreeScratch()
		}
		x, next = next, x
	}
	out := make([]float32, T*d)
	for r0 := 0; r0 < T; r0 += chunk {
		r1 := min(r0+chunk, T)
		xc := mat.NewDense[float32](mat.WithShape(r1-r0, d), mat.WithBacking(x[r0*d:r1*d]))
		copy(out[r0*d:r1*d], values(m.norm(xc, arch.RoleFinalNorm, arch.RoleFinalNormBias, -1)))
	}
	return mat.NewDense[float32](mat.WithShape(T, d), mat.WithBacking(out)), nil
}

// attendRows is layer l's attention for the rows r0… of h (positions pos):
// their keys and values are written to rows r0… of the caches kc and vc,
// which hold those of every earlier row.
func (m *Model) attendRows(l int, h mat.Tensor, pos []int, seqLen, r0 int, kc, vc []float32) mat.Tensor {
	s := m.Spec
	n := len(pos)
	kvw := s.KVHeads * s.HeadDim
	q, k, v := m.qkv(l, h, pos, seqLen)
	copy(kc[r0*kvw:(r0+n)*kvw], values(k))
	copy(vc[r0*kvw:(r0+n)*kvw], values(v))
	sv, bv := m.attn[l].values()
	out := make([]float32, n*s.Heads*s.HeadDim)
	kernels.AttendCached(out, values(q), kc[:(r0+n)*kvw], vc[:(r0+n)*kvw], 0, r0, n, sv, bv, m.attentionConfig(l, nil, nil))
	return mat.NewDense[float32](mat.WithShape(n, s.Heads*s.HeadDim), mat.WithBacking(out))
}
