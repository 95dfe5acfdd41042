package finetune

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/optimizers/adam"
	"github.com/ssmax/ssmax/kernels"
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

// optimizer is AdamW over parameter groups. Each group keeps a spago Adam
// instance for its configuration, time step and step size α; the update
// itself is fusedAdam, spago's Adam(W) update fused into one parallel,
// allocation-free pass (same float32 operations in the same order, so the
// same bits), with moments in spago's adam.State.
type optimizer struct {
	cfg    *Config
	groups []*group
	// factor is the gradient scale chosen by scaleAndClip (1/accum, times
	// the clipping factor), applied by step as it reads each gradient.
	factor float32
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
	case p.Role.IsSSMax():
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
// The scaling itself is applied by step, fused with the update.
//
// The squared norm is summed over fixed chunks of normChunk values of each
// parameter (in parallel), then over chunks and parameters in order, so it
// is the same whatever the number of cores.
func (o *optimizer) scaleAndClip(accum int, clip float64) float64 {
	type chunk struct {
		g  []float32
		sq float64
	}
	var chunks []chunk
	for _, p := range o.params() {
		if !p.HasGrad() {
			continue
		}
		g := gradOf(p)
		for lo := 0; lo < len(g); lo += normChunk {
			chunks = append(chunks, chunk{g: g[lo:min(lo+normChunk, len(g))]})
		}
	}
	parallelChunks(len(chunks), func(i int) {
		var sq float64
		for _, v := range chunks[i].g {
			sq += float64(v) * float64(v)
		}
		chunks[i].sq = sq
	})
	var sq float64
	for _, c := range chunks {
		sq += c.sq
	}
	norm := math.Sqrt(sq) / float64(accum)
	factor := 1 / float64(accum)
	if clip > 0 && norm > clip {
		factor *= clip / norm
	}
	o.factor = float32(factor)
	return norm
}

// normChunk is the number of gradient values per work item of
// scaleAndClip and step.
const normChunk = 1 << 15

// parallelChunks runs fn(0..n-1) on GOMAXPROCS goroutines.
func parallelChunks(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

func gradOf(p *model.Param) []float32 { return p.Grad().(*mat.Dense[float32]).Data().F32() }

// step applies one AdamW update at learning rate lr to every parameter
// with a gradient (scaled as scaleAndClip chose) and clears the gradients.
func (o *optimizer) step(lr float64) error {
	factor := o.factor
	if factor == 0 {
		factor = 1 // scaleAndClip was not called
	}
	o.factor = 0
	type chunk struct {
		g      *group
		p      *model.Param
		lo, hi int
	}
	var chunks []chunk
	var stepped []*model.Param
	for _, g := range o.groups {
		if g.adam == nil {
			continue
		}
		g.adam.StepSize = lr * g.lrScale
		g.adam.IncExample()
		for _, p := range g.params {
			if !p.HasGrad() {
				continue
			}
			if _, err := adamState(p); err != nil {
				return fmt.Errorf("optimizer: %s: %w", p.Name, err)
			}
			n := len(p.Values())
			for lo := 0; lo < n; lo += normChunk {
				chunks = append(chunks, chunk{g: g, p: p, lo: lo, hi: min(lo+normChunk, n)})
			}
			stepped = append(stepped, p)
		}
	}
	nonFinite := make([]bool, len(chunks))
	parallelChunks(len(chunks), func(i int) {
		c := chunks[i]
		st := c.p.State.(*adam.State)
		nonFinite[i] = !fusedAdam(c.g.adam, c.p.Values()[c.lo:c.hi], gradOf(c.p)[c.lo:c.hi],
			st.V.Data().F32()[c.lo:c.hi], st.M.Data().F32()[c.lo:c.hi], factor)
	})
	for _, p := range stepped {
		kernels.ReleaseGrad(p)
	}
	for i, bad := range nonFinite {
		if bad {
			return fmt.Errorf("the update made %s non-finite (learning rate %g)", chunks[i].p.Name, chunks[i].g.adam.StepSize)
		}
	}
	return nil
}

// adamState returns p's moments, creating zero ones on the first update.
// The buffers spago's Adam uses as scratch (Buf1..Buf3) are left nil:
// fusedAdam needs none, and they would triple the optimizer's memory.
func adamState(p *model.Param) (*adam.State, error) {
	if p.State == nil {
		shape := p.Value().Shape()
		p.State = &adam.State{
			V: mat.NewDense[float32](mat.WithShape(shape...)),
			M: mat.NewDense[float32](mat.WithShape(shape...)),
		}
	}
	st, ok := p.State.(*adam.State)
	if !ok {
		return nil, fmt.Errorf("unsupported state type: %T, expected %T", p.State, &adam.State{})
	}
	return st, nil
}

// fusedAdam is spago's Adam(W) OptimizeParams for one run of values, with
// the gradient scaled by factor first (as scaleAndClip's in-place scaling
// did). kernels.AdamW.Step performs spago's float32 operations in the same
// order, each rounded, with the constants rounded to float32 as spago's
// matfuncs do, so the result is bit for bit spago's (AVX2 eight values at a
// time). It reports whether every updated weight is finite.
func fusedAdam(a *adam.Adam, w, g, v, m []float32, factor float32) (finite bool) {
	k := kernels.AdamW{
		Factor: factor,
		Beta1:  float32(a.Beta1), OneMinusBeta1: float32(1.0 - a.Beta1),
		Beta2: float32(a.Beta2), OneMinusBeta2: float32(1.0 - a.Beta2),
		Eps: float32(a.Epsilon), Alpha: float32(a.Alpha), Lambda: float32(a.Lambda),
		Decay: a.Lambda != 0.0,
	}
	return k.Step(w, g, v, m)
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
			p.State = &adam.State{V: newM(m1), M: newM(m2)} // no scratch buffers: see adamState
		}
	}
	return nil
}
