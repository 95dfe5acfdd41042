package arch

import (
	"fmt"
	"strings"
)

// Role says what a tensor is for, independently of the family's names.
type Role string

// Tensor roles. Global roles have Layer -1.
const (
	RoleEmbed         Role = "embed"           // token embeddings [vocab, hidden]
	RolePosEmbed      Role = "pos_embed"       // learned positions [context, hidden]
	RoleFinalNorm     Role = "final_norm"      // [hidden]
	RoleFinalNormBias Role = "final_norm_bias" // [hidden]
	RoleHead          Role = "lm_head"         // [vocab, hidden]

	RoleAttnNorm     Role = "attn_norm"
	RoleAttnNormBias Role = "attn_norm_bias"
	RoleQKV          Role = "qkv"      // gpt2 fused [hidden, 3*hidden] (Conv1D, [in, out])
	RoleQKVBias      Role = "qkv_bias" // gpt2 [3*hidden]
	RoleQ            Role = "q"        // [heads*head_dim, hidden]
	RoleK            Role = "k"        // [kv_heads*head_dim, hidden]
	RoleV            Role = "v"
	RoleQBias        Role = "q_bias"
	RoleKBias        Role = "k_bias"
	RoleVBias        Role = "v_bias"
	RoleQNorm        Role = "q_norm" // qwen3 [head_dim]
	RoleKNorm        Role = "k_norm"
	RoleOut          Role = "attn_out" // gpt2 [hidden, hidden] Conv1D; others [hidden, heads*head_dim]
	RoleOutBias      Role = "attn_out_bias"
	RoleMLPNorm      Role = "mlp_norm"
	RoleMLPNormBias  Role = "mlp_norm_bias"
	RoleUp           Role = "mlp_up" // gpt2 c_fc [hidden, inter]; others [inter, hidden]
	RoleUpBias       Role = "mlp_up_bias"
	RoleGate         Role = "mlp_gate" // [inter, hidden]
	RoleGateBias     Role = "mlp_gate_bias"
	RoleDown         Role = "mlp_down" // gpt2 c_proj [inter, hidden]; others [hidden, inter]
	RoleDownBias     Role = "mlp_down_bias"
	RoleSSMaxS       Role = "ssmax_s" // F32 [heads]
	RoleSSMaxB       Role = "ssmax_b" // F32 [heads]
)

// IsSSMax reports whether the role is an SSMax parameter (s or b).
func (r Role) IsSSMax() bool { return r == RoleSSMaxS || r == RoleSSMaxB }

// TensorSpec is one tensor a checkpoint of this spec holds.
type TensorSpec struct {
	Name  string
	Role  Role
	Layer int // -1 for global tensors
	Shape []int64
	// Optional tensors may be absent (gpt2's lm_head when tied).
	Optional bool
}

// InOut reports whether the family stores this linear weight as [in, out]
// (GPT-2's Conv1D) rather than [out, in] (nn.Linear).
func (s *Spec) InOut(r Role) bool {
	if s.Family != GPT2 {
		return false
	}
	switch r {
	case RoleQKV, RoleOut, RoleUp, RoleDown:
		return true
	}
	return false
}

// Tensors lists every weight the checkpoint must (or may) hold, in a
// canonical order: input tensors, layers, output tensors. SSMax tensors are
// included for the layers the SSMax config converts.
func (s *Spec) Tensors() []TensorSpec {
	out := s.inputTensors()
	for i := 0; i < s.Layers; i++ {
		out = append(out, s.LayerTensors(i)...)
	}
	return append(out, s.outputTensors()...)
}

// Weights lists the model weights only: Tensors without SSMax parameters.
func (s *Spec) Weights() []TensorSpec {
	var out []TensorSpec
	for _, t := range s.Tensors() {
		if !t.Role.IsSSMax() {
			out = append(out, t)
		}
	}
	return out
}

// Name returns the tensor name of role in layer (-1 for global roles), or
// "" when the spec has no such tensor.
func (s *Spec) Name(r Role, layer int) string {
	var list []TensorSpec
	if layer < 0 {
		list = append(s.inputTensors(), s.outputTensors()...)
	} else {
		list = s.LayerTensors(layer)
	}
	for _, t := range list {
		if t.Role == r {
			return t.Name
		}
	}
	return ""
}

func (s *Spec) inputTensors() []TensorSpec {
	d, v := int64(s.Hidden), int64(s.Vocab)
	if s.Family != GPT2 {
		return []TensorSpec{{Name: "model.embed_tokens.weight", Role: RoleEmbed, Layer: -1, Shape: []int64{v, d}}}
	}
	out := []TensorSpec{{Name: s.Prefix + "wte.weight", Role: RoleEmbed, Layer: -1, Shape: []int64{v, d}}}
	if s.Position == LearnedPositions {
		out = append(out, TensorSpec{Name: s.Prefix + "wpe.weight", Role: RolePosEmbed, Layer: -1, Shape: []int64{int64(s.Context), d}})
	}
	return out
}

func (s *Spec) outputTensors() []TensorSpec {
	d, v := int64(s.Hidden), int64(s.Vocab)
	head := TensorSpec{Name: "lm_head.weight", Role: RoleHead, Layer: -1, Shape: []int64{v, d}, Optional: s.TiedEmbeddings}
	if s.Family != GPT2 {
		return []TensorSpec{{Name: "model.norm.weight", Role: RoleFinalNorm, Layer: -1, Shape: []int64{d}}, head}
	}
	return []TensorSpec{
		{Name: s.Prefix + "ln_f.weight", Role: RoleFinalNorm, Layer: -1, Shape: []int64{d}},
		{Name: s.Prefix + "ln_f.bias", Role: RoleFinalNormBias, Layer: -1, Shape: []int64{d}},
		head,
	}
}

// LayerTensors lists layer i's tensors.
func (s *Spec) LayerTensors(i int) []TensorSpec {
	var out []TensorSpec
	add := func(name string, r Role, shape ...int64) {
		out = append(out, TensorSpec{Name: name, Role: r, Layer: i, Shape: shape})
	}
	d, inter := int64(s.Hidden), int64(s.Intermediate)
	h, kv, hd := int64(s.Heads), int64(s.KVHeads), int64(s.HeadDim)
	if s.Family == GPT2 {
		p := fmt.Sprintf("%sh.%d.", s.Prefix, i)
		add(p+"ln_1.weight", RoleAttnNorm, d)
		add(p+"ln_1.bias", RoleAttnNormBias, d)
		add(p+"attn.c_attn.weight", RoleQKV, d, 3*d)
		add(p+"attn.c_attn.bias", RoleQKVBias, 3*d)
		add(p+"attn.c_proj.weight", RoleOut, d, d)
		add(p+"attn.c_proj.bias", RoleOutBias, d)
		add(p+"ln_2.weight", RoleMLPNorm, d)
		add(p+"ln_2.bias", RoleMLPNormBias, d)
		add(p+"mlp.c_fc.weight", RoleUp, d, inter)
		add(p+"mlp.c_fc.bias", RoleUpBias, inter)
		add(p+"mlp.c_proj.weight", RoleDown, inter, d)
		add(p+"mlp.c_proj.bias", RoleDownBias, d)
	} else {
		p := fmt.Sprintf("model.layers.%d.", i)
		add(p+"input_layernorm.weight", RoleAttnNorm, d)
		add(p+"self_attn.q_proj.weight", RoleQ, h*hd, d)
		if s.QKVBias {
			add(p+"self_attn.q_proj.bias", RoleQBias, h*hd)
		}
		add(p+"self_attn.k_proj.weight", RoleK, kv*hd, d)
		if s.QKVBias {
			add(p+"self_attn.k_proj.bias", RoleKBias, kv*hd)
		}
		add(p+"self_attn.v_proj.weight", RoleV, kv*hd, d)
		if s.QKVBias {
			add(p+"self_attn.v_proj.bias", RoleVBias, kv*hd)
		}
		add(p+"self_attn.o_proj.weight", RoleOut, d, h*hd)
		if s.OutBias {
			add(p+"self_attn.o_proj.bias", RoleOutBias, d)
		}
		if s.QKNorm {
			add(p+"self_attn.q_norm.weight", RoleQNorm, hd)
			add(p+"self_attn.k_norm.weight", RoleKNorm, hd)
		}
		add(p+"post_attention_layernorm.weight", RoleMLPNorm, d)
		add(p+"mlp.gate_proj.weight", RoleGate, inter, d)
		if s.MLPBias {
			add(p+"mlp.gate_proj.bias", RoleGateBias, inter)
		}
		add(p+"mlp.up_proj.weight", RoleUp, inter, d)
		if s.MLPBias {
			add(p+"mlp.up_proj.bias", RoleUpBias, inter)
		}
		add(p+"mlp.down_proj.weight", RoleDown, d, inter)
		if s.MLPBias {
			add(p+"mlp.down_proj.bias", RoleDownBias, d)
		}
	}
	if s.SSMax != nil && s.SSMax.Converts(i) {
		if s.SSMax.Variant.HasS() {
			add(s.SSMaxS(i), RoleSSMaxS, h)
		}
		if s.SSMax.Variant.HasB() {
			add(s.SSMaxB(i), RoleSSMaxB, h)
		}
	}
	return out
}

// IsBuffer reports tensors that checkpoints may carry but that are not
// weights: GPT-2's causal mask buffers and old Llama rotary caches.
func IsBuffer(name string) bool {
	return strings.HasSuffix(name, ".attn.bias") || strings.HasSuffix(name, ".attn.masked_bias") ||
		strings.HasSuffix(name, "rotary_emb.inv_freq")
}

// IsSSMaxTensor reports whether name is an SSMax parameter (".ssmax_s" or
// ".ssmax_b" under an attention module).
func IsSSMaxTensor(name string) bool {
	return strings.HasSuffix(name, ".ssmax_s") || strings.HasSuffix(name, ".ssmax_b")
}

// AttentionAnchors maps each layer to the last tensor, in the given storage
// order, of its attention module (SSMax parameters excluded): new SSMax
// parameters are stored right after it, as the reference conversion does.
func (s *Spec) AttentionAnchors(names []string) map[int]string {
	out := map[int]string{}
	for _, n := range names {
		if IsSSMaxTensor(n) {
			continue
		}
		for l := 0; l < s.Layers; l++ {
			if strings.HasPrefix(n, s.AttentionPrefix(l)+".") {
				out[l] = n
			}
		}
	}
	return out
}
