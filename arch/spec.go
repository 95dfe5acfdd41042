// Package arch is the one place that knows model families: it detects the
// family of a checkpoint from its config.json, describes its shapes in a
// Spec, names every tensor, and recognises SSMax state added by ssmax convert.
package arch

import (
	"errors"
	"fmt"
	"strings"
)

// Family is a supported model family.
type Family string

// Supported families.
const (
	GPT2    Family = "gpt2"
	Llama   Family = "llama"
	Mistral Family = "mistral"
	Qwen2   Family = "qwen2"
	Qwen3   Family = "qwen3"
)

// Families lists the supported families in the order they are documented.
var Families = []Family{GPT2, Llama, Mistral, Qwen2, Qwen3}

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

// PositionKind is how positions enter the model.
type PositionKind string

// Positional schemes.
const (
	LearnedPositions PositionKind = "learned"
	RoPEPositions    PositionKind = "rope"
)

// RoPEScaling describes a rope_scaling / rope_parameters entry other than
// the default.
type RoPEScaling struct {
	Type                 string  `json:"rope_type"`
	Factor               float64 `json:"factor"`
	LowFreqFactor        float64 `json:"low_freq_factor"`
	HighFreqFactor       float64 `json:"high_freq_factor"`
	OriginalMaxPositions int     `json:"original_max_position_embeddings"`
}

// Spec is what ssmax needs to know about a checkpoint's architecture.
type Spec struct {
	Family Family
	// Prefix is prepended to gpt2 tensor names ("transformer." or "").
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
	// Activation is the MLP activation as named in config.json.
	Activation string

	Position  PositionKind
	RoPETheta float64
	// RoPEScaling is nil for plain RoPE.
	RoPEScaling *RoPEScaling
	// SlidingWindow is Mistral's attention window, 0 for none.
	SlidingWindow int

	TiedEmbeddings bool
	// QKVBias: the query, key and value projections have biases.
	QKVBias bool
	// OutBias: the attention output projection has a bias.
	OutBias bool
	// MLPBias: the MLP projections have biases.
	MLPBias bool
	// QKNorm: per-head RMSNorm on queries and keys (qwen3).
	QKNorm bool

	// DType is the dtype named by config.json (torch_dtype / dtype), "" when absent.
	DType string
	// BOS and EOS are the token ids from config.json, -1 when absent.
	BOS, EOS int

	// SSMax is the SSMax state of a converted checkpoint, nil for softmax.
	SSMax *SSMaxConfig
}

// AttentionPrefix is the module holding layer i's attention, where SSMax
// parameters are stored: "<prefix>.ssmax_s".
func (s *Spec) AttentionPrefix(layer int) string {
	if s.Family == GPT2 {
		return fmt.Sprintf("%sh.%d.attn", s.Prefix, layer)
	}
	return fmt.Sprintf("model.layers.%d.self_attn", layer)
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
		fmt.Fprintf(&b, ", rope theta %g", s.RoPETheta)
	}
	return b.String()
}
