// Package arch is the one place that knows model families: it detects the
// family of a checkpoint from its config.json, describes its shapes and
// behaviour in a Spec, names every tensor, and recognises SSMax state added
// by ssmax convert. Family knowledge is data: each family is one table file
// (gpt2.go, llama.go, ...) holding its tensor names and the config reader
// that fills the Spec's features; the engine reads the features, never the
// family name.
package arch

import (
	"errors"
	"fmt"
	"strings"
)

// Family is a supported model family, named as config.json's model_type.
type Family string

// Supported families.
const (
	GPT2    Family = "gpt2"
	Llama   Family = "llama"
	Mistral Family = "mistral"
	Qwen2   Family = "qwen2"
	Qwen3   Family = "qwen3"
	GPTNeoX Family = "gpt_neox"
	OLMo2   Family = "olmo2"
	Gemma2  Family = "gemma2"
	Gemma3  Family = "gemma3_text"
	Phi3    Family = "phi3"
)

// ErrUnsupported reports a family or option ssmax does not support.
var ErrUnsupported = errors.New("unsupported")

// ErrConfig reports a config.json that lacks or contradicts a needed value.
var ErrConfig = errors.New("bad model config")

// ErrTensor reports a tensor that is missing or has the wrong shape.
var ErrTensor = errors.New("tensor mismatch")

// NormKind is the normalisation a family uses.
type NormKind string

// Normalisations.
const (
	LayerNorm NormKind = "layernorm"
	RMSNorm   NormKind = "rmsnorm"
)

// NormPlacement says where a block's normalisations sit.
type NormPlacement string

// Norm placements.
const (
	// PreNorm normalises the input of attention and MLP (GPT-2, Llama, ...):
	// x + f(norm(x)).
	PreNorm NormPlacement = "pre"
	// PostNorm normalises the sub-layer outputs before the residual add
	// (OLMo 2): x + norm(f(x)).
	PostNorm NormPlacement = "post"
	// SandwichNorm does both (Gemma 2 and 3): x + norm2(f(norm1(x))).
	SandwichNorm NormPlacement = "sandwich"
)

// QKNormKind says whether and how queries and keys are normalised before
// the rotary positions.
type QKNormKind string

// Query/key normalisations.
const (
	NoQKNorm QKNormKind = ""
	// HeadQKNorm is an RMSNorm over each head's head_dim values (Qwen3,
	// Gemma 3): weights [head_dim].
	HeadQKNorm QKNormKind = "head"
	// ProjectionQKNorm is an RMSNorm over the whole query (key) projection
	// (OLMo 2): weights [heads*head_dim] ([kv_heads*head_dim]).
	ProjectionQKNorm QKNormKind = "projection"
)

// QKVLayout says how query, key and value projections are stored.
type QKVLayout string

// Projection layouts.
const (
	// SeparateQKV stores q_proj, k_proj and v_proj.
	SeparateQKV QKVLayout = "separate"
	// FusedQKV stores one projection whose outputs are [q | k | v] (GPT-2's
	// c_attn, Phi-3's qkv_proj).
	FusedQKV QKVLayout = "fused"
	// FusedQKVPerHead stores one projection whose outputs are, head by
	// head, [q_h | k_h | v_h] (GPT-NeoX's query_key_value).
	FusedQKVPerHead QKVLayout = "fused_per_head"
)

// PositionKind is how positions enter the model.
type PositionKind string

// Positional schemes.
const (
	LearnedPositions PositionKind = "learned"
	RoPEPositions    PositionKind = "rope"
)

// Spec is what ssmax needs to know about a checkpoint's architecture: its
// shapes and every behaviour the engine must reproduce.
type Spec struct {
	Family Family
	// Prefix is prepended to GPT-2 tensor names ("transformer." or "").
	Prefix string

	Layers       int
	Heads        int
	KVHeads      int
	HeadDim      int
	Hidden       int
	Intermediate int
	Vocab        int
	// Context is the training context: n_positions / max_position_embeddings.
	Context int

	Norm    NormKind
	NormEps float64
	// NormBias: LayerNorms have a bias (GPT-2, GPT-NeoX).
	NormBias bool
	// NormOffset is added to every norm weight: 1 for Gemma's (1 + w), else 0.
	NormOffset float64
	// NormPlacement is where the block norms sit.
	NormPlacement NormPlacement
	// QKNorm normalises queries and keys.
	QKNorm QKNormKind

	// Activation is the MLP activation as named in config.json.
	Activation string
	// GatedMLP: the MLP is down(act(gate(x)) * up(x)); otherwise down(act(up(x))).
	GatedMLP bool
	// FusedGateUp: gate and up are one stored projection [gate; up] (Phi-3).
	FusedGateUp bool
	// QKV is how the attention projections are stored.
	QKV QKVLayout
	// InOutLinear: linear weights are stored [in, out] (GPT-2's Conv1D)
	// rather than [out, in].
	InOutLinear bool
	// QKVBias: the query, key and value projections have biases.
	QKVBias bool
	// OutBias: the attention output projection has a bias.
	OutBias bool
	// MLPBias: the MLP projections have biases.
	MLPBias bool

	Position PositionKind
	// RoPE is the rotary embedding of global (full-attention) layers.
	RoPE RoPE
	// LocalRoPE, when set, is the rotary embedding of sliding-window
	// layers (Gemma 3's rope_local_base_freq).
	LocalRoPE *RoPE

	// Windows holds each layer's sliding window W (query i sees keys j with
	// i - j < W), 0 for full attention.
	Windows []int
	// ParallelResidual: x + attn(norm1(x)) + mlp(norm2(x)) (GPT-NeoX).
	ParallelResidual bool
	// EmbedScale multiplies the token embeddings (Gemma: sqrt(hidden)); 0
	// means none.
	EmbedScale float64
	// AttnScale multiplies q·k before softmax (and before the SSMax
	// factor): 1/sqrt(head_dim), or Gemma's query_pre_attn_scalar^-0.5.
	AttnScale float64
	// AttnSoftcap caps attention logits: c·tanh(z/c) (Gemma 2); 0 means none.
	AttnSoftcap float64
	// FinalSoftcap caps the output logits likewise; 0 means none.
	FinalSoftcap float64

	TiedEmbeddings bool

	// DType is the dtype named by config.json (torch_dtype / dtype), "" when absent.
	DType string
	// BOS and EOS are the token ids from config.json, -1 when absent.
	BOS, EOS int

	// SSMax is the SSMax state of a converted checkpoint, nil for softmax.
	SSMax *SSMaxConfig
}

// Window is layer l's sliding window, 0 for full attention.
func (s *Spec) Window(l int) int {
	if l < 0 || l >= len(s.Windows) {
		return 0
	}
	return s.Windows[l]
}

// LayerRoPE is the rotary embedding layer l uses: LocalRoPE on
// sliding-window layers when the family has one, RoPE otherwise.
func (s *Spec) LayerRoPE(l int) *RoPE {
	if s.LocalRoPE != nil && s.Window(l) > 0 {
		return s.LocalRoPE
	}
	return &s.RoPE
}

// AttentionPrefix is the module holding layer i's attention, where SSMax
// parameters are stored: "<prefix>.ssmax_s".
func (s *Spec) AttentionPrefix(layer int) string {
	return s.expand(tableOf(s.Family).attention, layer)
}

// SSMaxS is the name of layer i's SSMax s tensor.
func (s *Spec) SSMaxS(layer int) string { return s.AttentionPrefix(layer) + ".ssmax_s" }

// SSMaxB is the name of layer i's SSMax b tensor (bias variant).
func (s *Spec) SSMaxB(layer int) string { return s.AttentionPrefix(layer) + ".ssmax_b" }

// String summarises the spec on one line.
func (s *Spec) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d layers, %d heads (%d kv), head_dim %d, hidden %d, intermediate %d, vocab %d, context %d",
		s.Family, s.Layers, s.Heads, s.KVHeads, s.HeadDim, s.Hidden, s.Intermediate, s.Vocab, s.Context)
	if s.Position == RoPEPositions {
		fmt.Fprintf(&b, ", rope theta %g", s.RoPE.Theta)
	}
	return b.String()
}
