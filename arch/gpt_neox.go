package arch

// gptNeoXTable: GPT-NeoX / Pythia (modeling_gpt_neox.py): LayerNorm with
// bias, fused query_key_value laid out head by head [q_h | k_h | v_h],
// partial rotary embeddings (rotary_pct / partial_rotary_factor) on the
// first dimensions of each head, parallel residual
// (use_parallel_residual), ungated MLP with biases, untied embed_out.
var gptNeoXTable = &familyTable{
	family:        GPTNeoX,
	architectures: []string{"GPTNeoXForCausalLM", "GPTNeoXModel"},
	attention:     "gpt_neox.layers.{i}.attention",
	names: map[Role]string{
		RoleEmbed:         "gpt_neox.embed_in.weight",
		RoleAttnNorm:      "gpt_neox.layers.{i}.input_layernorm.weight",
		RoleAttnNormBias:  "gpt_neox.layers.{i}.input_layernorm.bias",
		RoleQKV:           "gpt_neox.layers.{i}.attention.query_key_value.weight",
		RoleQKVBias:       "gpt_neox.layers.{i}.attention.query_key_value.bias",
		RoleOut:           "gpt_neox.layers.{i}.attention.dense.weight",
		RoleOutBias:       "gpt_neox.layers.{i}.attention.dense.bias",
		RoleMLPNorm:       "gpt_neox.layers.{i}.post_attention_layernorm.weight",
		RoleMLPNormBias:   "gpt_neox.layers.{i}.post_attention_layernorm.bias",
		RoleUp:            "gpt_neox.layers.{i}.mlp.dense_h_to_4h.weight",
		RoleUpBias:        "gpt_neox.layers.{i}.mlp.dense_h_to_4h.bias",
		RoleDown:          "gpt_neox.layers.{i}.mlp.dense_4h_to_h.weight",
		RoleDownBias:      "gpt_neox.layers.{i}.mlp.dense_4h_to_h.bias",
		RoleFinalNorm:     "gpt_neox.final_layer_norm.weight",
		RoleFinalNormBias: "gpt_neox.final_layer_norm.bias",
		RoleHead:          "embed_out.weight",
	},
	read: func(r *reader, s *Spec, _ []string) {
		s.Hidden = r.int("hidden_size")
		s.Layers = r.int("num_hidden_layers")
		s.Heads = r.int("num_attention_heads")
		s.KVHeads = s.Heads
		if s.Heads > 0 {
			s.HeadDim = s.Hidden / s.Heads
		}
		s.Intermediate = r.int("intermediate_size")
		s.Context = r.int("max_position_embeddings")
		s.Norm, s.NormBias = LayerNorm, true
		s.NormEps = r.float(1e-5, "layer_norm_eps")
		s.Activation = r.str("hidden_act")
		if s.Activation == "" {
			s.Activation = "gelu"
		}
		s.QKV = FusedQKVPerHead
		s.QKVBias = r.bool(true, "attention_bias")
		s.OutBias = s.QKVBias
		s.MLPBias = true
		s.Position = RoPEPositions
		s.RoPE = r.rope(r.float(10000, "rotary_emb_base"), rotaryDim(r, s.HeadDim), s.Context, "")
		s.ParallelResidual = r.bool(true, "use_parallel_residual")
		s.TiedEmbeddings = r.bool(false, "tie_word_embeddings")
	},
}
