// Package testckpt builds small synthetic checkpoints for tests: a
// config.json and safetensors weights holding every tensor an arch.Spec
// names, filled with deterministic values.
package testckpt

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/safetensors"
)

// Options shape a synthetic checkpoint.
type Options struct {
	// DType of the weights (default F32).
	DType safetensors.DType
	// ShardSize splits the weights into shards of at most this many bytes (0: one file).
	ShardSize int64
	// Omit names tensors to leave out (for error tests).
	Omit map[string]bool
}

// Configs are small configs of each family, as config.json objects.
var Configs = map[arch.Family]map[string]any{
	arch.GPT2: {
		"model_type": "gpt2", "architectures": []string{"GPT2LMHeadModel"}, "vocab_size": 96, "n_positions": 64,
		"n_embd": 32, "n_layer": 2, "n_head": 4, "n_inner": nil, "activation_function": "gelu_new",
		"layer_norm_epsilon": 1e-5, "tie_word_embeddings": true, "torch_dtype": "float32",
	},
	arch.Llama: {
		"model_type": "llama", "architectures": []string{"LlamaForCausalLM"}, "vocab_size": 96, "hidden_size": 32,
		"intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
		"max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
		"tie_word_embeddings": false, "torch_dtype": "float32",
	},
	arch.Mistral: {
		"model_type": "mistral", "architectures": []string{"MistralForCausalLM"}, "vocab_size": 96, "hidden_size": 32,
		"intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1,
		"max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 1000000.0, "hidden_act": "silu",
		"sliding_window": 32, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
	},
	arch.Qwen2: {
		"model_type": "qwen2", "architectures": []string{"Qwen2ForCausalLM"}, "vocab_size": 96, "hidden_size": 32,
		"intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
		"max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "hidden_act": "silu",
		"tie_word_embeddings": true, "use_sliding_window": false, "sliding_window": 32, "torch_dtype": "bfloat16",
	},
	arch.Qwen3: {
		"model_type": "qwen3", "architectures": []string{"Qwen3ForCausalLM"}, "vocab_size": 96, "hidden_size": 32,
		"intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
		"head_dim": 16, "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
		"hidden_act": "silu", "tie_word_embeddings": true, "attention_bias": false, "torch_dtype": "bfloat16",
	},
}

// Write writes config as config.json into dir and weights for every tensor
// the detected spec names. It returns the spec.
func Write(dir string, config map[string]any, o Options) (*arch.Spec, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(config, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, checkpoint.ConfigFile), data, 0o644); err != nil {
		return nil, err
	}
	cfg, err := checkpoint.ParseConfig(data)
	if err != nil {
		return nil, err
	}
	spec, err := arch.Detect(cfg, []string{"transformer.wte.weight"})
	if err != nil {
		return nil, err
	}
	dt := o.DType
	if dt == "" {
		dt = safetensors.F32
	}
	var tensors []safetensors.WriteTensor
	for i, t := range spec.Tensors() {
		if o.Omit[t.Name] || (t.Optional && t.Role == arch.RoleHead) {
			continue
		}
		tdt := dt
		if t.Role.IsSSMax() {
			tdt = safetensors.F32
		}
		n := int64(1)
		for _, d := range t.Shape {
			n *= d
		}
		vals := make([]float32, n)
		for j := range vals {
			vals[j] = float32((j*7+i*13)%17-8) / 16
		}
		tensors = append(tensors, safetensors.FromFloat32(t.Name, tdt, t.Shape, vals))
	}
	meta := safetensors.Metadata{{Key: "format", Value: "pt"}}
	if o.ShardSize > 0 {
		if _, err := safetensors.WriteSharded(dir, meta, tensors, o.ShardSize); err != nil {
			return nil, err
		}
	} else if err := safetensors.WriteFile(filepath.Join(dir, safetensors.SingleFileName), meta, tensors); err != nil {
		return nil, err
	}
	return spec, nil
}

// Clone copies a config map so a test can change it.
func Clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// MustWrite is Write for tests: it fails the test on error.
func MustWrite(t interface {
	Helper()
	Fatalf(string, ...any)
}, dir string, config map[string]any, o Options) *arch.Spec {
	t.Helper()
	spec, err := Write(dir, config, o)
	if err != nil {
		t.Fatalf("write synthetic checkpoint %s: %v", dir, fmt.Sprint(err))
	}
	return spec
}
