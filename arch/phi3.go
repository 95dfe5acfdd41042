package arch

// phi3Table: Phi-3 (modeling_phi3.py): Llama's block with fused qkv_proj
// [q; k; v] and gate_up_proj [gate; up], partial rotary embeddings
// (partial_rotary_factor), LongRoPE scaling with
// original_max_position_embeddings at the top level of the config, and a
// sliding window on every layer when sliding_window is set.
var phi3Table = &familyTable{
	family:        Phi3,
	architectures: []string{"Phi3ForCausalLM", "Phi3Model"},
	names: withNames(llamaNames, map[Role]string{
		RoleQKV:    "model.layers.{i}.self_attn.qkv_proj.weight",
		RoleGateUp: "model.layers.{i}.mlp.gate_up_proj.weight",
	}),
	attention: llamaAttention,
	read: func(r *reader, s *Spec, _ []string) {
		readLlamaStyle(r, s)
		s.NormEps = r.float(1e-5, "rms_norm_eps")
		s.QKV = FusedQKV
		s.FusedGateUp = true
		if sc := s.RoPE.Scaling; sc != nil && sc.OriginalMaxPositions == 0 {
			sc.OriginalMaxPositions = 4096 // Phi3Config's default
		}
		s.Windows = windows(s.Layers, r.slidingWindow())
	},
}
