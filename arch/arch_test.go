package arch_test

import (
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/internal/testckpt"
)

const fixtures = "../testdata/fixtures"

func TestLoadFixtures(t *testing.T) {
	tests := []struct {
		name                                         string
		family                                       arch.Family
		layers, heads, kv, headDim, hidden, inter, v int
		ctx                                          int
		position                                     arch.PositionKind
		tied                                         bool
		prefix                                       string
		variant                                      attnscale.Variant
		ssmaxTensors                                 int
	}{
		{"gpt2-tiny", arch.GPT2, 2, 4, 4, 16, 64, 256, 256, 128, arch.LearnedPositions, true, "transformer.", "", 0},
		{"gpt2-tiny-ssmax", arch.GPT2, 2, 4, 4, 16, 64, 256, 256, 128, arch.LearnedPositions, true, "transformer.", attnscale.SSMax, 2},
		{"llama-tiny", arch.Llama, 2, 4, 2, 16, 64, 176, 256, 128, arch.RoPEPositions, false, "", "", 0},
		{"llama-tiny-ssmax-bias", arch.Llama, 2, 4, 2, 16, 64, 176, 256, 128, arch.RoPEPositions, false, "", attnscale.Bias, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := checkpoint.Open(filepath.Join(fixtures, tc.name), checkpoint.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, err := arch.Load(c)
			if err != nil {
				t.Fatal(err)
			}
			got := []int{s.Layers, s.Heads, s.KVHeads, s.HeadDim, s.Hidden, s.Intermediate, s.Vocab, s.Context}
			want := []int{tc.layers, tc.heads, tc.kv, tc.headDim, tc.hidden, tc.inter, tc.v, tc.ctx}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("shape %d: got %v, want %v", i, got, want)
					break
				}
			}
			if s.Family != tc.family || s.Position != tc.position || s.TiedEmbeddings != tc.tied || s.Prefix != tc.prefix {
				t.Errorf("got family %s position %s tied %v prefix %q", s.Family, s.Position, s.TiedEmbeddings, s.Prefix)
			}
			if tc.position == arch.RoPEPositions && s.RoPE.Theta != 10000 {
				t.Errorf("rope theta %g", s.RoPE.Theta)
			}
			if tc.variant == "" {
				if s.SSMax != nil {
					t.Errorf("unexpected SSMax state %+v", s.SSMax)
				}
			} else {
				if s.SSMax == nil || s.SSMax.Variant != tc.variant || len(s.SSMax.Layers) != 2 {
					t.Fatalf("SSMax state %+v, want variant %s on 2 layers", s.SSMax, tc.variant)
				}
			}
			n := 0
			for _, ts := range s.Tensors() {
				if ts.Role.IsSSMax() {
					n++
				}
			}
			if n != tc.ssmaxTensors {
				t.Errorf("%d SSMax tensors, want %d", n, tc.ssmaxTensors)
			}
			if u := s.Unexpected(c); len(u) != 0 {
				t.Errorf("unexpected tensors %v", u)
			}
		})
	}
}

func TestSyntheticFamilies(t *testing.T) {
	tests := []struct {
		family      arch.Family
		kv, headDim int
		qkvBias     bool
		qkNorm      bool
		tied        bool
		window      int
		theta       float64
	}{
		{arch.GPT2, 4, 8, true, false, true, 0, 0},
		{arch.Llama, 2, 8, false, false, false, 0, 10000},
		{arch.Mistral, 1, 8, false, false, false, 32, 1e6},
		{arch.Qwen2, 2, 8, true, false, true, 0, 1e6},
		{arch.Qwen3, 2, 16, false, true, true, 0, 1e6},
	}
	for _, tc := range tests {
		t.Run(string(tc.family), func(t *testing.T) {
			dir := t.TempDir()
			testckpt.MustWrite(t, dir, testckpt.Configs[tc.family], testckpt.Options{})
			c, err := checkpoint.Open(dir, checkpoint.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s, err := arch.Load(c)
			if err != nil {
				t.Fatal(err)
			}
			if s.Family != tc.family || s.KVHeads != tc.kv || s.HeadDim != tc.headDim || s.QKVBias != tc.qkvBias ||
				(s.QKNorm != arch.NoQKNorm) != tc.qkNorm || s.TiedEmbeddings != tc.tied || s.Window(0) != tc.window || s.RoPE.Theta != tc.theta {
				t.Errorf("spec %+v", s)
			}
			if tc.family == arch.Qwen2 && (s.OutBias || s.Name(arch.RoleQBias, 0) == "" || s.Name(arch.RoleOutBias, 0) != "") {
				t.Errorf("qwen2 wants q/k/v biases and no o_proj bias")
			}
			if tc.family == arch.Qwen3 && s.Name(arch.RoleQNorm, 1) != "model.layers.1.self_attn.q_norm.weight" {
				t.Errorf("qwen3 q_norm name %q", s.Name(arch.RoleQNorm, 1))
			}
		})
	}
}

func TestGPT2WithoutPrefixAndRoPE(t *testing.T) {
	cfg := testckpt.Clone(testckpt.Configs[arch.GPT2])
	cfg["position_embedding_type"] = "rope"
	cfg["rope_theta"] = 500.0
	c, err := checkpoint.ParseConfig(mustJSON(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	s, err := arch.Detect(c, []string{"wte.weight", "h.0.attn.c_attn.weight"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Prefix != "" || s.Position != arch.RoPEPositions || s.RoPE.Theta != 500 {
		t.Fatalf("prefix %q position %s theta %g", s.Prefix, s.Position, s.RoPE.Theta)
	}
	if s.Name(arch.RolePosEmbed, -1) != "" {
		t.Errorf("RoPE GPT-2 must have no wpe tensor")
	}
	if got := s.AttentionPrefix(1); got != "h.1.attn" {
		t.Errorf("attention prefix %q", got)
	}
}

func TestRoPEParameters(t *testing.T) {
	tests := []struct {
		name    string
		extra   map[string]any
		theta   float64
		scaling string
	}{
		{"top-level", map[string]any{"rope_theta": 5e5}, 5e5, ""},
		{"v5 rope_parameters", map[string]any{"rope_theta": nil, "rope_parameters": map[string]any{"rope_type": "default", "rope_theta": 1e6}}, 1e6, ""},
		{"llama3 scaling", map[string]any{"rope_theta": 5e5, "rope_scaling": map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}, 5e5, "llama3"},
		{"legacy type key", map[string]any{"rope_scaling": map[string]any{"type": "linear", "factor": 2.0}}, 10000, "linear"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testckpt.Clone(testckpt.Configs[arch.Llama])
			for k, v := range tc.extra {
				cfg[k] = v
			}
			c, err := checkpoint.ParseConfig(mustJSON(t, cfg))
			if err != nil {
				t.Fatal(err)
			}
			s, err := arch.Detect(c, nil)
			if err != nil {
				t.Fatal(err)
			}
			if s.RoPE.Theta != tc.theta {
				t.Errorf("theta %g, want %g", s.RoPE.Theta, tc.theta)
			}
			got := ""
			if s.RoPE.Scaling != nil {
				got = s.RoPE.Scaling.Type
			}
			if got != tc.scaling {
				t.Errorf("scaling %q, want %q", got, tc.scaling)
			}
		})
	}
}

func TestDetectErrors(t *testing.T) {
	tests := []struct {
		name    string
		family  arch.Family
		change  map[string]any
		drop    []string
		want    error
		message string
	}{
		{"unknown family", arch.Llama, map[string]any{"model_type": "bert"}, nil, arch.ErrUnsupported, `"bert" (supported: gpt2, llama, mistral, qwen2, qwen3, gpt_neox, olmo2, gemma2, gemma3_text, phi3)`},
		{"unknown architecture", arch.Llama, map[string]any{"architectures": []string{"T5ForConditionalGeneration"}}, []string{"model_type"}, arch.ErrUnsupported, "T5ForConditionalGeneration"},
		{"no family", arch.Llama, nil, []string{"model_type", "architectures"}, arch.ErrConfig, "neither model_type nor architectures"},
		{"no heads", arch.Llama, nil, []string{"num_attention_heads"}, arch.ErrConfig, "missing num_attention_heads / n_head"},
		{"gpt2 no heads", arch.GPT2, nil, []string{"n_head"}, arch.ErrConfig, "missing n_head / num_attention_heads"},
		{"zero layers", arch.Llama, map[string]any{"num_hidden_layers": 0}, nil, arch.ErrConfig, "number of layers must be positive"},
		{"kv not dividing", arch.Llama, map[string]any{"num_key_value_heads": 3}, nil, arch.ErrConfig, "not a multiple of 3"},
		{"string heads", arch.Llama, map[string]any{"num_attention_heads": "four"}, nil, arch.ErrConfig, "num_attention_heads"},
		{"fractional heads", arch.Llama, map[string]any{"num_attention_heads": 4.5}, nil, arch.ErrConfig, "not an integer"},
		{"bad ssmax variant", arch.Llama, map[string]any{"ssmax": map[string]any{"variant": "magic", "layers": []int{0}, "version": 1}}, nil, arch.ErrConfig, `unknown SSMax variant "magic"`},
		{"ssmax layer out of range", arch.Llama, map[string]any{"ssmax": map[string]any{"variant": "ssmax", "layers": []int{5}, "version": 1}}, nil, arch.ErrConfig, "layer 5 out of range"},
		{"unknown rope type", arch.Llama, map[string]any{"rope_scaling": map[string]any{"rope_type": "ntk-by-parts", "factor": 2.0}}, nil, arch.ErrUnsupported, `rope scaling type "ntk-by-parts"`},
		{"type and rope_type disagree", arch.Llama, map[string]any{"rope_scaling": map[string]any{"type": "linear", "rope_type": "dynamic", "factor": 2.0}}, nil, arch.ErrConfig, `type "linear" and rope_type "dynamic" disagree`},
		{"rope_parameters and rope_scaling disagree", arch.Llama, map[string]any{"rope_parameters": map[string]any{"rope_type": "linear", "factor": 2.0}, "rope_scaling": map[string]any{"rope_type": "dynamic", "factor": 2.0}}, nil, arch.ErrConfig, "disagree"},
		{"scaled and default disagree", arch.Llama, map[string]any{"rope_parameters": map[string]any{"rope_type": "default"}, "rope_scaling": map[string]any{"rope_type": "linear", "factor": 2.0}}, nil, arch.ErrConfig, "disagree"},
		{"factor below one", arch.Llama, map[string]any{"rope_scaling": map[string]any{"rope_type": "linear", "factor": 0.5}}, nil, arch.ErrConfig, "factor must be at least 1"},
		{"llama3 missing original", arch.Llama, map[string]any{"rope_scaling": map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}}, nil, arch.ErrConfig, "original_max_position_embeddings"},
		{"longrope factors of the wrong length", arch.Llama, map[string]any{"rope_scaling": map[string]any{"rope_type": "longrope", "short_factor": []float64{1}, "long_factor": []float64{1}}}, nil, arch.ErrConfig, "short_factor and long_factor of 4 values"},
		{"unknown layer type", arch.Qwen2, map[string]any{"use_sliding_window": true, "layer_types": []string{"full_attention", "chunked_attention"}}, nil, arch.ErrUnsupported, `layer type "chunked_attention"`},
		{"layer types of the wrong length", arch.Qwen2, map[string]any{"layer_types": []string{"full_attention"}}, nil, arch.ErrConfig, "layer_types has 1 entries for 2 layers"},
		{"ssmax future version", arch.Llama, map[string]any{"ssmax": map[string]any{"variant": "ssmax", "layers": []int{0}, "version": 9}}, nil, arch.ErrConfig, "format version 9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testckpt.Clone(testckpt.Configs[tc.family])
			for k, v := range tc.change {
				cfg[k] = v
			}
			for _, k := range tc.drop {
				delete(cfg, k)
			}
			c, err := checkpoint.ParseConfig(mustJSON(t, cfg))
			if err != nil {
				t.Fatal(err)
			}
			_, err = arch.Detect(c, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not say %q", err, tc.message)
			}
		})
	}
}

func TestCheckTensors(t *testing.T) {
	tests := []struct {
		name    string
		omit    string
		config  map[string]any
		message string
	}{
		{"missing q_proj", "model.layers.1.self_attn.q_proj.weight", nil, `"model.layers.1.self_attn.q_proj.weight": tensor mismatch: missing`},
		{"missing final norm", "model.norm.weight", nil, `"model.norm.weight": tensor mismatch: missing`},
		{"ssmax announced, tensor missing", "", map[string]any{"ssmax": map[string]any{"variant": "ssmax", "init": "match", "train_len": 64, "layers": []int{0, 1}, "version": 1}}, `"model.layers.0.self_attn.ssmax_s": tensor mismatch: missing`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testckpt.Clone(testckpt.Configs[arch.Llama])
			testckpt.MustWrite(t, dir, cfg, testckpt.Options{Omit: map[string]bool{tc.omit: true}})
			if tc.config != nil {
				for k, v := range tc.config {
					cfg[k] = v
				}
				writeJSON(t, filepath.Join(dir, "config.json"), cfg)
			}
			c, err := checkpoint.Open(dir, checkpoint.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = arch.Load(c)
			if !errors.Is(err, arch.ErrTensor) || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("error %v, want %s", err, tc.message)
			}
		})
	}
}

func TestMisshapenTensor(t *testing.T) {
	dir := t.TempDir()
	cfg := testckpt.Clone(testckpt.Configs[arch.Llama])
	testckpt.MustWrite(t, dir, cfg, testckpt.Options{})
	cfg["intermediate_size"] = 40 // the files hold 48
	writeJSON(t, filepath.Join(dir, "config.json"), cfg)
	c, err := checkpoint.Open(dir, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = arch.Load(c)
	if !errors.Is(err, arch.ErrTensor) || !strings.Contains(err.Error(), "shape [48 32], expected [40 32]") {
		t.Fatalf("error %v", err)
	}
}

func TestSSMaxTensorsWithoutConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := testckpt.Clone(testckpt.Configs[arch.Llama])
	cfg["ssmax"] = map[string]any{"variant": "bias", "init": "identity", "train_len": 64, "layers": []int{0, 1}, "version": 1}
	testckpt.MustWrite(t, dir, cfg, testckpt.Options{})
	delete(cfg, "ssmax")
	writeJSON(t, filepath.Join(dir, "config.json"), cfg)
	c, err := checkpoint.Open(dir, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = arch.Load(c)
	if !errors.Is(err, arch.ErrTensor) || !strings.Contains(err.Error(), `config.json has no "ssmax" object`) {
		t.Fatalf("error %v", err)
	}
}

// TestWindowsAndLocalRoPE: per-layer windows from each family's rules, and
// Gemma 3's local RoPE in both config layouts.
func TestWindowsAndLocalRoPE(t *testing.T) {
	tests := []struct {
		name   string
		family arch.Family
		change map[string]any
		want   []int
	}{
		{"mistral window on every layer", arch.Mistral, nil, []int{32, 32}},
		{"mistral null window", arch.Mistral, map[string]any{"sliding_window": nil}, []int{0, 0}},
		{"qwen2 window switched off stays off", arch.Qwen2, nil, []int{0, 0}},
		{"qwen2 window from max_window_layers", arch.Qwen2, map[string]any{"use_sliding_window": true, "max_window_layers": 1}, []int{0, 32}},
		{"qwen2 layer_types win", arch.Qwen2, map[string]any{"use_sliding_window": true, "max_window_layers": 1, "layer_types": []string{"sliding_attention", "full_attention"}}, []int{32, 0}},
		{"qwen2 layer_types with the window off", arch.Qwen2, map[string]any{"layer_types": []string{"sliding_attention", "full_attention"}}, []int{0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testckpt.Clone(testckpt.Configs[tc.family])
			for k, v := range tc.change {
				cfg[k] = v
			}
			c, err := checkpoint.ParseConfig(mustJSON(t, cfg))
			if err != nil {
				t.Fatal(err)
			}
			s, err := arch.Detect(c, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Windows, tc.want) {
				t.Errorf("windows %v, want %v", s.Windows, tc.want)
			}
		})
	}
	gemma3 := func(extra map[string]any) *arch.Spec {
		cfg := map[string]any{"model_type": "gemma3_text", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
			"num_hidden_layers": 6, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
			"max_position_embeddings": 64, "sliding_window": 8}
		for k, v := range extra {
			cfg[k] = v
		}
		c, err := checkpoint.ParseConfig(mustJSON(t, cfg))
		if err != nil {
			t.Fatal(err)
		}
		s, err := arch.Detect(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	v4 := gemma3(map[string]any{"rope_theta": 1e6, "rope_local_base_freq": 1e4, "rope_scaling": map[string]any{"rope_type": "linear", "factor": 8.0}})
	v5 := gemma3(map[string]any{"rope_parameters": map[string]any{
		"full_attention":    map[string]any{"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
		"sliding_attention": map[string]any{"rope_type": "default", "rope_theta": 1e4}}})
	for name, s := range map[string]*arch.Spec{"v4": v4, "v5": v5} {
		if !slices.Equal(s.Windows, []int{8, 8, 8, 8, 8, 0}) {
			t.Errorf("%s: windows %v", name, s.Windows)
		}
		local, global := s.LayerRoPE(0), s.LayerRoPE(5)
		if local.Theta != 1e4 || local.Scaling != nil || global.Theta != 1e6 || global.Scaling == nil || global.Scaling.Factor != 8 {
			t.Errorf("%s: local %+v, global %+v", name, local, global)
		}
		if s.AttnSoftcap != 0 {
			t.Errorf("%s: gemma3 attention is not soft-capped, got %g", name, s.AttnSoftcap)
		}
	}
}

// TestRoPEFrequencies checks each scaling type against values worked out
// by hand from transformers' modeling_rope_utils formulas.
func TestRoPEFrequencies(t *testing.T) {
	plain := func(theta float64, dim, i int) float64 { return math.Pow(theta, -float64(2*i)/float64(dim)) }
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }
	t.Run("linear", func(t *testing.T) {
		r := arch.RoPE{Theta: 100, Dim: 8, Scaling: &arch.RoPEScaling{Type: "linear", Factor: 4}}
		f, a := r.Frequencies(10)
		for i := range f {
			if !near(f[i], plain(100, 8, i)/4) || a != 1 {
				t.Errorf("inv_freq[%d] = %g, factor %g", i, f[i], a)
			}
		}
	})
	t.Run("dynamic", func(t *testing.T) {
		r := arch.RoPE{Theta: 100, Dim: 8, MaxPositions: 32, Scaling: &arch.RoPEScaling{Type: "dynamic", Factor: 2}}
		f, _ := r.Frequencies(32)
		if !near(f[1], plain(100, 8, 1)) {
			t.Errorf("at the context: %g, want plain %g", f[1], plain(100, 8, 1))
		}
		f, _ = r.Frequencies(40)
		base := 100 * math.Pow(2*40.0/32-1, 8.0/6)
		if !near(f[1], plain(base, 8, 1)) {
			t.Errorf("beyond the context: %g, want %g", f[1], plain(base, 8, 1))
		}
	})
	t.Run("llama3", func(t *testing.T) {
		// wavelen 2π·θ^(2i/d): with θ 10000, d 8 the wavelengths are 6.3,
		// 62.8, 628 and 6283; original 100, low 1 (band above 100), high 4
		// (band below 25).
		r := arch.RoPE{Theta: 10000, Dim: 8, Scaling: &arch.RoPEScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 100}}
		f, _ := r.Frequencies(1)
		smooth := (100/(2*math.Pi/plain(10000, 8, 1)) - 1) / 3
		want := []float64{plain(10000, 8, 0), (1-smooth)*plain(10000, 8, 1)/8 + smooth*plain(10000, 8, 1), plain(10000, 8, 2) / 8, plain(10000, 8, 3) / 8}
		for i := range want {
			if !near(f[i], want[i]) {
				t.Errorf("inv_freq[%d] = %g, want %g", i, f[i], want[i])
			}
		}
	})
	t.Run("yarn", func(t *testing.T) {
		r := arch.RoPE{Theta: 1000, Dim: 16, MaxPositions: 64, Scaling: &arch.RoPEScaling{Type: "yarn", Factor: 4, OriginalMaxPositions: 16}}
		f, a := r.Frequencies(1)
		if !near(a, 0.1*math.Log(4)+1) {
			t.Errorf("attention factor %g", a)
		}
		corr := func(rot float64) float64 { return 16 * math.Log(16/(rot*2*math.Pi)) / (2 * math.Log(1000)) }
		low, high := math.Max(math.Floor(corr(32)), 0), math.Min(math.Ceil(corr(1)), 15)
		for i := range f {
			ramp := math.Min(math.Max((float64(i)-low)/(high-low), 0), 1)
			want := plain(1000, 16, i) * ((1 - ramp) + ramp/4)
			if !near(f[i], want) {
				t.Errorf("inv_freq[%d] = %g, want %g", i, f[i], want)
			}
		}
	})
	t.Run("longrope", func(t *testing.T) {
		sc := &arch.RoPEScaling{Type: "longrope", ShortFactor: []float64{1, 2}, LongFactor: []float64{3, 4}, OriginalMaxPositions: 16}
		r := arch.RoPE{Theta: 100, Dim: 4, MaxPositions: 64, Scaling: sc}
		short, a := r.Frequencies(16)
		long, _ := r.Frequencies(17)
		if !near(short[1], plain(100, 4, 1)/2) || !near(long[1], plain(100, 4, 1)/4) {
			t.Errorf("short %v long %v", short, long)
		}
		if want := math.Sqrt(1 + math.Log(4)/math.Log(16)); !near(a, want) {
			t.Errorf("attention factor %g, want %g", a, want)
		}
	})
}
