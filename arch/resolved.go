package arch

import (
	"slices"

	"github.com/ssmax/ssmax/attnscale"
)

// ResolvedFormat and ResolvedVersion identify the resolved-spec document
// (Resolve): what another engine (python/ssmax_torch) reads instead of
// config.json, so that the family tables stay the one place that knows
// families.
const (
	ResolvedFormat  = "ssmax.resolved_spec"
	ResolvedVersion = 1
)

// Resolved is a Spec spelled out for an engine that knows no family: every
// shape and feature, every tensor with its role, layer and stored layout,
// each layer's window, RoPE and attention variant (with the names of its s
// and b), and the RoPE tables the Go engine computes. Its JSON form is
// OUT/spec.json of a torch run and `ssmax inspect --resolved`.
type Resolved struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	Family  Family `json:"family"`

	NumLayers        int `json:"num_layers"`
	NumHeads         int `json:"num_heads"`
	NumKVHeads       int `json:"num_kv_heads"`
	HeadDim          int `json:"head_dim"`
	HiddenSize       int `json:"hidden_size"`
	IntermediateSize int `json:"intermediate_size"`
	VocabSize        int `json:"vocab_size"`
	Context          int `json:"context"`

	Norm ResolvedNorm `json:"norm"`
	// QKNorm is "" (none), "head" (RMSNorm over each head's head_dim, weights
	// [head_dim]) or "projection" (RMSNorm over the whole q / k projection).
	QKNorm QKNormKind `json:"qk_norm"`
	// Activation is the MLP activation's config.json name.
	Activation string `json:"activation"`
	// GatedMLP: down(act(gate(x)) * up(x)); otherwise down(act(up(x))).
	GatedMLP bool `json:"gated_mlp"`
	// FusedGateUp: one stored projection [gate; up] (rows).
	FusedGateUp bool `json:"fused_gate_up"`
	// QKV: "separate", "fused" (rows [q | k | v]) or "fused_per_head" (rows
	// head by head [q_h | k_h | v_h]; see ResolvedTensor.RowLayout).
	QKV              QKVLayout    `json:"qkv"`
	QKVBias          bool         `json:"qkv_bias"`
	OutBias          bool         `json:"out_bias"`
	MLPBias          bool         `json:"mlp_bias"`
	Position         PositionKind `json:"position"`
	ParallelResidual bool         `json:"parallel_residual"`
	// EmbedScale multiplies the token embeddings (0: none).
	EmbedScale float64 `json:"embed_scale"`
	// AttnScale multiplies q·k (before the SSMax factor).
	AttnScale float64 `json:"attn_scale"`
	// AttnSoftcap and FinalSoftcap: c·tanh(z/c) on attention logits (after
	// the SSMax factor) and on output logits; 0 means none.
	AttnSoftcap    float64 `json:"attn_softcap"`
	FinalSoftcap   float64 `json:"final_softcap"`
	TiedEmbeddings bool    `json:"tied_embeddings"`
	BOS            int     `json:"bos_token_id"`
	EOS            int     `json:"eos_token_id"`
	DType          string  `json:"dtype,omitempty"`

	// SeqLen is the sequence length the RoPE tables were resolved for
	// (the run's --seq-len).
	SeqLen int `json:"seq_len"`
	// RoPEThetaScale is the factor already applied to every theta (1: none).
	RoPEThetaScale float64 `json:"rope_theta_scale"`
	// RoPE holds the rotary embeddings by name: "global", and "local" for
	// sliding-window layers of families with a local base (Gemma 3).
	RoPE map[string]*ResolvedRoPE `json:"rope,omitempty"`

	// Layers describes each layer.
	Layers []ResolvedLayer `json:"layers"`
	// Tensors lists every tensor in the spec's canonical order (Spec.Tensors).
	Tensors []ResolvedTensor `json:"tensors"`
	// SSMax is the checkpoint's "ssmax" config object, nil for softmax.
	SSMax *SSMaxConfig `json:"ssmax,omitempty"`
	// KeyCount states how SSMax's n is counted.
	KeyCount string `json:"n"`
}

// ResolvedNorm is the block normalisation.
type ResolvedNorm struct {
	// Kind is "layernorm" or "rmsnorm".
	Kind NormKind `json:"kind"`
	Eps  float64  `json:"eps"`
	// Bias: LayerNorms have a bias tensor.
	Bias bool `json:"bias"`
	// Offset is added to every norm weight (Gemma's 1 + w), q/k norms included.
	Offset float64 `json:"offset"`
	// Placement is "pre" (x + f(norm(x))), "post" (x + norm(f(x))) or
	// "sandwich" (x + norm2(f(norm1(x)))).
	Placement NormPlacement `json:"placement"`
}

// ResolvedLayer is one layer's attention geometry.
type ResolvedLayer struct {
	Index int `json:"index"`
	// Window is the sliding window W (query i sees keys j with i - j < W,
	// and SSMax's n is min(i+1, W)); 0 for full attention.
	Window int `json:"window"`
	// RoPE names the layer's entry of Resolved.RoPE ("" without RoPE).
	RoPE string `json:"rope,omitempty"`
	// Variant is the layer's attention: softmax, ssmax, fixed or bias.
	Variant attnscale.Variant `json:"variant"`
	// S and B name the layer's SSMax tensors ("" when the variant has none).
	S string `json:"s,omitempty"`
	B string `json:"b,omitempty"`
}

// ResolvedTensor is one stored tensor.
type ResolvedTensor struct {
	Name  string  `json:"name"`
	Role  Role    `json:"role"`
	Layer int     `json:"layer"` // -1 for global tensors
	Shape []int64 `json:"shape"` // as stored
	// Optional tensors may be absent (a tied head).
	Optional bool `json:"optional,omitempty"`
	// Transposed: a linear weight stored [in, out] (GPT-2's Conv1D); the
	// engine computes with [out, in].
	Transposed bool `json:"transposed,omitempty"`
	// RowLayout, when "qkv_per_head", says the rows are stored head by head
	// [q_h | k_h | v_h] (GPT-NeoX's query_key_value and its bias): the
	// engine computes with rows [q | k | v], stored row h*3*d + part*d + i
	// being engine row part*H*d + h*d + i.
	RowLayout string `json:"row_layout,omitempty"`
}

// RowLayoutQKVPerHead is ResolvedTensor.RowLayout for GPT-NeoX's fused
// per-head projection.
const RowLayoutQKVPerHead = "qkv_per_head"

// ResolvedRoPE is a rotary embedding with its tables: the rotated
// dimensions of each head are pairs (i, i+Dim/2), angle position·InvFreq[i],
// cos and sin multiplied by AttnFactor.
type ResolvedRoPE struct {
	RoPE
	// Tables give the inverse frequencies by the length L of the longest
	// document of a forward pass (Go's engine recomputes them per pass only
	// for dynamic and longrope scaling): the first table whose MaxLen is 0
	// or >= L applies.
	Tables []RoPETable `json:"tables"`
}

// RoPETable is the frequencies for sequence lengths up to MaxLen (0: any).
type RoPETable struct {
	MaxLen     int       `json:"max_len"`
	InvFreq    []float64 `json:"inv_freq"`
	AttnFactor float64   `json:"attn_factor"`
	// Dynamic: the frequencies depend on L itself (dynamic NTK beyond
	// max_position_embeddings): base' = theta·(factor·L/max_positions −
	// (factor − 1))^(dim/(dim−2)), InvFreq[i] = base'^(−2i/dim). InvFreq
	// holds the values at L = AtLen (the run's sequence length, or the
	// first length the formula applies to), so an engine can check its
	// computation against Go's.
	Dynamic bool `json:"dynamic,omitempty"`
	AtLen   int  `json:"at_len,omitempty"`
}

// ResolveOptions choose the run the tables are resolved for.
type ResolveOptions struct {
	// SeqLen is the run's sequence length (0: the context).
	SeqLen int
	// RoPEThetaScale multiplies every rope_theta (0 or 1: none), as
	// model.Options.RoPEThetaScale does.
	RoPEThetaScale float64
}

// maxProbeLen bounds the search for the length at which a RoPE's
// frequencies change (dynamic and longrope switch once).
const maxProbeLen = 1 << 30

// Resolve spells the spec out (see Resolved).
func (s *Spec) Resolve(o ResolveOptions) *Resolved {
	seqLen := o.SeqLen
	if seqLen <= 0 {
		seqLen = s.Context
	}
	scale := o.RoPEThetaScale
	if scale <= 0 {
		scale = 1
	}
	r := &Resolved{
		Format: ResolvedFormat, Version: ResolvedVersion, Family: s.Family,
		NumLayers: s.Layers, NumHeads: s.Heads, NumKVHeads: s.KVHeads, HeadDim: s.HeadDim,
		HiddenSize: s.Hidden, IntermediateSize: s.Intermediate, VocabSize: s.Vocab, Context: s.Context,
		Norm:   ResolvedNorm{Kind: s.Norm, Eps: s.NormEps, Bias: s.NormBias, Offset: s.NormOffset, Placement: s.NormPlacement},
		QKNorm: s.QKNorm, Activation: s.Activation, GatedMLP: s.GatedMLP, FusedGateUp: s.FusedGateUp,
		QKV: s.QKV, QKVBias: s.QKVBias, OutBias: s.OutBias, MLPBias: s.MLPBias, Position: s.Position,
		ParallelResidual: s.ParallelResidual, EmbedScale: s.EmbedScale, AttnScale: s.AttnScale,
		AttnSoftcap: s.AttnSoftcap, FinalSoftcap: s.FinalSoftcap, TiedEmbeddings: s.TiedEmbeddings,
		BOS: s.BOS, EOS: s.EOS, DType: s.DType, SeqLen: seqLen, RoPEThetaScale: scale,
		SSMax: s.SSMax, KeyCount: KeyCountRule,
	}
	if s.Position == RoPEPositions {
		r.RoPE = map[string]*ResolvedRoPE{"global": resolveRoPE(s.RoPE, scale, seqLen)}
		if s.LocalRoPE != nil {
			r.RoPE["local"] = resolveRoPE(*s.LocalRoPE, scale, seqLen)
		}
	}
	for l := 0; l < s.Layers; l++ {
		rl := ResolvedLayer{Index: l, Window: s.Window(l), Variant: attnscale.Softmax}
		if s.Position == RoPEPositions {
			rl.RoPE = "global"
			if s.LayerRoPE(l) == s.LocalRoPE {
				rl.RoPE = "local"
			}
		}
		if s.SSMax != nil && s.SSMax.Converts(l) {
			rl.Variant = s.SSMax.Variant
			if rl.Variant.HasS() {
				rl.S = s.SSMaxS(l)
			}
			if rl.Variant.HasB() {
				rl.B = s.SSMaxB(l)
			}
		}
		r.Layers = append(r.Layers, rl)
	}
	for _, t := range s.Tensors() {
		rt := ResolvedTensor{Name: t.Name, Role: t.Role, Layer: t.Layer, Shape: slices.Clone(t.Shape),
			Optional: t.Optional, Transposed: s.InOut(t.Role)}
		if s.QKV == FusedQKVPerHead && (t.Role == RoleQKV || t.Role == RoleQKVBias) {
			rt.RowLayout = RowLayoutQKVPerHead
		}
		r.Tensors = append(r.Tensors, rt)
	}
	return r
}

// resolveRoPE tabulates rp (theta multiplied by scale) for the lengths a
// run of seqLen tokens can meet, and beyond: the frequencies of length 1 up
// to the first length where they change (dynamic NTK past
// max_position_embeddings, longrope past original_max_position_embeddings),
// then those of the longer lengths.
func resolveRoPE(rp RoPE, scale float64, seqLen int) *ResolvedRoPE {
	rp.Theta *= scale
	out := &ResolvedRoPE{RoPE: rp}
	first, firstAttn := rp.Frequencies(1)
	same := func(l int) bool {
		f, a := rp.Frequencies(l)
		return a == firstAttn && slices.Equal(f, first)
	}
	if same(maxProbeLen) {
		f, a := rp.Frequencies(seqLen)
		out.Tables = []RoPETable{{InvFreq: f, AttnFactor: a}}
		return out
	}
	// The smallest length whose frequencies differ from length 1's.
	lo, hi := 1, maxProbeLen // same(lo), !same(hi)
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if same(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	out.Tables = append(out.Tables, RoPETable{MaxLen: lo, InvFreq: first, AttnFactor: firstAttn})
	at := max(seqLen, hi)
	f, a := rp.Frequencies(at)
	t := RoPETable{InvFreq: f, AttnFactor: a}
	if rp.Scaling != nil && rp.Scaling.Type == RoPEDynamic {
		t.Dynamic, t.AtLen = true, at
	}
	out.Tables = append(out.Tables, t)
	return out
}
