package arch

import (
	"fmt"
	"strings"
)

// gpt2Table: GPT-2 (modeling_gpt2.py). Conv1D weights stored [in, out],
// fused c_attn [q | k | v], LayerNorm with bias before attention and MLP,
// learned positions or, for the paper's model, RoPE
// ("position_embedding_type": "rope" with "rope_theta" and no wpe).
var gpt2Table = &familyTable{
	family:        GPT2,
	architectures: []string{"GPT2LMHeadModel", "GPT2Model"},
	attention:     "{p}h.{i}.attn",
	names: map[Role]string{
		RoleEmbed:         "{p}wte.weight",
		RolePosEmbed:      "{p}wpe.weight",
		RoleAttnNorm:      "{p}h.{i}.ln_1.weight",
		RoleAttnNormBias:  "{p}h.{i}.ln_1.bias",
		RoleQKV:           "{p}h.{i}.attn.c_attn.weight",
		RoleQKVBias:       "{p}h.{i}.attn.c_attn.bias",
		RoleOut:           "{p}h.{i}.attn.c_proj.weight",
		RoleOutBias:       "{p}h.{i}.attn.c_proj.bias",
		RoleMLPNorm:       "{p}h.{i}.ln_2.weight",
		RoleMLPNormBias:   "{p}h.{i}.ln_2.bias",
		RoleUp:            "{p}h.{i}.mlp.c_fc.weight",
		RoleUpBias:        "{p}h.{i}.mlp.c_fc.bias",
		RoleDown:          "{p}h.{i}.mlp.c_proj.weight",
		RoleDownBias:      "{p}h.{i}.mlp.c_proj.bias",
		RoleFinalNorm:     "{p}ln_f.weight",
		RoleFinalNormBias: "{p}ln_f.bias",
		RoleHead:          "lm_head.weight",
	},
	read: readGPT2,
}

func readGPT2(r *reader, s *Spec, names []string) {
	s.Hidden = r.int("n_embd", "hidden_size")
	s.Layers = r.int("n_layer", "num_hidden_layers")
	s.Heads = r.int("n_head", "num_attention_heads")
	s.KVHeads = s.Heads
	if s.Heads > 0 {
		if s.Hidden%s.Heads != 0 {
			r.fail(fmt.Errorf("hidden size %d is not a multiple of %d heads", s.Hidden, s.Heads))
		}
		s.HeadDim = s.Hidden / s.Heads
	}
	if v, ok := r.optInt("n_inner"); ok {
		s.Intermediate = v
	} else {
		s.Intermediate = 4 * s.Hidden
	}
	s.Context = r.int("n_positions", "n_ctx", "max_position_embeddings")
	s.Norm, s.NormBias = LayerNorm, true
	s.NormEps = r.float(1e-5, "layer_norm_epsilon")
	s.Activation = r.str("activation_function")
	if s.Activation == "" {
		s.Activation = "gelu_new"
	}
	s.QKV, s.InOutLinear = FusedQKV, true
	s.TiedEmbeddings = r.bool(true, "tie_word_embeddings")
	s.QKVBias, s.OutBias, s.MLPBias = true, true, true
	switch pe := r.str("position_embedding_type"); pe {
	case "", "absolute", "learned":
		s.Position = LearnedPositions
	case "rope":
		s.Position = RoPEPositions
		s.RoPE = r.rope(10000, s.HeadDim, s.Context, "")
	default:
		r.fail(fmt.Errorf("%w position_embedding_type %q for gpt2 (want absolute or rope)", ErrUnsupported, pe))
	}
	if r.bool(false, "scale_attn_by_inverse_layer_idx") {
		r.fail(fmt.Errorf("%w gpt2 option scale_attn_by_inverse_layer_idx", ErrUnsupported))
	}
	if !r.bool(true, "scale_attn_weights") {
		r.fail(fmt.Errorf("%w gpt2 option scale_attn_weights=false", ErrUnsupported))
	}
	if r.bool(false, "reorder_and_upcast_attn") {
		// Upcasting changes nothing in float32 compute; the order of the
		// scaling is the same product.
	}
	s.Prefix = "transformer."
	if len(names) > 0 {
		s.Prefix = ""
		for _, n := range names {
			if strings.HasPrefix(n, "transformer.") {
				s.Prefix = "transformer."
				break
			}
		}
	}
}
