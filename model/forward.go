package model

import (
	"fmt"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/kernels"
)

// Input is a packed token sequence: one or more documents (or batch rows)
// laid end to end. Attention never crosses a segment start, positions and
// the SSMax key count n restart at each segment.
type Input struct {
	IDs []int
	// Segments are the start indices of the documents in IDs, sorted, the
	// first 0; nil means one document.
	Segments []int
}

// Positions returns each token's position within its segment.
func (in Input) Positions() []int {
	pos := make([]int, len(in.IDs))
	seg := 0
	start := 0
	for t := range pos {
		for seg < len(in.Segments) && in.Segments[seg] <= t {
			start = in.Segments[seg]
			seg++
		}
		pos[t] = t - start
	}
	return pos
}

// Validate checks the input against the model: ids within the vocabulary,
// well-formed segments, and positions the model can represent. spago aborts
// the process on an error inside a forward pass, so every check happens here.
func (m *Model) Validate(in Input) error {
	if len(in.IDs) == 0 {
		return fmt.Errorf("empty input")
	}
	for i, id := range in.IDs {
		if id < 0 || id >= m.Spec.Vocab {
			return fmt.Errorf("token %d at position %d is outside the vocabulary of %d", id, i, m.Spec.Vocab)
		}
	}
	for i, s := range in.Segments {
		if (i == 0 && s != 0) || (i > 0 && s <= in.Segments[i-1]) || s >= len(in.IDs) {
			return fmt.Errorf("segments %v: want sorted starts from 0 below %d", in.Segments, len(in.IDs))
		}
	}
	longest := 0
	for _, p := range in.Positions() {
		longest = max(longest, p+1)
	}
	if m.Spec.Position == arch.LearnedPositions && longest > m.Spec.Context {
		return fmt.Errorf("a document of %d tokens exceeds the model's %d learned positions", longest, m.Spec.Context)
	}
	if w := m.Spec.SlidingWindow; w > 0 && longest > w {
		return fmt.Errorf("a document of %d tokens exceeds the sliding window of %d, which is not implemented", longest, w)
	}
	return nil
}

// Forward returns the logits [len(IDs), vocab] of every position.
func (m *Model) Forward(in Input) (mat.Tensor, error) {
	h, err := m.Hidden(in)
	if err != nil {
		return nil, err
	}
	return m.Logits(h), nil
}

// Hidden returns the final hidden states [len(IDs), hidden], after the
// final normalisation.
func (m *Model) Hidden(in Input) (mat.Tensor, error) {
	if err := m.Validate(in); err != nil {
		return nil, err
	}
	pos := in.Positions()
	x := kernels.Embedding(m.p(arch.RoleEmbed, -1), in.IDs)
	if pe := m.Param(arch.RolePosEmbed, -1); pe != nil {
		x = kernels.Add(x, kernels.Embedding(pe.Param, pos))
	}
	for l := 0; l < m.Spec.Layers; l++ {
		x = m.block(l, x, pos, in.Segments)
	}
	return m.norm(x, arch.RoleFinalNorm, arch.RoleFinalNormBias, -1), nil
}

// Logits projects hidden states onto the vocabulary.
func (m *Model) Logits(h mat.Tensor) mat.Tensor {
	return kernels.Linear(h, m.HeadParam(), nil, false)
}

// Loss returns the mean next-token cross-entropy of the input; targets[i] is
// the token that follows position i, or -1 where there is none to predict.
func (m *Model) Loss(in Input, targets []int) (mat.Tensor, error) {
	if len(targets) != len(in.IDs) {
		return nil, fmt.Errorf("%d targets for %d tokens", len(targets), len(in.IDs))
	}
	counted := 0
	for i, t := range targets {
		if t >= m.Spec.Vocab || t < -1 {
			return nil, fmt.Errorf("target %d at position %d is outside the vocabulary of %d", t, i, m.Spec.Vocab)
		}
		if t >= 0 {
			counted++
		}
	}
	if counted == 0 {
		return nil, fmt.Errorf("no target to predict")
	}
	h, err := m.Hidden(in)
	if err != nil {
		return nil, err
	}
	// The fused head and loss never hold the [tokens, vocab] logits and
	// their gradient (kernels.LinearCrossEntropy); the value is that of
	// CrossEntropy(Logits(h)).
	return kernels.LinearCrossEntropy(h, m.HeadParam(), targets), nil
}

// p returns a parameter the spec guarantees, as a tensor.
func (m *Model) p(r arch.Role, layer int) mat.Tensor { return m.byRole[roleKey{r, layer}].Param }

// opt returns an optional parameter as a tensor, or nil.
func (m *Model) opt(r arch.Role, layer int) mat.Tensor {
	if p := m.byRole[roleKey{r, layer}]; p != nil {
		return p.Param
	}
	return nil
}

func (m *Model) norm(x mat.Tensor, w, b arch.Role, layer int) mat.Tensor {
	eps := float32(m.Spec.NormEps)
	if m.Spec.Norm == arch.LayerNorm {
		return kernels.LayerNorm(x, m.p(w, layer), m.p(b, layer), eps)
	}
	return kernels.RMSNorm(x, m.p(w, layer), eps)
}

func (m *Model) linear(x mat.Tensor, w, b arch.Role, layer int) mat.Tensor {
	return kernels.Linear(x, m.p(w, layer), m.opt(b, layer), m.Spec.InOut(w))
}

// qkv projects the normalised hidden states h of layer l to queries, keys
// and values, with per-head norms and rotary positions where the family
// has them (the decoder's path; block lets Attention do the split and the
// rotation).
func (m *Model) qkv(l int, h mat.Tensor, pos []int) (q, k, v mat.Tensor) {
	s := m.Spec
	// Each node feeds at most two others (see fork), so gradients are
	// accumulated in a deterministic order.
	q, k, v = m.projections(l, h)
	if s.QKNorm {
		q, k = m.qkNorm(l, q, k)
	}
	if s.Position == arch.RoPEPositions {
		q = kernels.RoPE(q, s.Heads, s.HeadDim, pos, m.RoPETheta)
		k = kernels.RoPE(k, s.KVHeads, s.HeadDim, pos, m.RoPETheta)
	}
	return q, k, v
}

// projections are the query, key and value projections: GPT-2's fused one
// split by columns, or the separate ones of the Llama family.
func (m *Model) projections(l int, h mat.Tensor) (q, k, v mat.Tensor) {
	if s := m.Spec; s.Family == arch.GPT2 {
		qkv := m.linear(h, arch.RoleQKV, arch.RoleQKVBias, l)
		kv := fork(qkv)
		q = kernels.Columns(qkv, 0, s.Hidden)
		k = kernels.Columns(kv, s.Hidden, 2*s.Hidden)
		v = kernels.Columns(kv, 2*s.Hidden, 3*s.Hidden)
		return q, k, v
	}
	h2 := fork(h)
	q = m.linear(h, arch.RoleQ, arch.RoleQBias, l)
	k = m.linear(h2, arch.RoleK, arch.RoleKBias, l)
	v = m.linear(h2, arch.RoleV, arch.RoleVBias, l)
	return q, k, v
}

func (m *Model) qkNorm(l int, q, k mat.Tensor) (mat.Tensor, mat.Tensor) {
	s := m.Spec
	eps := float32(s.NormEps)
	q = kernels.HeadRMSNorm(q, m.p(arch.RoleQNorm, l), s.Heads, s.HeadDim, eps)
	k = kernels.HeadRMSNorm(k, m.p(arch.RoleKNorm, l), s.KVHeads, s.HeadDim, eps)
	return q, k
}

// attention is layer l's attention over the normalised hidden states h.
// Attention itself splits GPT-2's fused projection and applies the rotary
// positions (AttentionQKV, AttentionConfig.RoPE): fewer graph nodes and
// copies than Columns and RoPE nodes, the same values.
func (m *Model) attention(l int, h mat.Tensor, pos, segments []int) mat.Tensor {
	s := m.Spec
	a := m.attn[l]
	var sp, bp mat.Tensor
	if a.S != nil {
		sp = a.S.Param
	}
	if a.B != nil {
		bp = a.B.Param
	}
	cfg := kernels.AttentionConfig{Heads: s.Heads, KVHeads: s.KVHeads, HeadDim: s.HeadDim, Variant: a.Variant, Segments: segments}
	if s.Position == arch.RoPEPositions {
		cfg.RoPE = &kernels.RoPEConfig{Theta: m.RoPETheta, Positions: pos}
	}
	if s.Family == arch.GPT2 && !s.QKNorm {
		return kernels.AttentionQKV(m.linear(h, arch.RoleQKV, arch.RoleQKVBias, l), sp, bp, cfg)
	}
	q, k, v := m.projections(l, h)
	if s.QKNorm {
		q, k = m.qkNorm(l, q, k)
	}
	return kernels.Attention(q, k, v, sp, bp, cfg)
}

// fork returns an identity copy of x, to give a node a third consumer.
// spago runs backward operations concurrently and adds each incoming
// gradient as it arrives; two terms sum identically in either order (a+b =
// b+a), three do not ((a+b)+c != (a+c)+b in floating point). Routing extra
// consumers through a copy keeps every sum at two terms, so gradients, and
// so training runs and resumes, are bit-for-bit reproducible.
func fork(x mat.Tensor) mat.Tensor { return ag.Copy(x) }

// mlp adds layer l's feed-forward block to the residual stream x: GPT-2's
// act(up(h)), or the Llama family's gated act(gate(h))·up(h), down-projected.
func (m *Model) mlp(l int, x mat.Tensor) mat.Tensor {
	h := m.norm(x, arch.RoleMLPNorm, arch.RoleMLPNormBias, l)
	if m.Spec.Family == arch.GPT2 {
		h = kernels.Activate(m.linear(h, arch.RoleUp, arch.RoleUpBias, l), m.activation)
	} else {
		h = kernels.GLU(m.linear(h, arch.RoleGate, arch.RoleGateBias, l), m.linear(h, arch.RoleUp, arch.RoleUpBias, l), m.activation)
	}
	return kernels.Add(x, m.linear(h, arch.RoleDown, arch.RoleDownBias, l))
}

// block is one transformer layer: pre-norm attention and MLP with residuals.
func (m *Model) block(l int, x mat.Tensor, pos, segments []int) mat.Tensor {
	h := m.norm(x, arch.RoleAttnNorm, arch.RoleAttnNormBias, l)
	att := m.attention(l, h, pos, segments)
	x = kernels.Add(x, m.linear(att, arch.RoleOut, arch.RoleOutBias, l))
	return m.mlp(l, x)
}

// HeadParam is the output projection [vocab, hidden]: the untied head, or
// the token embeddings when tied.
func (m *Model) HeadParam() mat.Tensor {
	if head := m.Param(arch.RoleHead, -1); head != nil {
		return head.Param
	}
	return m.p(arch.RoleEmbed, -1)
}
