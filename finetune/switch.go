package finetune

import (
	"fmt"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/kernels"
	"github.com/ssmax/ssmax/model"
)

// applySSMax switches every softmax layer to variant, initialised by init
// (with the run's --s/--b/--train-len).
func (t *trainer) applySSMax(variant, init string) error {
	m := t.m
	if m == nil {
		return fmt.Errorf("no model")
	}
	v, err := arch.ParseVariant(variant)
	if err != nil {
		return err
	}
	trainLen := t.cfg.TrainLen
	if trainLen == 0 {
		trainLen = t.cfg.SeqLen
	}
	req := arch.InitRequest{Variant: v, Init: init, TrainLen: trainLen, Context: m.Spec.Context, S: t.cfg.S, B: t.cfg.B}
	iv, err := arch.ResolveInit(req)
	if err != nil {
		return err
	}
	mode, err := kernels.ParseMode(variant)
	if err != nil {
		return err
	}
	fill := func(x float64) []float32 {
		out := make([]float32, m.Spec.Heads)
		for i := range out {
			out[i] = float32(x)
		}
		return out
	}
	var layers []int
	for l := 0; l < m.Spec.Layers; l++ {
		if m.Attention(l).Mode != kernels.Softmax {
			continue
		}
		var s, b []float32
		if v.HasS() {
			s = fill(iv.S)
		}
		if v.HasB() {
			b = fill(iv.B)
		}
		if err := m.SetAttention(l, mode, s, b); err != nil {
			return err
		}
		layers = append(layers, l)
	}
	m.Spec.SSMax = arch.NewSSMaxConfig(req, iv, layers)
	return nil
}

// switchToSSMax converts the softmax layers and makes the new parameters
// trainable (zero moments, their own Adam step count).
func (t *trainer) switchToSSMax() error {
	before := map[*model.Param]bool{}
	for _, p := range t.m.Params() {
		before[p] = true
	}
	if err := t.applySSMax(t.cfg.Variant, t.cfg.Init); err != nil {
		return fmt.Errorf("switch to SSMax at step %d: %w", t.step, err)
	}
	var added []*model.Param
	for _, p := range t.m.Params() {
		if !before[p] {
			added = append(added, p)
		}
	}
	trainable, err := selectTrainable(added, &t.cfg)
	if err == nil {
		t.opt.add(trainable...)
	}
	t.switched = true
	t.log("step %d: switched to SSMax variant %s (init %s), %d new parameters", t.step, t.cfg.Variant, t.cfg.Init, len(added))
	return nil
}
