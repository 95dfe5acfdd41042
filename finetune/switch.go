package finetune

import (
	"fmt"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/model"
)

// applySSMax switches every softmax layer to variant, initialised by init
// (with the run's --s/--b/--train-len).
func (t *trainer) applySSMax(variant, init string) error {
	if t.m == nil {
		return fmt.Errorf("no model")
	}
	v, err := attnscale.ParseSSMax(variant)
	if err != nil {
		return err
	}
	trainLen := t.cfg.TrainLen
	if trainLen == 0 {
		trainLen = t.cfg.SeqLen
	}
	_, err = t.m.ConvertToSSMax(arch.InitRequest{Variant: v, Init: init, TrainLen: trainLen, S: t.cfg.S, B: t.cfg.B})
	return err
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
