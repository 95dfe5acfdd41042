package arch

// olmo2Table: OLMo 2 (modeling_olmo2.py): RMSNorm applied to the attention
// and MLP outputs before the residual add (no input norms), q/k RMSNorm
// over the whole projection width before RoPE, gated MLP.
var olmo2Table = &familyTable{
	family:        OLMo2,
	architectures: []string{"Olmo2ForCausalLM", "Olmo2Model"},
	names:         llamaNames,
	attention:     llamaAttention,
	read: func(r *reader, s *Spec, _ []string) {
		readLlamaStyle(r, s)
		s.NormEps = r.float(1e-5, "rms_norm_eps")
		s.NormPlacement = PostNorm
		s.QKNorm = ProjectionQKNorm
		s.QKVBias = r.bool(false, "attention_bias")
		s.OutBias = s.QKVBias
	},
}
