package arch

import (
	"fmt"
	"strings"
)

// detectGPT2 reads a GPT-2 config: Conv1D weights stored [in, out], fused
// c_attn [q|k|v], LayerNorm, gelu_new, learned positions or, for the paper's
// model, RoPE ("position_embedding_type": "rope" with "rope_theta").
func detectGPT2(r *reader, s *Spec, names []string) {
	s.Hidden = r.int("n_embd", "hidden_size")
	s.Layers = r.int("n_layer", "num_hidden_layers")
	s.Heads = r.int("n_head", "num_attention_heads")
	s.KVHeads = s.Heads
	if s.Heads > 0 {
		s.HeadDim = s.Hidden / s.Heads
	}
	if v, ok := r.optInt("n_inner"); ok {
		s.Intermediate = v
	} else {
		s.Intermediate = 4 * s.Hidden
	}
	s.Context = r.int("n_positions", "n_ctx", "max_position_embeddings")
	s.Norm = LayerNorm
	s.NormEps = r.float(1e-5, "layer_norm_epsilon")
	s.Activation = r.str("activation_function")
	if s.Activation == "" {
		s.Activation = "gelu_new"
	}
	s.TiedEmbeddings = r.bool(true, "tie_word_embeddings")
	s.QKVBias, s.OutBias, s.MLPBias = true, true, true
	switch pe := r.str("position_embedding_type"); pe {
	case "", "absolute", "learned":
		s.Position = LearnedPositions
	case "rope":
		s.Position = RoPEPositions
		s.RoPETheta, s.RoPEScaling = r.rope(10000)
	default:
		r.fail(fmt.Errorf("%w position_embedding_type %q for gpt2 (want absolute or rope)", ErrUnsupported, pe))
	}
	if r.bool(false, "scale_attn_by_inverse_layer_idx") {
		r.fail(fmt.Errorf("%w gpt2 option scale_attn_by_inverse_layer_idx", ErrUnsupported))
	}
	if !r.bool(true, "scale_attn_weights") {
		r.fail(fmt.Errorf("%w gpt2 option scale_attn_weights=false", ErrUnsupported))
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
