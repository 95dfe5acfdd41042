// Package inspect describes a checkpoint: architecture, shapes, dtypes,
// parameter count, files and SSMax state, as a Report that renders as text
// or JSON.
package inspect

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/checkpoint"
)

// Report is what ssmax inspect prints.
type Report struct {
	Path          string            `json:"path"`
	Family        arch.Family       `json:"family"`
	Architectures []string          `json:"architectures,omitempty"`
	Layers        int               `json:"layers"`
	Heads         int               `json:"heads"`
	KVHeads       int               `json:"kv_heads"`
	HeadDim       int               `json:"head_dim"`
	Hidden        int               `json:"hidden"`
	Intermediate  int               `json:"intermediate"`
	Vocab         int               `json:"vocab"`
	Context       int               `json:"context"`
	Position      arch.PositionKind `json:"position"`
	RoPETheta     float64           `json:"rope_theta,omitempty"`
	RoPEScaling   *arch.RoPEScaling `json:"rope_scaling,omitempty"`
	// RotaryDim is the number of rotated dimensions per head (less than
	// head_dim with partial rotary embeddings).
	RotaryDim int `json:"rotary_dim,omitempty"`
	// LocalRoPETheta is the RoPE base of sliding-window layers when they
	// have their own (Gemma 3).
	LocalRoPETheta float64 `json:"local_rope_theta,omitempty"`
	// Windows is each layer's sliding window (0: full attention); omitted
	// when no layer has one.
	Windows        []int              `json:"sliding_windows,omitempty"`
	AttnSoftcap    float64            `json:"attn_softcap,omitempty"`
	FinalSoftcap   float64            `json:"final_softcap,omitempty"`
	AttnScale      float64            `json:"attn_scale"`
	EmbedScale     float64            `json:"embed_scale,omitempty"`
	Norm           arch.NormKind      `json:"norm"`
	NormEps        float64            `json:"norm_eps"`
	NormPlacement  arch.NormPlacement `json:"norm_placement"`
	NormOffset     float64            `json:"norm_offset,omitempty"`
	QKNorm         arch.QKNormKind    `json:"qk_norm,omitempty"`
	QKV            arch.QKVLayout     `json:"qkv_layout"`
	Residual       string             `json:"residual"`
	Activation     string             `json:"activation"`
	GatedMLP       bool               `json:"gated_mlp"`
	TiedEmbeddings bool               `json:"tied_embeddings"`
	ConfigDType    string             `json:"config_dtype,omitempty"`
	// DTypes counts tensors per stored dtype.
	DTypes map[string]int `json:"dtypes"`
	// Params counts model weights (no buffers, no SSMax parameters).
	Params         int64        `json:"params"`
	Tensors        int          `json:"tensors"`
	BytesOnDisk    int64        `json:"bytes_on_disk"`
	Shards         []string     `json:"shards"`
	TokenizerFiles []string     `json:"tokenizer_files"`
	SSMax          *SSMaxReport `json:"ssmax"`
	// Unexpected lists tensors the architecture does not name (kept by convert).
	Unexpected []string     `json:"unexpected_tensors,omitempty"`
	TensorList []TensorInfo `json:"tensor_list,omitempty"`
}

// SSMaxReport is the SSMax state of a converted checkpoint.
type SSMaxReport struct {
	arch.SSMaxConfig
	PerLayer []LayerSSMax `json:"per_layer"`
}

// LayerSSMax summarises one layer's SSMax parameters.
type LayerSSMax struct {
	Layer int    `json:"layer"`
	S     *Stats `json:"s,omitempty"`
	B     *Stats `json:"b,omitempty"`
}

// Stats are min, mean and max of a parameter vector.
type Stats struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	Max  float64 `json:"max"`
}

// TensorInfo is one tensor as stored.
type TensorInfo struct {
	Name  string  `json:"name"`
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
	Shard string  `json:"shard"`
	// Offset is the absolute byte offset of the data in its shard.
	Offset int64 `json:"offset"`
	Bytes  int64 `json:"bytes"`
}

// Options select what Run includes.
type Options struct {
	// ConfigPath is the config.json for a single .safetensors file.
	ConfigPath string
	// Tensors lists every tensor.
	Tensors bool
}

// Run opens the checkpoint at path and describes it.
func Run(path string, opts Options) (*Report, error) {
	c, err := checkpoint.Open(path, checkpoint.Options{ConfigPath: opts.ConfigPath})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	spec, err := arch.Load(c)
	if err != nil {
		return nil, err
	}
	return Describe(c, spec, opts)
}

// Describe builds the report of an opened checkpoint and its spec.
func Describe(c *checkpoint.Checkpoint, spec *arch.Spec, opts Options) (*Report, error) {
	r := &Report{
		Path: c.Path, Family: spec.Family, Layers: spec.Layers, Heads: spec.Heads, KVHeads: spec.KVHeads,
		HeadDim: spec.HeadDim, Hidden: spec.Hidden, Intermediate: spec.Intermediate, Vocab: spec.Vocab,
		Context: spec.Context, Position: spec.Position,
		AttnSoftcap: spec.AttnSoftcap, FinalSoftcap: spec.FinalSoftcap, AttnScale: spec.AttnScale, EmbedScale: spec.EmbedScale,
		Norm: spec.Norm, NormEps: spec.NormEps, NormPlacement: spec.NormPlacement, NormOffset: spec.NormOffset,
		QKNorm: spec.QKNorm, QKV: spec.QKV, Residual: "sequential",
		Activation: spec.Activation, GatedMLP: spec.GatedMLP, TiedEmbeddings: spec.TiedEmbeddings,
		ConfigDType: spec.DType, DTypes: map[string]int{}, Params: spec.ParamCount(c),
		BytesOnDisk: c.BytesOnDisk(), TokenizerFiles: append([]string{}, c.Auxiliary...),
		Unexpected: spec.Unexpected(c),
	}
	if _, err := c.Config.Decode("architectures", &r.Architectures); err != nil {
		return nil, fmt.Errorf("%s: %w", c.ConfigPath, err)
	}
	if spec.Position == arch.RoPEPositions {
		r.RoPETheta, r.RoPEScaling, r.RotaryDim = spec.RoPE.Theta, spec.RoPE.Scaling, spec.RoPE.Dim
		if spec.LocalRoPE != nil {
			r.LocalRoPETheta = spec.LocalRoPE.Theta
		}
	}
	if spec.ParallelResidual {
		r.Residual = "parallel"
	}
	for _, w := range spec.Windows {
		if w > 0 {
			r.Windows = append([]int(nil), spec.Windows...)
			break
		}
	}
	for _, f := range c.Shards {
		r.Shards = append(r.Shards, filepath.Base(f.Path()))
	}
	for _, name := range c.TensorNames() {
		t, _ := c.Tensor(name)
		r.DTypes[string(t.DType)]++
		r.Tensors++
		if opts.Tensors {
			r.TensorList = append(r.TensorList, TensorInfo{
				Name: name, DType: string(t.DType), Shape: t.Shape, Shard: filepath.Base(t.File.Path()),
				Offset: t.File.DataOffset() + t.Offset, Bytes: t.Size,
			})
		}
	}
	if spec.SSMax != nil {
		sr := &SSMaxReport{SSMaxConfig: *spec.SSMax}
		layers := append([]int(nil), spec.SSMax.Layers...)
		sort.Ints(layers)
		for _, l := range layers {
			ls := LayerSSMax{Layer: l}
			var err error
			if spec.SSMax.Variant.HasS() {
				if ls.S, err = stats(c, spec.SSMaxS(l)); err != nil {
					return nil, err
				}
			}
			if spec.SSMax.Variant.HasB() {
				if ls.B, err = stats(c, spec.SSMaxB(l)); err != nil {
					return nil, err
				}
			}
			sr.PerLayer = append(sr.PerLayer, ls)
		}
		r.SSMax = sr
	}
	return r, nil
}

func stats(c *checkpoint.Checkpoint, name string) (*Stats, error) {
	v, err := c.Float32s(name)
	if err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, fmt.Errorf("%s: tensor %q is empty", c.Path, name)
	}
	st := &Stats{Min: math.Inf(1), Max: math.Inf(-1)}
	for _, x := range v {
		f := float64(x)
		st.Min = math.Min(st.Min, f)
		st.Max = math.Max(st.Max, f)
		st.Mean += f
	}
	st.Mean /= float64(len(v))
	return st, nil
}
