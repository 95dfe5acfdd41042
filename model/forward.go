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
// well-formed segments, and positions the model can represent. The kernels
// panic on a bad operand inside a forward pass, so every check happens here.
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
	if longest := longestDocument(in.Positions()); m.Spec.Position == arch.LearnedPositions && longest > m.Spec.Context {
		return fmt.Errorf("a document of %d tokens exceeds the model's %d learned positions", longest, m.Spec.Context)
	}
	return nil
}

// longestDocument is the largest position + 1.
func longestDocument(pos []int) int {
	longest := 0
	for _, p := range pos {
		longest = max(longest, p+1)
	}
	return longest
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
	seqLen := longestDocument(pos)
	if m.useLayerwise(in) {
		return m.hiddenLayerwise(in.IDs, pos, seqLen)
	}
	x := m.embed(in.IDs, pos)
	for l := 0; l < m.Spec.Layers; l++ {
		x = m.checkpointed(l, x, func(x mat.Tensor) mat.Tensor {
			return m.block(l, x, func(h mat.Tensor) mat.Tensor { return m.attention(l, h, pos, in.Segments, seqLen) })
		})
	}
	return m.norm(x, arch.RoleFinalNorm, arch.RoleFinalNormBias, -1), nil
}

// embed looks up the token embeddings (scaled where the family scales
// them) and adds learned positions where the family has them.
func (m *Model) embed(ids, pos []int) mat.Tensor {
	x := kernels.Embedding(m.p(arch.RoleEmbed, -1), ids)
	if c := m.Spec.EmbedScale; c != 0 {
		x = kernels.Scale(x, float32(c))
	}
	if pe := m.Param(arch.RolePosEmbed, -1); pe != nil {
		x = kernels.Add(x, kernels.Embedding(pe.Param, pos))
	}
	return x
}

// Logits projects hidden states onto the vocabulary (soft-capped where the
// family caps them).
func (m *Model) Logits(h mat.Tensor) mat.Tensor {
	y := kernels.Linear(h, m.HeadParam(), nil, false)
	if c := m.Spec.FinalSoftcap; c != 0 {
		y = kernels.Softcap(y, float32(c))
	}
	return y
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
	// their gradient; the value is that of CrossEntropy(Logits(h)).
	return kernels.LinearCrossEntropySoftcap(h, m.HeadParam(), targets, float32(m.Spec.FinalSoftcap)), nil
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

// norm applies the family's normalisation with gain role w (and bias role
// b where the family has biases).
func (m *Model) norm(x mat.Tensor, w, b arch.Role, layer int) mat.Tensor {
	s := m.Spec
	eps := float32(s.NormEps)
	if s.Norm == arch.LayerNorm {
		return kernels.LayerNorm(x, m.p(w, layer), m.opt(b, layer), eps)
	}
	if s.NormOffset != 0 {
		return kernels.RMSNormOffset(x, m.p(w, layer), eps, float32(s.NormOffset))
	}
	return kernels.RMSNorm(x, m.p(w, layer), eps)
}

func (m *Model) linear(x mat.Tensor, w, b arch.Role, layer int) mat.Tensor {
	return kernels.Linear(x, m.p(w, layer), m.opt(b, layer), m.Spec.InOut(w))
}

// fork returns an identity copy of x, to give a node a third consumer.
// spago runs backward operations concurrently and adds each incoming
// gradient as it arrives; two terms sum identically in either order (a+b =
// b+a), three do not ((a+b)+c != (a+c)+b in floating point). Routing extra
// consumers through a copy keeps every sum at two terms, so gradients, and
// so training runs and resumes, are bit-for-bit reproducible.
func fork(x mat.Tensor) mat.Tensor { return ag.Copy(x) }

// block is one transformer layer over the residual stream x, with its
// norms where the family places them (before, after or around each
// sub-layer) and a sequential or parallel residual. attend computes the
// attention (before the output projection) from its input.
func (m *Model) block(l int, x mat.Tensor, attend func(h mat.Tensor) mat.Tensor) mat.Tensor {
	s := m.Spec
	if s.ParallelResidual {
		// x + attn(norm1(x)) + mlp(norm2(x)): x feeds three nodes.
		x2 := fork(x)
		a := m.attentionSublayer(l, x, attend)
		f := m.mlpSublayer(l, x2)
		return kernels.Add(kernels.Add(fork(x2), a), f)
	}
	x = kernels.Add(x, m.attentionSublayer(l, x, attend))
	return kernels.Add(x, m.mlpSublayer(l, x))
}

// attentionSublayer is what layer l's attention adds to the residual stream.
func (m *Model) attentionSublayer(l int, x mat.Tensor, attend func(h mat.Tensor) mat.Tensor) mat.Tensor {
	var h mat.Tensor
	if m.Spec.NormPlacement == arch.PostNorm {
		h = fork(x) // the sub-layer reads x itself, which the residual also adds
	} else {
		h = m.norm(x, arch.RoleAttnNorm, arch.RoleAttnNormBias, l)
	}
	out := m.linear(attend(h), arch.RoleOut, arch.RoleOutBias, l)
	if m.Spec.NormPlacement != arch.PreNorm {
		out = m.norm(out, arch.RoleAttnPostNorm, "", l)
	}
	return out
}

// mlpSublayer is what layer l's feed-forward block adds to the residual
// stream: down(act(gate(h)) ⊙ up(h)), or down(act(up(h))) ungated.
func (m *Model) mlpSublayer(l int, x mat.Tensor) mat.Tensor {
	s := m.Spec
	var h mat.Tensor
	if s.NormPlacement == arch.PostNorm {
		h = fork(x) // the sub-layer reads x itself, which the residual also adds
	} else {
		h = m.norm(x, arch.RoleMLPNorm, arch.RoleMLPNormBias, l)
	}
	var a mat.Tensor
	switch {
	case s.FusedGateUp:
		gu := m.linear(h, arch.RoleGateUp, "", l)
		a = kernels.GLU(kernels.Columns(gu, 0, s.Intermediate), kernels.Columns(fork(gu), s.Intermediate, 2*s.Intermediate), m.act)
	case s.GatedMLP:
		h2 := fork(h)
		a = kernels.GLU(m.linear(h, arch.RoleGate, arch.RoleGateBias, l), m.linear(h2, arch.RoleUp, arch.RoleUpBias, l), m.act)
	default:
		a = kernels.Activate(m.linear(h, arch.RoleUp, arch.RoleUpBias, l), m.act)
	}
	out := m.linear(a, arch.RoleDown, arch.RoleDownBias, l)
	if s.NormPlacement != arch.PreNorm {
		out = m.norm(out, arch.RoleMLPPostNorm, "", l)
	}
	return out
}

// projections are layer l's queries, keys and values before rotary
// positions, with the family's q/k norms: a fused projection split by
// columns (stored per head by GPT-NeoX, reordered at load) or separate ones.
func (m *Model) projections(l int, h mat.Tensor) (q, k, v mat.Tensor) {
	s := m.Spec
	qw, kw := s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
	if s.QKV == arch.SeparateQKV {
		h2 := fork(h)
		q = m.linear(h, arch.RoleQ, arch.RoleQBias, l)
		k = m.linear(h2, arch.RoleK, arch.RoleKBias, l)
		v = m.linear(fork(h2), arch.RoleV, arch.RoleVBias, l)
	} else {
		qkv := m.linear(h, arch.RoleQKV, arch.RoleQKVBias, l)
		kv := fork(qkv)
		q = kernels.Columns(qkv, 0, qw)
		k = kernels.Columns(kv, qw, qw+kw)
		v = kernels.Columns(fork(kv), qw+kw, qw+2*kw)
	}
	return m.qkNorm(l, q, k, v)
}

// qkNorm normalises queries and keys as the family does: per head, or over
// the whole projection.
func (m *Model) qkNorm(l int, q, k, v mat.Tensor) (mat.Tensor, mat.Tensor, mat.Tensor) {
	s := m.Spec
	eps, off := float32(s.NormEps), float32(s.NormOffset)
	switch s.QKNorm {
	case arch.HeadQKNorm:
		q = kernels.HeadRMSNormOffset(q, m.p(arch.RoleQNorm, l), s.Heads, s.HeadDim, eps, off)
		k = kernels.HeadRMSNormOffset(k, m.p(arch.RoleKNorm, l), s.KVHeads, s.HeadDim, eps, off)
	case arch.ProjectionQKNorm:
		q = kernels.RMSNormOffset(q, m.p(arch.RoleQNorm, l), eps, off)
		k = kernels.RMSNormOffset(k, m.p(arch.RoleKNorm, l), eps, off)
	}
	return q, k, v
}

// attentionConfig is layer l's attention geometry and scaling; rope, when
// not nil, is the rotary embedding Attention applies itself.
func (m *Model) attentionConfig(l int, segments []int, rope *kernels.RoPEConfig) kernels.AttentionConfig {
	s := m.Spec
	return kernels.AttentionConfig{
		Heads: s.Heads, KVHeads: s.KVHeads, HeadDim: s.HeadDim, Variant: m.attn[l].Variant, Segments: segments,
		Window: s.Window(l), Scale: float32(s.AttnScale), Softcap: float32(s.AttnSoftcap), RoPE: rope,
	}
}

// ssmaxParams returns layer l's s and b parameters as tensors (nil when
// the variant has none).
func (m *Model) ssmaxParams(l int) (sp, bp mat.Tensor) {
	a := m.attn[l]
	if a.S != nil {
		sp = a.S.Param
	}
	if a.B != nil {
		bp = a.B.Param
	}
	return sp, bp
}

// attention is layer l's attention over the normalised hidden states h,
// before the output projection. Attention applies the rotary positions
// itself (and splits a fused projection when there is no q/k norm), which
// saves graph nodes and copies.
func (m *Model) attention(l int, h mat.Tensor, pos, segments []int, seqLen int) mat.Tensor {
	s := m.Spec
	var rope *kernels.RoPEConfig
	if s.Position == arch.RoPEPositions {
		rope = m.ropeConfig(l, pos, seqLen)
	}
	cfg := m.attentionConfig(l, segments, rope)
	sp, bp := m.ssmaxParams(l)
	if s.QKV != arch.SeparateQKV && s.QKNorm == arch.NoQKNorm {
		return kernels.AttentionQKV(m.linear(h, arch.RoleQKV, arch.RoleQKVBias, l), sp, bp, cfg)
	}
	q, k, v := m.projections(l, h)
	return kernels.Attention(q, k, v, sp, bp, cfg)
}

// HeadParam is the output projection [vocab, hidden]: the untied head, or
// the token embeddings when tied.
func (m *Model) HeadParam() mat.Tensor {
	if head := m.Param(arch.RoleHead, -1); head != nil {
		return head.Param
	}
	return m.p(arch.RoleEmbed, -1)
}
