package arch

// qwen2Table: Qwen2 (modeling_qwen2.py): Llama's layout with q/k/v biases
// (none on o_proj) and optional sliding windows: only with
// use_sliding_window, on the layers from max_window_layers on, or as
// layer_types says. A window present but switched off stays off.
var qwen2Table = &familyTable{
	family:        Qwen2,
	architectures: []string{"Qwen2ForCausalLM", "Qwen2Model"},
	names:         llamaNames,
	attention:     llamaAttention,
	read: func(r *reader, s *Spec, _ []string) {
		readLlamaStyle(r, s)
		s.QKVBias = true
		s.Windows = qwenWindows(r, s.Layers)
	},
}

// qwen3Table: Qwen3 (modeling_qwen3.py): Llama's layout with per-head
// RMSNorm on queries and keys before RoPE, optional attention biases, and
// Qwen2's sliding-window rules.
var qwen3Table = &familyTable{
	family:        Qwen3,
	architectures: []string{"Qwen3ForCausalLM", "Qwen3Model"},
	names:         llamaNames,
	attention:     llamaAttention,
	read: func(r *reader, s *Spec, _ []string) {
		readLlamaStyle(r, s)
		s.QKNorm = HeadQKNorm
		s.QKVBias = r.bool(false, "attention_bias")
		s.OutBias = s.QKVBias
		s.Windows = qwenWindows(r, s.Layers)
	},
}

// qwenWindows applies Qwen2/Qwen3's rules: sliding_window counts only
// with use_sliding_window (default false); then layer_types, or else the
// layers i >= max_window_layers (default 28), slide.
func qwenWindows(r *reader, layers int) []int {
	w := r.slidingWindow()
	if !r.bool(false, "use_sliding_window") {
		w = 0
	}
	if types := r.layerTypes(layers, w); types != nil {
		return types
	}
	out := make([]int, max(layers, 0))
	if w == 0 {
		return out
	}
	from := 28
	if v, ok := r.optInt("max_window_layers"); ok {
		from = v
	}
	for i := range out {
		if i >= from {
			out[i] = w
		}
	}
	return out
}
