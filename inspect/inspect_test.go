package inspect_test

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/inspect"
)

const fixtures = "../testdata/fixtures"

type manifest struct {
	Fixtures map[string]struct {
		Family        string         `json:"family"`
		DType         string         `json:"dtype"`
		Shards        int            `json:"shards"`
		AttentionMode string         `json:"attention_mode"`
		Params        int64          `json:"params"`
		Files         map[string]any `json:"files"`
	} `json:"fixtures"`
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

// TestFixturesAgainstManifest checks every fixture's report against the
// fixture's MANIFEST entry and config.json.
func TestFixturesAgainstManifest(t *testing.T) {
	var m manifest
	readJSON(t, filepath.Join(fixtures, "MANIFEST.json"), &m)
	if len(m.Fixtures) < 4 {
		t.Fatalf("manifest lists %d fixtures", len(m.Fixtures))
	}
	for name, want := range m.Fixtures {
		if !slices.Contains(arch.Families, arch.Family(want.Family)) {
			t.Errorf("%s: family %s is not supported", name, want.Family)
			continue
		}
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(fixtures, name)
			r, err := inspect.Run(dir, inspect.Options{Tensors: true})
			if err != nil {
				t.Fatal(err)
			}
			var cfg map[string]any
			readJSON(t, filepath.Join(dir, "config.json"), &cfg)
			num := func(keys ...string) int {
				for _, k := range keys {
					if v, ok := cfg[k].(float64); ok {
						return int(v)
					}
				}
				t.Fatalf("config has none of %v", keys)
				return 0
			}
			if string(r.Family) != want.Family {
				t.Errorf("family %s, manifest %s", r.Family, want.Family)
			}
			if r.Params != want.Params {
				t.Errorf("params %d, manifest %d", r.Params, want.Params)
			}
			if len(r.Shards) != want.Shards {
				t.Errorf("shards %v, manifest %d", r.Shards, want.Shards)
			}
			if want.DType == "float32" && (len(r.DTypes) != 1 || r.DTypes["F32"] != r.Tensors) {
				t.Errorf("dtypes %v, manifest all float32", r.DTypes)
			}
			if r.Layers != num("n_layer", "num_hidden_layers") || r.Heads != num("n_head", "num_attention_heads") ||
				r.Hidden != num("n_embd", "hidden_size") || r.Vocab != num("vocab_size") ||
				r.Context != num("n_positions", "max_position_embeddings") {
				t.Errorf("report %+v disagrees with config %v", r, cfg)
			}
			if want.Family == "llama" {
				theta := 10000.0
				if v, ok := cfg["rope_theta"].(float64); ok {
					theta = v
				} else if p, ok := cfg["rope_parameters"].(map[string]any); ok {
					theta = p["rope_theta"].(float64)
				}
				if r.KVHeads != num("num_key_value_heads") || r.Intermediate != num("intermediate_size") || r.RoPETheta != theta {
					t.Errorf("llama fields: kv %d inter %d theta %g (config %g)", r.KVHeads, r.Intermediate, r.RoPETheta, theta)
				}
			}
			var size int64
			for _, shard := range r.Shards {
				st, err := os.Stat(filepath.Join(dir, shard))
				if err != nil {
					t.Fatal(err)
				}
				size += st.Size()
			}
			if r.BytesOnDisk != size {
				t.Errorf("bytes on disk %d, files %d", r.BytesOnDisk, size)
			}
			if len(r.TensorList) != r.Tensors {
				t.Errorf("tensor list has %d of %d", len(r.TensorList), r.Tensors)
			}
			switch want.AttentionMode {
			case "softmax":
				if r.SSMax != nil {
					t.Errorf("softmax fixture reported SSMax %+v", r.SSMax)
				}
			default:
				// The manifest uses the golden mode names (ssmax-bias is the
				// variant bias).
				variant := strings.TrimPrefix(want.AttentionMode, "ssmax-")
				if r.SSMax == nil || string(r.SSMax.Variant) != variant || len(r.SSMax.PerLayer) != r.Layers {
					t.Fatalf("SSMax state %+v, manifest %s", r.SSMax, want.AttentionMode)
				}
				checkSSMaxStats(t, r)
			}
			var text bytes.Buffer
			if err := r.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"family", want.Family, "parameters", "attention"} {
				if !strings.Contains(text.String(), s) {
					t.Errorf("text report lacks %q:\n%s", s, text.String())
				}
			}
		})
	}
}

// checkSSMaxStats compares the per-layer statistics with the fixtures'
// documented values: s = 0.25 + 0.1*head + 0.05*layer + 0.02, and for bias
// b = 0.1*(head - (H-1)/2) + 0.05*layer - 0.03.
func checkSSMaxStats(t *testing.T, r *inspect.Report) {
	t.Helper()
	h := float64(r.Heads)
	for _, l := range r.SSMax.PerLayer {
		layer := float64(l.Layer)
		sMin := 0.25 + 0.05*layer + 0.02
		sMax := sMin + 0.1*(h-1)
		if l.S == nil || !near(l.S.Min, sMin) || !near(l.S.Max, sMax) || !near(l.S.Mean, (sMin+sMax)/2) {
			t.Errorf("layer %d s stats %+v, want min %g max %g", l.Layer, l.S, sMin, sMax)
		}
		if r.SSMax.Variant == attnscale.Bias {
			bMin := 0.1*(0-(h-1)/2) + 0.05*layer - 0.03
			bMax := 0.1*((h-1)-(h-1)/2) + 0.05*layer - 0.03
			if l.B == nil || !near(l.B.Min, bMin) || !near(l.B.Max, bMax) {
				t.Errorf("layer %d b stats %+v, want min %g max %g", l.Layer, l.B, bMin, bMax)
			}
		} else if l.B != nil {
			t.Errorf("variant %s reported b", r.SSMax.Variant)
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

// TestArchitectureFeatures: inspect shows RoPE scaling, per-layer windows,
// soft-caps and the block layout of the families that have them.
func TestArchitectureFeatures(t *testing.T) {
	tests := []struct {
		fixture string
		check   func(r *inspect.Report) bool
		text    []string
	}{
		{"gemma2-tiny", func(r *inspect.Report) bool {
			return r.AttnSoftcap > 0 && r.FinalSoftcap > 0 && len(r.Windows) == r.Layers && r.Windows[0] > 0 && r.Windows[1] == 0 &&
				r.NormPlacement == arch.SandwichNorm && r.NormOffset == 1 && r.EmbedScale > 0
		}, []string{"sliding windows", "soft-cap", "weights + 1", "embeddings x"}},
		{"gemma3-tiny", func(r *inspect.Report) bool { return r.LocalRoPETheta > 0 && r.QKNorm == arch.HeadQKNorm },
			[]string{"sliding-window layers theta", "q/k norm per head"}},
		{"llama3-tiny-ropescaled", func(r *inspect.Report) bool { return r.RoPEScaling != nil && r.RoPEScaling.Type == arch.RoPELlama3 },
			[]string{"scaling llama3 x"}},
		{"qwen2-tiny-yarn", func(r *inspect.Report) bool { return r.RoPEScaling != nil && r.RoPEScaling.Type == arch.RoPEYaRN },
			[]string{"scaling yarn x4 (original 16)"}},
		{"qwen2-tiny", func(r *inspect.Report) bool { return r.Windows == nil }, nil},
		{"pythia-tiny", func(r *inspect.Report) bool {
			return r.Residual == "parallel" && r.RotaryDim < r.HeadDim && r.QKV == arch.FusedQKVPerHead
		}, []string{"parallel residual", "dims rotated"}},
		{"olmo2-tiny", func(r *inspect.Report) bool {
			return r.NormPlacement == arch.PostNorm && r.QKNorm == arch.ProjectionQKNorm
		}, nil},
		{"phi3-tiny", func(r *inspect.Report) bool { return r.QKV == arch.FusedQKV && r.GatedMLP }, []string{"gated silu"}},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			r, err := inspect.Run(filepath.Join(fixtures, tc.fixture), inspect.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(r) {
				t.Errorf("report %+v", r)
			}
			var text bytes.Buffer
			if err := r.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.text {
				if !strings.Contains(text.String(), want) {
					t.Errorf("text lacks %q:\n%s", want, text.String())
				}
			}
		})
	}
}
