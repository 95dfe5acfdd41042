package arch

import (
	"encoding/json"
	"fmt"
	"math"
)

// gemmaNames are Llama's names plus Gemma's extra norms around the MLP.
var gemmaNames = withNames(llamaNames, map[Role]string{
	RoleMLPNorm: "model.layers.{i}.pre_feedforward_layernorm.weight",
})

// gemma2Table: Gemma 2 (modeling_gemma2.py): (1 + w) RMSNorm before and
// after attention and MLP, embeddings scaled by sqrt(hidden), GeGLU
// (hidden_activation), query_pre_attn_scalar^-0.5 as the logit scale,
// attention and final logit soft-capping, sliding windows on alternate
// layers (even layers slide unless layer_types says otherwise), tied
// embeddings.
var gemma2Table = &familyTable{
	family:        Gemma2,
	architectures: []string{"Gemma2ForCausalLM", "Gemma2Model"},
	names:         gemmaNames,
	attention:     llamaAttention,
	read: func(r *reader, s *Spec, _ []string) {
		readGemma(r, s)
		s.RoPE = r.rope(10000, s.HeadDim, s.Context, "")
		s.AttnSoftcap = r.floatOrNull(50, "attn_logit_softcapping")
		s.FinalSoftcap = r.floatOrNull(30, "final_logit_softcapping")
		w := r.slidingWindow()
		if s.Windows = r.layerTypes(s.Layers, w); s.Windows == nil {
			s.Windows = make([]int, max(s.Layers, 0))
			for i := range s.Windows {
				if i%2 == 0 {
					s.Windows[i] = w
				}
			}
		}
	},
}

// gemma3Table: Gemma 3's text model (modeling_gemma3.py, model_type
// gemma3_text): Gemma 2's block with per-head (1 + w) q/k norms, no
// soft-caps unless set, and local sliding-window layers (all but every
// sliding_window_pattern-th, or as layer_types says) that use their own
// RoPE base rope_local_base_freq without scaling; global layers use
// rope_theta with rope_scaling.
var gemma3Table = &familyTable{
	family:        Gemma3,
	architectures: []string{"Gemma3ForCausalLM"},
	names:         gemmaNames,
	attention:     llamaAttention,
	read: func(r *reader, s *Spec, _ []string) {
		readGemma(r, s)
		s.QKNorm = HeadQKNorm
		s.RoPE = r.rope(1e6, s.HeadDim, s.Context, "full_attention")
		// Local layers: transformers v4's rope_local_base_freq with no
		// scaling, or v5's rope_parameters.sliding_attention entry.
		var local RoPE
		if r.cfg.Has("rope_local_base_freq") || !perLayerType(r, "rope_parameters") {
			local = RoPE{Theta: r.float(10000, "rope_local_base_freq"), Dim: s.HeadDim, MaxPositions: s.Context}
		} else {
			local = r.rope(10000, s.HeadDim, s.Context, "sliding_attention")
		}
		s.LocalRoPE = &local
		// Gemma 3's attention passes no soft-cap even when the config
		// names one; the final soft-cap applies.
		s.FinalSoftcap = r.floatOrNull(0, "final_logit_softcapping")
		w := r.slidingWindow()
		if s.Windows = r.layerTypes(s.Layers, w); s.Windows == nil {
			pattern := 6
			if v, ok := r.optInt("sliding_window_pattern"); ok {
				pattern = v
			}
			if pattern <= 0 {
				r.fail(fmt.Errorf("sliding_window_pattern %d must be positive", pattern))
				return
			}
			s.Windows = make([]int, max(s.Layers, 0))
			for i := range s.Windows {
				if (i+1)%pattern != 0 {
					s.Windows[i] = w
				}
			}
		}
	},
}

// readGemma reads what Gemma 2 and 3 share.
func readGemma(r *reader, s *Spec) {
	r.decoderShapes(s)
	if _, ok := r.optInt("head_dim"); !ok {
		s.HeadDim = 256
	}
	s.Norm = RMSNorm
	s.NormEps = r.float(1e-6, "rms_norm_eps")
	s.NormOffset = 1
	s.NormPlacement = SandwichNorm
	s.Activation = r.str("hidden_activation", "hidden_act")
	if s.Activation == "" {
		s.Activation = "gelu_pytorch_tanh"
	}
	s.GatedMLP = true
	s.Position = RoPEPositions
	s.QKVBias = r.bool(false, "attention_bias")
	s.OutBias = s.QKVBias
	s.EmbedScale = math.Sqrt(float64(s.Hidden))
	s.AttnScale = 1 / math.Sqrt(r.float(256, "query_pre_attn_scalar"))
	s.TiedEmbeddings = r.bool(true, "tie_word_embeddings")
}

// floatOrNull reads a float whose absence means def and whose null means
// "off" (0), as Gemma's soft-cap settings do.
func (r *reader) floatOrNull(def float64, key string) float64 {
	raw := r.cfg.Raw(key)
	switch {
	case raw == nil:
		return def
	case string(raw) == "null":
		return 0
	}
	return r.float(def, key)
}

// perLayerType reports whether the config's key holds entries keyed by
// layer type ("full_attention", "sliding_attention"), as transformers v5's
// rope_parameters does for Gemma 3.
func perLayerType(r *reader, key string) bool {
	var m map[string]json.RawMessage
	if raw := r.cfg.Raw(key); raw == nil || json.Unmarshal(raw, &m) != nil {
		return false
	}
	_, ok := m["sliding_attention"]
	return ok
}
