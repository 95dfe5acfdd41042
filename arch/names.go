package arch

import (
	"strings"
)

// Role says what a tensor is for, independently of the family's names.
type Role string

// Tensor roles. Global roles have Layer -1. Shapes are given for nn.Linear
// storage [out, in]; families with InOutLinear store linear weights
// transposed.
const (
	RoleEmbed         Role = "embed"           // token embeddings [vocab, hidden]
	RolePosEmbed      Role = "pos_embed"       // learned positions [context, hidden]
	RoleFinalNorm     Role = "final_norm"      // [hidden]
	RoleFinalNormBias Role = "final_norm_bias" // [hidden]
	RoleHead          Role = "lm_head"         // [vocab, hidden]

	RoleAttnNorm     Role = "attn_norm" // before attention [hidden]
	RoleAttnNormBias Role = "attn_norm_bias"
	RoleQKV          Role = "qkv"      // fused [(heads+2*kv_heads)*head_dim, hidden]
	RoleQKVBias      Role = "qkv_bias" // [(heads+2*kv_heads)*head_dim]
	RoleQ            Role = "q"        // [heads*head_dim, hidden]
	RoleK            Role = "k"        // [kv_heads*head_dim, hidden]
	RoleV            Role = "v"
	RoleQBias        Role = "q_bias"
	RoleKBias        Role = "k_bias"
	RoleVBias        Role = "v_bias"
	RoleQNorm        Role = "q_norm"   // [head_dim] or [heads*head_dim] (QKNormKind)
	RoleKNorm        Role = "k_norm"   // [head_dim] or [kv_heads*head_dim]
	RoleOut          Role = "attn_out" // [hidden, heads*head_dim]
	RoleOutBias      Role = "attn_out_bias"
	RoleAttnPostNorm Role = "attn_post_norm" // on the attention output [hidden]
	RoleMLPNorm      Role = "mlp_norm"       // before the MLP [hidden]
	RoleMLPNormBias  Role = "mlp_norm_bias"
	RoleUp           Role = "mlp_up" // [intermediate, hidden]
	RoleUpBias       Role = "mlp_up_bias"
	RoleGate         Role = "mlp_gate" // [intermediate, hidden]
	RoleGateBias     Role = "mlp_gate_bias"
	RoleGateUp       Role = "mlp_gate_up" // fused [2*intermediate, hidden]: [gate; up]
	RoleDown         Role = "mlp_down"    // [hidden, intermediate]
	RoleDownBias     Role = "mlp_down_bias"
	RoleMLPPostNorm  Role = "mlp_post_norm" // on the MLP output [hidden]
	RoleSSMaxS       Role = "ssmax_s"       // F32 [heads]
	RoleSSMaxB       Role = "ssmax_b"       // F32 [heads]
)

// IsSSMax reports whether the role is an SSMax parameter (s or b).
func (r Role) IsSSMax() bool { return r == RoleSSMaxS || r == RoleSSMaxB }

// IsNormWeight reports whether the role is a normalisation gain (whose
// Spec.NormOffset applies).
func (r Role) IsNormWeight() bool {
	switch r {
	case RoleFinalNorm, RoleAttnNorm, RoleMLPNorm, RoleAttnPostNorm, RoleMLPPostNorm, RoleQNorm, RoleKNorm:
		return true
	}
	return false
}

// TensorSpec is one tensor a checkpoint of this spec holds.
type TensorSpec struct {
	Name  string
	Role  Role
	Layer int // -1 for global tensors
	Shape []int64
	// Optional tensors may be absent (the head when embeddings are tied).
	Optional bool
}

// InOut reports whether this weight is stored [in, out] (GPT-2's Conv1D)
// rather than [out, in] (nn.Linear).
func (s *Spec) InOut(r Role) bool {
	if !s.InOutLinear {
		return false
	}
	switch r {
	case RoleQKV, RoleQ, RoleK, RoleV, RoleOut, RoleUp, RoleGate, RoleGateUp, RoleDown:
		return true
	}
	return false
}

// QKVWidth is the output width of a fused query/key/value projection.
func (s *Spec) QKVWidth() int { return (s.Heads + 2*s.KVHeads) * s.HeadDim }

// has reports whether the spec's features say the family stores role.
func (s *Spec) has(r Role) bool {
	pre := s.NormPlacement == PreNorm || s.NormPlacement == SandwichNorm
	post := s.NormPlacement == PostNorm || s.NormPlacement == SandwichNorm
	fused := s.QKV == FusedQKV || s.QKV == FusedQKVPerHead
	switch r {
	case RoleEmbed, RoleFinalNorm, RoleHead, RoleOut, RoleDown:
		return true
	case RolePosEmbed:
		return s.Position == LearnedPositions
	case RoleFinalNormBias:
		return s.NormBias
	case RoleAttnNorm, RoleMLPNorm:
		return pre
	case RoleAttnNormBias, RoleMLPNormBias:
		return pre && s.NormBias
	case RoleAttnPostNorm, RoleMLPPostNorm:
		return post
	case RoleQKV:
		return fused
	case RoleQKVBias:
		return fused && s.QKVBias
	case RoleQ, RoleK, RoleV:
		return !fused
	case RoleQBias, RoleKBias, RoleVBias:
		return !fused && s.QKVBias
	case RoleQNorm, RoleKNorm:
		return s.QKNorm != NoQKNorm
	case RoleOutBias:
		return s.OutBias
	case RoleUp:
		return !s.FusedGateUp
	case RoleGate:
		return s.GatedMLP && !s.FusedGateUp
	case RoleGateUp:
		return s.FusedGateUp
	case RoleUpBias:
		return !s.FusedGateUp && s.MLPBias
	case RoleGateBias:
		return s.GatedMLP && !s.FusedGateUp && s.MLPBias
	case RoleDownBias:
		return s.MLPBias
	}
	return false
}

// shape is the stored shape of role.
func (s *Spec) shape(r Role) []int64 {
	d, inter, v := int64(s.Hidden), int64(s.Intermediate), int64(s.Vocab)
	q, kv := int64(s.Heads*s.HeadDim), int64(s.KVHeads*s.HeadDim)
	linear := func(out, in int64) []int64 {
		if s.InOut(r) {
			return []int64{in, out}
		}
		return []int64{out, in}
	}
	switch r {
	case RoleEmbed, RoleHead:
		return []int64{v, d}
	case RolePosEmbed:
		return []int64{int64(s.Context), d}
	case RoleQKV:
		return linear(int64(s.QKVWidth()), d)
	case RoleQKVBias:
		return []int64{int64(s.QKVWidth())}
	case RoleQ:
		return linear(q, d)
	case RoleK, RoleV:
		return linear(kv, d)
	case RoleQBias:
		return []int64{q}
	case RoleKBias, RoleVBias:
		return []int64{kv}
	case RoleQNorm:
		if s.QKNorm == ProjectionQKNorm {
			return []int64{q}
		}
		return []int64{int64(s.HeadDim)}
	case RoleKNorm:
		if s.QKNorm == ProjectionQKNorm {
			return []int64{kv}
		}
		return []int64{int64(s.HeadDim)}
	case RoleOut:
		return linear(d, q)
	case RoleUp, RoleGate:
		return linear(inter, d)
	case RoleGateUp:
		return linear(2*inter, d)
	case RoleUpBias, RoleGateBias:
		return []int64{inter}
	case RoleDown:
		return linear(d, inter)
	case RoleSSMaxS, RoleSSMaxB:
		return []int64{int64(s.Heads)}
	}
	return []int64{d} // norms, norm biases, output biases
}

// globalInputRoles, layerRoles and globalOutputRoles give the canonical
// order of Tensors.
var (
	globalInputRoles = []Role{RoleEmbed, RolePosEmbed}
	layerRoles       = []Role{
		RoleAttnNorm, RoleAttnNormBias,
		RoleQKV, RoleQKVBias, RoleQ, RoleQBias, RoleK, RoleKBias, RoleV, RoleVBias, RoleQNorm, RoleKNorm,
		RoleOut, RoleOutBias, RoleAttnPostNorm,
		RoleMLPNorm, RoleMLPNormBias,
		RoleGateUp, RoleGate, RoleGateBias, RoleUp, RoleUpBias, RoleDown, RoleDownBias, RoleMLPPostNorm,
	}
	globalOutputRoles = []Role{RoleFinalNorm, RoleFinalNormBias, RoleHead}
)

func (s *Spec) tensor(r Role, layer int) TensorSpec {
	return TensorSpec{
		Name: s.expand(tableOf(s.Family).names[r], layer), Role: r, Layer: layer, Shape: s.shape(r),
		Optional: r == RoleHead && s.TiedEmbeddings,
	}
}

func (s *Spec) globalTensors(roles []Role) []TensorSpec {
	var out []TensorSpec
	for _, r := range roles {
		if s.has(r) {
			out = append(out, s.tensor(r, -1))
		}
	}
	return out
}

// Tensors lists every weight the checkpoint must (or may) hold, in a
// canonical order: input tensors, layers, output tensors. SSMax tensors are
// included for the layers the SSMax config converts.
func (s *Spec) Tensors() []TensorSpec {
	out := s.globalTensors(globalInputRoles)
	for i := 0; i < s.Layers; i++ {
		out = append(out, s.LayerTensors(i)...)
	}
	return append(out, s.globalTensors(globalOutputRoles)...)
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
		list = append(s.globalTensors(globalInputRoles), s.globalTensors(globalOutputRoles)...)
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

// LayerTensors lists layer i's tensors.
func (s *Spec) LayerTensors(i int) []TensorSpec {
	var out []TensorSpec
	for _, r := range layerRoles {
		if s.has(r) {
			out = append(out, s.tensor(r, i))
		}
	}
	if s.SSMax != nil && s.SSMax.Converts(i) {
		if s.SSMax.Variant.HasS() {
			out = append(out, TensorSpec{Name: s.SSMaxS(i), Role: RoleSSMaxS, Layer: i, Shape: s.shape(RoleSSMaxS)})
		}
		if s.SSMax.Variant.HasB() {
			out = append(out, TensorSpec{Name: s.SSMaxB(i), Role: RoleSSMaxB, Layer: i, Shape: s.shape(RoleSSMaxB)})
		}
	}
	return out
}

// bufferSuffixes end the names of tensors that checkpoints may carry but
// that are not weights: causal-mask buffers (GPT-2, GPT-NeoX) and old
// rotary caches.
var bufferSuffixes = []string{".attn.bias", ".attn.masked_bias", ".attention.bias", ".attention.masked_bias", "rotary_emb.inv_freq"}

// IsBuffer reports tensors that checkpoints may carry but that are not
// weights.
func IsBuffer(name string) bool {
	for _, suf := range bufferSuffixes {
		if strings.HasSuffix(name, suf) {
			return true
		}
	}
	return false
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
	prefixes := make([]string, s.Layers)
	for l := range prefixes {
		prefixes[l] = s.AttentionPrefix(l) + "."
	}
	for _, n := range names {
		if IsSSMaxTensor(n) {
			continue
		}
		for l, p := range prefixes {
			if strings.HasPrefix(n, p) {
				out[l] = n
			}
		}
	}
	return out
}
