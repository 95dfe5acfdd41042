package finetune

import (
	"fmt"
	"math"
	"sync"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/optimizers/adam"
	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/model"
	"github.com/ssmax/ssmax/safetensors"
)

// Parameter groups of the optimizer.
const (
	groupDecay   = "decay"    // matrices: AdamW weight decay
	groupNoDecay = "no_decay" // norms and biases
	groupSSMax   = "ssmax"    // s and b, own learning rate, no decay
)

// group is a set of parameters sharing one spago Adam(W) instance. The
// instance, and so its bias-correction time step, is created when the
// group gets its first parameter: SSMax parameters added mid-run start
// with zero moments and a fresh step count.
type group struct {
	name    string
	decay   float64
	lrScale float64
	adam    *adam.Adam
	params  []*model.Param
}

// optimizer is AdamW over parameter groups, using spago's Adam strategy.
type optimizer struct {
	cfg    *Config
	groups []*group
}

func newOptimizer(cfg *Config) *optimizer {
	ssmaxScale := 1.0
	if cfg.SSMaxLR > 0 {
		ssmaxScale = cfg.SSMaxLR / cfg.LR
	}
	return &optimizer{cfg: cfg, groups: []*group{
		{name: groupDecay, decay: cfg.WeightDecay, lrScale: 1},
		{name: groupNoDecay, lrScale: 1},
		{name: groupSSMax, lrScale: ssmaxScale},
	}}
}

// groupOf names the group a parameter belongs to.
func groupOf(p *model.Param) string {
	switch {
	case p.Role == arch.RoleSSMaxS || p.Role == arch.RoleSSMaxB:
		return groupSSMax
	case len(p.StoredShape) >= 2:
		return groupDecay
	}
	return groupNoDecay
}

// add registers trainable parameters (once each).
func (o *optimizer) add(ps ...*model.Param) {
	for _, p := range ps {
		for _, g := range o.groups {
			if g.name != groupOf(p) {
				continue
			}
			if g.adam == nil {
				g.adam = adam.New(adam.NewAdamWConfig(o.cfg.LR*g.lrScale, o.cfg.Beta1, o.cfg.Beta2, o.cfg.Eps, g.decay))
				g.adam.TimeStep = 0
			}
			g.params = append(g.params, p)
		}
	}
}

// params lists every trainable parameter.
func (o *optimizer) params() []*model.Param {
	var out []*model.Param
	for _, g := range o.groups {
		out = append(out, g.params...)
	}
	return out
}

// scaleAndClip divides the accumulated gradients by accum and clips their
// global norm to clip (0: no clipping). It returns the norm before clipping.
func (o *optimizer) scaleAndClip(accum int, clip float64) float64 {
	var sq float64
	ps := o.params()
	for _, p := range ps {
		if !p.HasGrad() {
			continue
		}
		for _, g := range gradOf(p) {
			sq += float64(g) * float64(g)
		}
	}
	norm := math.Sqrt(sq) / float64(accum)
	factor := 1 / float64(accum)
	if clip > 0 && norm > clip {
		factor *= clip / norm
	}
	if factor != 1 {
		f := float32(factor)
		for _, p := range ps {
			if p.HasGrad() {
				g := gradOf(p)
				for i := range g {
					g[i] *= f
				}
			}
		}
	}
	return norm
}

func gradOf(p *model.Param) []float32 { return p.Grad().(*mat.Dense[float32]).Data().F32() }

// step applies one AdamW update at learning rate lr and clears gradients.
func (o *optimizer) step(lr float64) error {
	for _, g := range o.groups {
		if g.adam == nil {
			continue
		}
		g.adam.StepSize = lr * g.lrScale
		g.adam.IncExample()
		var wg sync.WaitGroup
		errs := make([]error, len(g.params))
		sem := make(chan struct{}, 4)
		for i, p := range g.params {
			if !p.HasGrad() {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func(i int, p *model.Param) {
				defer wg.Done()
				defer func() { <-sem }()
				errs[i] = g.adam.OptimizeParams(p.Param)
			}(i, p)
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				return fmt.Errorf("optimizer: %s: %w", g.params[i].Name, err)
			}
		}
	}
	return nil
}

// stateTensors returns the moments of every parameter as F32 tensors named
// "m1.<tensor>" (first moment) and "m2.<tensor>" (second moment).
func (o *optimizer) stateTensors() []safetensors.WriteTensor {
	var out []safetensors.WriteTensor
	for _, g := range o.groups {
		for _, p := range g.params {
			st, ok := p.State.(*adam.State)
			if !ok {
				continue
			}
			shape := []int64{int64(len(p.Values()))}
			out = append(out,
				safetensors.FromFloat32("m1."+p.Name, safetensors.F32, shape, st.V.Data().F32()),
				safetensors.FromFloat32("m2."+p.Name, safetensors.F32, shape, st.M.Data().F32()))
		}
	}
	return out
}

// timeSteps returns each group's Adam time step.
func (o *optimizer) timeSteps() map[string]int {
	out := map[string]int{}
	for _, g := range o.groups {
		if g.adam != nil {
			out[g.name] = g.adam.TimeStep
		}
	}
	return out
}

// restore loads moments and time steps saved by stateTensors/timeSteps.
func (o *optimizer) restore(f *safetensors.File, steps map[string]int) error {
	for _, g := range o.groups {
		if g.adam != nil {
			g.adam.TimeStep = steps[g.name]
		}
		for _, p := range g.params {
			m1, err1 := f.Float32s("m1." + p.Name)
			m2, err2 := f.Float32s("m2." + p.Name)
			if err1 != nil || err2 != nil {
				continue // no moments yet: the parameter had no update
			}
			n := len(p.Values())
			if len(m1) != n || len(m2) != n {
				return fmt.Errorf("%s: moments of %s have %d/%d values, want %d", f.Path(), p.Name, len(m1), len(m2), n)
			}
			shape := p.Value().Shape()
			newM := func(v []float32) mat.Matrix {
				return mat.NewDense[float32](mat.WithShape(shape...), mat.WithBacking(v))
			}
			zero := func() mat.Matrix { return mat.NewDense[float32](mat.WithShape(shape...)) }
			p.State = &adam.State{V: newM(m1), M: newM(m2), Buf1: zero(), Buf2: zero(), Buf3: zero()}
		}
	}
	return nil
}
