package arch

import "fmt"

// llamaNames are the tensor names of the Llama-style families (Llama,
// Mistral, Qwen2, Qwen3, OLMo 2, Gemma 2 and 3), which share them.
var llamaNames = map[Role]string{
	RoleEmbed:        "model.embed_tokens.weight",
	RoleAttnNorm:     "model.layers.{i}.input_layernorm.weight",
	RoleQ:            "model.layers.{i}.self_attn.q_proj.weight",
	RoleQBias:        "model.layers.{i}.self_attn.q_proj.bias",
	RoleK:            "model.layers.{i}.self_attn.k_proj.weight",
	RoleKBias:        "model.layers.{i}.self_attn.k_proj.bias",
	RoleV:            "model.layers.{i}.self_attn.v_proj.weight",
	RoleVBias:        "model.layers.{i}.self_attn.v_proj.bias",
	RoleQNorm:        "model.layers.{i}.self_attn.q_norm.weight",
	RoleKNorm:        "model.layers.{i}.self_attn.k_norm.weight",
	RoleOut:          "model.layers.{i}.self_attn.o_proj.weight",
	RoleOutBias:      "model.layers.{i}.self_attn.o_proj.bias",
	RoleAttnPostNorm: "model.layers.{i}.post_attention_layernorm.weight",
	RoleMLPNorm:      "model.layers.{i}.post_attention_layernorm.weight",
	RoleGate:         "model.layers.{i}.mlp.gate_proj.weight",
	RoleGateBias:     "model.layers.{i}.mlp.gate_proj.bias",
	RoleUp:           "model.layers.{i}.mlp.up_proj.weight",
	RoleUpBias:       "model.layers.{i}.mlp.up_proj.bias",
	RoleDown:         "model.layers.{i}.mlp.down_proj.weight",
	RoleDownBias:     "model.layers.{i}.mlp.down_proj.bias",
	RoleMLPPostNorm:  "model.layers.{i}.post_feedforward_layernorm.weight",
	RoleFinalNorm:    "model.norm.weight",
	RoleHead:         "lm_head.weight",
}

// llamaAttention is the attention module of the Llama-style families.
const llamaAttention = "model.layers.{i}.self_attn"

// withNames returns a copy of base with some names replaced.
func withNames(base map[Role]string, changes map[Role]string) map[Role]string {
	out := make(map[Role]string, len(base)+len(changes))
	for r, n := range base {
		out[r] = n
	}
	for r, n := range changes {
		out[r] = n
	}
	return out
}

// llamaTable: Llama (modeling_llama.py): RMSNorm before attention and MLP,
// rotate-half RoPE with optional scaling, grouped-query attention, gated
// MLP with the configured activation, optional attention and MLP biases.
var llamaTable = &familyTable{
	family:        Llama,
	architectures: []string{"LlamaForCausalLM", "LlamaModel"},
	names:         llamaNames,
	attention:     llamaAttention,
	read: func(r *reader, s *Spec, _ []string) {
		readLlamaStyle(r, s)
		s.QKVBias = r.bool(false, "attention_bias")
		s.OutBias = s.QKVBias
		s.MLPBias = r.bool(false, "mlp_bias")
	},
}

// mistralTable: Mistral (modeling_mistral.py): Llama's layout with a
// sliding window on every layer when sliding_window is set.
var mistralTable = &familyTable{
	family:        Mistral,
	architectures: []string{"MistralForCausalLM", "MistralModel"},
	names:         llamaNames,
	attention:     llamaAttention,
	read: func(r *reader, s *Spec, _ []string) {
		readLlamaStyle(r, s)
		s.Windows = windows(s.Layers, r.slidingWindow())
	},
}

// readLlamaStyle reads what the Llama-style configs share: shapes, RMSNorm
// (rms_norm_eps), hidden_act, rotate-half RoPE over the whole head (or
// partial_rotary_factor of it), tie_word_embeddings.
func readLlamaStyle(r *reader, s *Spec) {
	r.decoderShapes(s)
	s.Norm = RMSNorm
	s.NormEps = r.float(1e-6, "rms_norm_eps")
	s.Activation = r.str("hidden_act")
	if s.Activation == "" {
		s.Activation = "silu"
	}
	s.GatedMLP = true
	s.Position = RoPEPositions
	s.RoPE = r.rope(10000, rotaryDim(r, s.HeadDim), s.Context, "")
	s.TiedEmbeddings = r.bool(false, "tie_word_embeddings")
}

// rotaryDim is the number of rotated dimensions of a head:
// int(head_dim * partial_rotary_factor) (GPT-NeoX's rotary_pct), all of it
// by default.
func rotaryDim(r *reader, headDim int) int {
	f := r.float(1, "partial_rotary_factor", "rotary_pct")
	if !(f > 0 && f <= 1) {
		r.fail(fmt.Errorf("partial_rotary_factor %g must be in (0, 1]", f))
		return headDim
	}
	return int(float64(headDim) * f)
}
