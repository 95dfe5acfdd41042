package arch

import "fmt"

// detectLlama reads the Llama-style families: llama, mistral, qwen2, qwen3.
// They share RMSNorm, rotate-half RoPE, grouped-query attention and a SwiGLU
// MLP; they differ in biases (qwen2: q/k/v), per-head q/k norms (qwen3),
// explicit head_dim (qwen3, newer llama/mistral) and sliding windows
// (mistral).
func detectLlama(r *reader, s *Spec) {
	s.Hidden = r.int("hidden_size", "n_embd")
	s.Layers = r.int("num_hidden_layers", "n_layer")
	s.Heads = r.int("num_attention_heads", "n_head")
	s.KVHeads = s.Heads
	if v, ok := r.optInt("num_key_value_heads"); ok {
		s.KVHeads = v
	}
	if v, ok := r.optInt("head_dim"); ok {
		s.HeadDim = v
	} else if s.Heads > 0 {
		if s.Hidden%s.Heads != 0 {
			r.fail(fmt.Errorf("hidden_size %d is not a multiple of %d heads and head_dim is not set", s.Hidden, s.Heads))
		}
		s.HeadDim = s.Hidden / s.Heads
	}
	s.Intermediate = r.int("intermediate_size", "n_inner")
	s.Context = r.int("max_position_embeddings", "n_positions", "n_ctx")
	s.Norm = RMSNorm
	s.NormEps = r.float(1e-6, "rms_norm_eps")
	s.Activation = r.str("hidden_act")
	if s.Activation == "" {
		s.Activation = "silu"
	}
	s.Position = RoPEPositions
	s.RoPETheta, s.RoPEScaling = r.rope(10000)
	s.TiedEmbeddings = r.bool(false, "tie_word_embeddings")
	switch s.Family {
	case Qwen2:
		s.QKVBias = true
	case Qwen3:
		s.QKNorm = true
		s.QKVBias = r.bool(false, "attention_bias")
		s.OutBias = s.QKVBias
	default:
		s.QKVBias = r.bool(false, "attention_bias")
		s.OutBias = s.QKVBias
		s.MLPBias = r.bool(false, "mlp_bias")
	}
	if s.Family == Mistral || s.Family == Qwen2 || s.Family == Qwen3 {
		if v, ok := r.optInt("sliding_window"); ok && r.bool(s.Family == Mistral, "use_sliding_window") {
			s.SlidingWindow = v
		}
	}
}
