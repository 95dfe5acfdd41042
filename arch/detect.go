package arch

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ssmax/ssmax/checkpoint"
)

// familyByArchitecture maps transformers class names to families.
var familyByArchitecture = map[string]Family{
	"GPT2LMHeadModel":    GPT2,
	"GPT2Model":          GPT2,
	"LlamaForCausalLM":   Llama,
	"LlamaModel":         Llama,
	"MistralForCausalLM": Mistral,
	"MistralModel":       Mistral,
	"Qwen2ForCausalLM":   Qwen2,
	"Qwen2Model":         Qwen2,
	"Qwen3ForCausalLM":   Qwen3,
	"Qwen3Model":         Qwen3,
}

// DetectFamily names the family of a config from model_type, or else from
// the first of architectures.
func DetectFamily(cfg *checkpoint.Config) (Family, error) {
	mt, _, err := cfg.String("model_type")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrConfig, err)
	}
	var archs []string
	if _, err := cfg.Decode("architectures", &archs); err != nil {
		return "", fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if mt != "" {
		for _, f := range Families {
			if string(f) == mt {
				return f, nil
			}
		}
		return "", fmt.Errorf("%w model family %q (supported: %s)", ErrUnsupported, mt, supportedList())
	}
	for _, a := range archs {
		if f, ok := familyByArchitecture[a]; ok {
			return f, nil
		}
	}
	if len(archs) > 0 {
		return "", fmt.Errorf("%w model family %q (supported: %s)", ErrUnsupported, archs[0], supportedList())
	}
	return "", fmt.Errorf("%w: neither model_type nor architectures is set (supported families: %s)", ErrConfig, supportedList())
}

func supportedList() string {
	names := make([]string, len(Families))
	for i, f := range Families {
		names[i] = string(f)
	}
	return strings.Join(names, ", ")
}

// Detect builds the Spec of a checkpoint from its config and tensor names
// (gpt2 files differ in whether names start with "transformer.").
func Detect(cfg *checkpoint.Config, tensorNames []string) (*Spec, error) {
	fam, err := DetectFamily(cfg)
	if err != nil {
		return nil, err
	}
	r := &reader{cfg: cfg}
	s := &Spec{Family: fam, BOS: -1, EOS: -1}
	s.Vocab = r.int("vocab_size")
	s.DType = r.str("torch_dtype", "dtype")
	if v, ok := r.optInt("bos_token_id"); ok {
		s.BOS = v
	}
	if v, ok := r.optInt("eos_token_id"); ok {
		s.EOS = v
	}
	switch fam {
	case GPT2:
		detectGPT2(r, s, tensorNames)
	default:
		detectLlama(r, s)
	}
	if r.err != nil {
		return nil, r.err
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
	if s.Family == GPT2 && s.Hidden%s.Heads != 0 {
		return fmt.Errorf("%w: hidden size %d is not a multiple of %d heads", ErrConfig, s.Hidden, s.Heads)
	}
	if s.Position == RoPEPositions {
		if s.HeadDim%2 != 0 {
			return fmt.Errorf("%w: RoPE needs an even head_dim, got %d", ErrConfig, s.HeadDim)
		}
		if s.RoPETheta <= 0 {
			return fmt.Errorf("%w: rope_theta must be positive, got %g", ErrConfig, s.RoPETheta)
		}
	}
	if s.NormEps <= 0 {
		return fmt.Errorf("%w: normalisation epsilon must be positive, got %g", ErrConfig, s.NormEps)
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
		r.err = fmt.Errorf("%w: %v", ErrConfig, err)
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

// rope reads rope_theta and the scaling entry, accepting the top-level
// rope_theta, rope_scaling, and transformers v5's rope_parameters.
func (r *reader) rope(def float64) (float64, *RoPEScaling) {
	theta := r.float(def, "rope_theta")
	var scaling *RoPEScaling
	for _, key := range []string{"rope_parameters", "rope_scaling"} {
		raw := r.cfg.Raw(key)
		if raw == nil || string(raw) == "null" {
			continue
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			r.fail(fmt.Errorf("config key %q: %v", key, err))
			return theta, nil
		}
		if t, ok := m["rope_theta"]; ok {
			if err := json.Unmarshal(t, &theta); err != nil {
				r.fail(fmt.Errorf("config key %q: rope_theta: %v", key, err))
			}
		}
		var sc RoPEScaling
		if err := json.Unmarshal(raw, &sc); err != nil {
			r.fail(fmt.Errorf("config key %q: %v", key, err))
			return theta, nil
		}
		if sc.Type == "" {
			var legacy struct {
				Type string `json:"type"`
			}
			_ = json.Unmarshal(raw, &legacy)
			sc.Type = legacy.Type
		}
		if sc.Type != "" && sc.Type != "default" {
			scaling = &sc
		}
	}
	return theta, scaling
}
