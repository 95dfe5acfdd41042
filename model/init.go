package model

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/safetensors"
)

// New builds a randomly initialised model for a config (pretraining from
// scratch), GPT-2 style: weights normal with standard deviation 0.02, the
// output projections of each block scaled by 1/sqrt(2*layers), norms 1,
// biases 0. The same seed gives the same weights. Weights are saved as F32.
func New(cfg *checkpoint.Config, seed uint64) (*Model, error) {
	spec, err := arch.Detect(cfg, nil)
	if err != nil {
		return nil, err
	}
	if spec.SSMax != nil {
		return nil, fmt.Errorf("a new model starts without SSMax state; choose its attention after creation")
	}
	act, err := activationOf(spec)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	rng := rand.New(rand.NewPCG(seed, 0x5353_4d41_58))
	m := &Model{Spec: spec, Config: cfg.Clone(), byRole: map[roleKey]*Param{}, RoPETheta: spec.RoPETheta, activation: act}
	residualStd := 0.02 / math.Sqrt(2*float64(spec.Layers))
	var names []string
	for _, ts := range spec.Tensors() {
		if ts.Optional && ts.Role == arch.RoleHead && spec.TiedEmbeddings {
			continue
		}
		n := int64(1)
		for _, d := range ts.Shape {
			n *= d
		}
		vals := make([]float32, n)
		switch ts.Role {
		case arch.RoleAttnNorm, arch.RoleMLPNorm, arch.RoleFinalNorm, arch.RoleQNorm, arch.RoleKNorm:
			for i := range vals {
				vals[i] = 1
			}
		case arch.RoleAttnNormBias, arch.RoleMLPNormBias, arch.RoleFinalNormBias,
			arch.RoleQKVBias, arch.RoleQBias, arch.RoleKBias, arch.RoleVBias, arch.RoleOutBias,
			arch.RoleUpBias, arch.RoleGateBias, arch.RoleDownBias:
		default:
			std := 0.02
			if ts.Role == arch.RoleOut || ts.Role == arch.RoleDown {
				std = residualStd
			}
			for i := range vals {
				vals[i] = float32(rng.NormFloat64() * std)
			}
		}
		m.add(newParam(ts, vals))
		names = append(names, ts.Name)
	}
	m.initAttention()
	m.layout = layout{
		shards: []shardLayout{{name: checkpoint.SingleFile, meta: safetensors.Metadata{{Key: "format", Value: "pt"}}, names: names}},
		extras: map[string]extraTensor{},
	}
	return m, nil
}
