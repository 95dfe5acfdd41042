package model

import (
	"fmt"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
)

// ConvertToSSMax switches every layer that still uses softmax to the SSMax
// variant of req, with s and b initialised as req asks (arch.ResolveInit),
// and records the initialisation for the config.json the model is saved
// with. It returns the layers it converted. The model is the one owner of
// its SSMax state: callers never edit Spec.SSMax.
func (m *Model) ConvertToSSMax(req arch.InitRequest) ([]int, error) {
	if req.Context == 0 {
		req.Context = m.Spec.Context
	}
	iv, err := arch.ResolveInit(req)
	if err != nil {
		return nil, err
	}
	var layers []int
	for l := 0; l < m.Spec.Layers; l++ {
		if m.attn[l].Variant != attnscale.Softmax {
			continue
		}
		var s, b []float32
		if req.Variant.HasS() {
			s = attnscale.PerHead(m.Spec.Heads, iv.S)
		}
		if req.Variant.HasB() {
			b = attnscale.PerHead(m.Spec.Heads, iv.B)
		}
		if err := m.SetAttention(l, req.Variant, s, b); err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	m.ssmaxOrigin = arch.NewSSMaxConfig(req, iv, layers)
	return layers, nil
}

// SSMaxConfig describes the model's attention now, as the "ssmax" object
// of config.json: nil when every layer uses softmax; otherwise the variant
// and converted layers, with the initialisation the parameters started
// from (or "trained" with the model's context when unknown). Layers must
// share one variant: a checkpoint records one.
func (m *Model) SSMaxConfig() (*arch.SSMaxConfig, error) {
	var layers []int
	variant := attnscale.Softmax
	for l, a := range m.attn {
		if a.Variant == attnscale.Softmax {
			continue
		}
		if len(layers) > 0 && a.Variant != variant {
			return nil, fmt.Errorf("layers %d and %d use different SSMax variants (%s, %s): a checkpoint records one", layers[0], l, variant, a.Variant)
		}
		variant = a.Variant
		layers = append(layers, l)
	}
	if len(layers) == 0 {
		return nil, nil
	}
	sc := arch.SSMaxConfig{Init: "trained", TrainLen: m.Spec.Context}
	if m.ssmaxOrigin != nil {
		sc = *m.ssmaxOrigin
	}
	sc.Variant = variant
	sc.Layers = layers
	sc.KeyCount = arch.KeyCountRule
	sc.Version = arch.SSMaxFormatVersion
	return &sc, nil
}
