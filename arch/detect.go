package arch

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/ssmax/ssmax/checkpoint"
)

// Detect builds the Spec of a checkpoint from its config and tensor names
// (GPT-2 files differ in whether names start with "transformer.").
func Detect(cfg *checkpoint.Config, tensorNames []string) (*Spec, error) {
	fam, err := DetectFamily(cfg)
	if err != nil {
		return nil, err
	}
	r := &reader{cfg: cfg}
	s := &Spec{Family: fam, BOS: -1, EOS: -1, QKV: SeparateQKV, NormPlacement: PreNorm}
	s.Vocab = r.int("vocab_size")
	s.DType = r.str("torch_dtype", "dtype")
	s.BOS = r.tokenID("bos_token_id")
	s.EOS = r.tokenID("eos_token_id")
	tableOf(fam).read(r, s, tensorNames)
	if r.err != nil {
		return nil, r.err
	}
	if s.AttnScale == 0 && s.HeadDim > 0 {
		s.AttnScale = 1 / math.Sqrt(float64(s.HeadDim))
	}
	if s.Windows == nil {
		s.Windows = make([]int, max(s.Layers, 0))
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	if cfg.Has(SSMaxConfigKey) {
		var sc SSMaxConfig
		if _, err := cfg.Decode(SSMaxConfigKey, &sc); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		if err := sc.validate(s.Layers); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		s.SSMax = &sc
	}
	return s, nil
}

func (s *Spec) validate() error {
	check := func(name string, v int) error {
		if v <= 0 {
			return fmt.Errorf("%w: %s must be positive, got %d", ErrConfig, name, v)
		}
		return nil
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"vocab_size", s.Vocab}, {"hidden size", s.Hidden}, {"number of layers", s.Layers},
		{"number of attention heads", s.Heads}, {"number of key/value heads", s.KVHeads},
		{"head_dim", s.HeadDim}, {"intermediate size", s.Intermediate}, {"context length", s.Context}} {
		if err := check(c.name, c.v); err != nil {
			return err
		}
	}
	if s.Heads%s.KVHeads != 0 {
		return fmt.Errorf("%w: %d attention heads is not a multiple of %d key/value heads", ErrConfig, s.Heads, s.KVHeads)
	}
	if s.Position == RoPEPositions {
		for _, rp := range []*RoPE{&s.RoPE, s.LocalRoPE} {
			if rp == nil {
				continue
			}
			if rp.Dim <= 0 || rp.Dim%2 != 0 || rp.Dim > s.HeadDim {
				return fmt.Errorf("%w: RoPE needs an even number of rotary dimensions in (0, head_dim %d], got %d", ErrConfig, s.HeadDim, rp.Dim)
			}
			if !(rp.Theta > 0) {
				return fmt.Errorf("%w: rope_theta must be positive, got %g", ErrConfig, rp.Theta)
			}
			if rp.Scaling != nil {
				if err := rp.Scaling.validate(rp.Dim); err != nil {
					return err
				}
			}
		}
	}
	if !(s.NormEps > 0) {
		return fmt.Errorf("%w: normalisation epsilon must be positive, got %g", ErrConfig, s.NormEps)
	}
	if len(s.Windows) != s.Layers {
		return fmt.Errorf("%w: %d per-layer attention types for %d layers", ErrConfig, len(s.Windows), s.Layers)
	}
	for l, w := range s.Windows {
		if w < 0 {
			return fmt.Errorf("%w: layer %d: sliding window %d must be positive", ErrConfig, l, w)
		}
	}
	if s.AttnSoftcap < 0 || s.FinalSoftcap < 0 {
		return fmt.Errorf("%w: soft-caps must be positive (attention %g, final %g)", ErrConfig, s.AttnSoftcap, s.FinalSoftcap)
	}
	if s.QKV == FusedQKVPerHead && s.KVHeads != s.Heads {
		return fmt.Errorf("%w: a per-head fused query_key_value needs as many key/value heads as heads (%d, %d)", ErrConfig, s.KVHeads, s.Heads)
	}
	return nil
}

// reader decodes config values, remembering the first error.
type reader struct {
	cfg *checkpoint.Config
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil && err != nil {
		r.err = fmt.Errorf("%w: %w", ErrConfig, err)
	}
}

// int returns the first present key as an int; absent is an error.
func (r *reader) int(keys ...string) int {
	v, ok := r.optInt(keys...)
	if !ok && r.err == nil {
		r.err = fmt.Errorf("%w: missing %s", ErrConfig, strings.Join(keys, " / "))
	}
	return v
}

func (r *reader) optInt(keys ...string) (int, bool) {
	v, ok, err := r.cfg.Int(keys...)
	r.fail(err)
	return v, ok
}

// tokenID reads a special token id that may be an int or a list of ints
// (the first is returned), -1 when absent or null.
func (r *reader) tokenID(key string) int {
	raw := r.cfg.Raw(key)
	if raw == nil || string(raw) == "null" {
		return -1
	}
	var list []int
	if json.Unmarshal(raw, &list) == nil {
		if len(list) == 0 {
			return -1
		}
		return list[0]
	}
	v, _ := r.optInt(key)
	return v
}

func (r *reader) float(def float64, keys ...string) float64 {
	v, ok, err := r.cfg.Float(keys...)
	r.fail(err)
	if !ok {
		return def
	}
	return v
}

func (r *reader) bool(def bool, keys ...string) bool {
	v, ok, err := r.cfg.Bool(keys...)
	r.fail(err)
	if !ok {
		return def
	}
	return v
}

func (r *reader) str(keys ...string) string {
	v, _, err := r.cfg.String(keys...)
	r.fail(err)
	return v
}

// strings reads a list of strings; absent or null gives nil.
func (r *reader) strings(key string) []string {
	var out []string
	_, err := r.cfg.Decode(key, &out)
	r.fail(err)
	return out
}

// decoderShapes reads the shapes shared by the Llama-style configs:
// hidden_size, layers, heads, kv heads, head_dim (explicit, or hidden /
// heads), intermediate size and context.
func (r *reader) decoderShapes(s *Spec) {
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
}

// layerTypes reads Hugging Face's per-layer attention types
// ("sliding_attention" / "full_attention") into windows of size w; nil when
// the config has no layer_types.
func (r *reader) layerTypes(layers, w int) []int {
	types := r.strings("layer_types")
	if types == nil {
		return nil
	}
	if len(types) != layers {
		r.fail(fmt.Errorf("layer_types has %d entries for %d layers", len(types), layers))
		return nil
	}
	out := make([]int, layers)
	for i, t := range types {
		switch t {
		case "full_attention":
		case "sliding_attention":
			out[i] = w
		default:
			r.fail(fmt.Errorf("%w layer type %q (layer %d; supported: full_attention, sliding_attention)", ErrUnsupported, t, i))
		}
	}
	return out
}

// windows gives every layer the window w (0: none).
func windows(layers, w int) []int {
	out := make([]int, max(layers, 0))
	for i := range out {
		out[i] = w
	}
	return out
}

// slidingWindow reads sliding_window as a positive window or 0 (absent or
// null).
func (r *reader) slidingWindow() int {
	v, ok := r.optInt("sliding_window")
	if !ok || v <= 0 {
		return 0
	}
	return v
}

// rope reads the rotary embedding: rope_theta (top level or inside the
// parameters) and the scaling, from transformers v4's rope_scaling (type
// under "type" or "rope_type") or v5's rope_parameters, which for some
// families is keyed by layer type. rotaryDim is the number of rotated
// dimensions; layerType selects the entry of a per-layer-type
// rope_parameters ("full_attention" or "sliding_attention").
func (r *reader) rope(defTheta float64, rotaryDim, maxPositions int, layerType string) RoPE {
	rp := RoPE{Theta: r.float(defTheta, "rope_theta"), Dim: rotaryDim, MaxPositions: maxPositions}
	var found []string
	for _, key := range []string{"rope_parameters", "rope_scaling"} {
		raw := r.cfg.Raw(key)
		if raw == nil || string(raw) == "null" {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			r.fail(fmt.Errorf("config key %q: %v", key, err))
			return rp
		}
		if sub, ok := m[layerType]; ok && layerType != "" {
			raw, m = sub, nil
			if err := json.Unmarshal(raw, &m); err != nil {
				r.fail(fmt.Errorf("config key %q: %s: %v", key, layerType, err))
				return rp
			}
		} else if _, perType := m["full_attention"]; perType {
			continue // an entry for another layer type only
		}
		if t, ok := m["rope_theta"]; ok && string(t) != "null" {
			if err := json.Unmarshal(t, &rp.Theta); err != nil {
				r.fail(fmt.Errorf("config key %q: rope_theta: %v", key, err))
			}
		}
		var sc RoPEScaling
		if err := json.Unmarshal(raw, &sc); err != nil {
			r.fail(fmt.Errorf("config key %q: %v", key, err))
			return rp
		}
		var legacy struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(raw, &legacy)
		switch {
		case sc.Type == "":
			sc.Type = legacy.Type
		case legacy.Type != "" && legacy.Type != sc.Type:
			r.fail(fmt.Errorf("config key %q: type %q and rope_type %q disagree", key, legacy.Type, sc.Type))
		}
		if sc.Type == "" || sc.Type == "default" {
			found = append(found, key+"=default")
			continue
		}
		if rp.Scaling != nil && rp.Scaling.Type != sc.Type {
			r.fail(fmt.Errorf("rope_parameters (%s) and rope_scaling (%s) disagree", rp.Scaling.Type, sc.Type))
			return rp
		}
		if sc.Type == "su" {
			sc.Type = RoPELongRoPE // Phi-3's first name for LongRoPE
		}
		found = append(found, key+"="+sc.Type)
		c := sc
		rp.Scaling = &c
	}
	if sc := rp.Scaling; sc != nil {
		// original_max_position_embeddings at the top level of the config
		// wins over the scaling entry's (as transformers reads it).
		if v, ok := r.optInt("original_max_position_embeddings"); ok && v > 0 {
			sc.OriginalMaxPositions = v
		}
	}
	if rp.Scaling != nil && len(found) == 2 && strings.HasSuffix(found[0], "=default") != strings.HasSuffix(found[1], "=default") {
		r.fail(fmt.Errorf("rope settings disagree: %s", strings.Join(found, ", ")))
	}
	return rp
}
