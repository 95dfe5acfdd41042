// Package model builds decoder-only transformer language models (GPT-2 and
// the Llama family) from an arch.Spec and a checkpoint, with every weight a
// spago parameter, computes their forward pass with the operations of
// package kernels (so spago's autograd gives gradients), decodes with a KV
// cache, and saves weights back in the checkpoint's own names, layouts and
// dtypes.
package model

import (
	"fmt"
	"strings"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/kernels"
	"github.com/ssmax/ssmax/safetensors"
)

// Param is one weight: a spago parameter with the checkpoint tensor it
// comes from.
type Param struct {
	*nn.Param
	// Name is the tensor name in the checkpoint.
	Name  string
	Role  arch.Role
	Layer int
	// StoredShape is the stored shape (the parameter is [rows, cols]; vectors are [1, n]).
	StoredShape []int64
	// DType is the dtype the tensor is saved in.
	DType safetensors.DType
	// rowOrder, when set, gives for each row (leading-axis entry) of the
	// parameter the stored row it was read from.
	rowOrder []int
}

// Values returns the parameter's float32 values (no copy), in memory
// layout (see StoredValues). For a weight held in its stored dtype (see
// Stored) it returns a decoded copy: writing to it changes nothing.
func (p *Param) Values() []float32 {
	if w := p.stored(); w != nil {
		return w.Float32s()
	}
	return p.Value().(*mat.Dense[float32]).Data().F32()
}

// Stored reports whether the weight is held in its stored 16-bit dtype
// (BF16 or F16) rather than as float32: a frozen weight of a loaded
// checkpoint. Such a weight takes half the memory; the matrix products
// convert it to float32 as they read it.
func (p *Param) Stored() bool { return p.stored() != nil }

// stored returns the weight held in its stored dtype, or nil.
func (p *Param) stored() *kernels.Weight {
	if p.Param == nil {
		return nil
	}
	w, _ := p.Matrix.(*kernels.Weight)
	return w
}

// SetRequiresGrad sets whether the parameter requires a gradient. Turning
// it on for a weight held in its stored dtype first replaces it by its
// float32 values (the master copy that trains); turning it off keeps the
// float32 values.
func (p *Param) SetRequiresGrad(on bool) {
	if w := p.stored(); w != nil {
		if !on {
			return
		}
		s := w.Shape()
		p.ReplaceValue(mat.NewDense[float32](mat.WithShape(s[0], s[1]), mat.WithBacking(w.Float32s())))
	}
	p.Param.SetRequiresGrad(on)
}

// Len is the number of values.
func (p *Param) Len() int { return p.Size() }

// StoredValues returns vals (the parameter's values, or its gradient) in
// the checkpoint's layout: the same slice unless the family stores the
// tensor in another row order than the engine computes with (GPT-NeoX's
// per-head query_key_value, reordered to [q | k | v] at load).
func (p *Param) StoredValues(vals []float32) []float32 {
	if p.rowOrder == nil {
		return vals
	}
	out := make([]float32, len(vals))
	unit := len(vals) / len(p.rowOrder)
	for r, from := range p.rowOrder {
		copy(out[from*unit:(from+1)*unit], vals[r*unit:(r+1)*unit])
	}
	return out
}

// Attention is how one layer scales its attention logits.
type Attention struct {
	Variant attnscale.Variant
	// S and B are the per-head SSMax parameters (nil when the mode has none).
	S, B *Param
}

// values are s and b per head as the attention kernels take them (nil
// where the mode has none).
func (a *Attention) values() (s, b []float32) {
	if a.S != nil {
		s = a.S.Values()
	}
	if a.B != nil {
		b = a.B.Values()
	}
	return s, b
}

// Model is a decoder language model.
type Model struct {
	Spec *arch.Spec
	// Config is the checkpoint's config.json; Save writes it back with the
	// SSMax object describing the model's current attention.
	Config *checkpoint.Config
	// act is the MLP activation the config names.
	act kernels.Activation
	// rope caches the rotary frequencies (see rope.go).
	rope ropeTables

	params []*Param
	byRole map[roleKey]*Param
	attn   []Attention
	layout layout
	// checkpointing: recompute each block in the backward pass (see
	// checkpointing.go).
	checkpointing bool
	// ssmaxOrigin records how the model's SSMax parameters were
	// initialised (init strategy, L, initial s and b), for config.json;
	// nil while no layer was ever converted.
	ssmaxOrigin *arch.SSMaxConfig
}

type roleKey struct {
	role  arch.Role
	layer int
}

// Options tune Load.
type Options struct {
	// RoPEThetaScale multiplies rope_theta, to evaluate beyond the training
	// length (the paper used 50). 0 means 1.
	RoPEThetaScale float64
	// Inference loads the weights without gradients: forward passes build
	// no autograd graph and keep only the activations they still need
	// (scoring and evaluation at long contexts).
	Inference bool
}

// Load builds the model of an opened checkpoint: every weight the spec
// names and the SSMax parameters of converted layers.
//
// Matrices stored in BF16 or F16 stay in that dtype (2 bytes a value,
// read from the file into memory the model owns: the checkpoint may be
// closed afterwards) and start frozen; the kernels convert them to float32
// as they read them, so the results are those of the decoded float32
// weights. Param.SetRequiresGrad(true) (or Model.SetRequiresGrad) turns such
// a weight into a float32 copy that trains. Every other weight (F32
// tensors, and vectors in any dtype) is decoded to float32 and requires a
// gradient, unless opts.Inference is set.
func Load(c *checkpoint.Checkpoint, spec *arch.Spec, opts Options) (*Model, error) {
	m, _, err := load(c, spec, opts, false)
	return m, err
}

// load is Load; with own set, stored weights may view c's mapped files
// (zero-copy) and c then belongs to the model (viewed reports it: the
// caller must not close it).
func load(c *checkpoint.Checkpoint, spec *arch.Spec, opts Options, own bool) (m *Model, viewed bool, err error) {
	m, err = newModel(spec, c.Config, opts)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", c.ConfigPath, err)
	}
	var tensors []loadTensor
	for _, ts := range spec.Tensors() {
		t, ok := c.Tensor(ts.Name)
		if !ok {
			if ts.Optional {
				continue
			}
			return nil, false, fmt.Errorf("%s: tensor %q missing", c.Path, ts.Name)
		}
		tensors = append(tensors, loadTensor{t: t, ts: ts, reordered: m.reordered(ts.Role)})
	}
	ps, viewed, err := loadParams(c, tensors, opts, own)
	if err != nil {
		return nil, false, err
	}
	for _, p := range ps {
		m.reorder(p)
		m.add(p)
	}
	m.initAttention()
	if m.layout, err = layoutOf(c, spec); err != nil {
		return nil, false, err
	}
	if opts.Inference {
		m.SetRequiresGrad(false)
	}
	return m, viewed, nil
}

// newModel is an empty model of spec: no weights yet.
func newModel(spec *arch.Spec, cfg *checkpoint.Config, opts Options) (*Model, error) {
	act, ok := kernels.ActivationNamed(spec.Activation)
	if !ok {
		return nil, fmt.Errorf("%w activation %q (supported: %s)", arch.ErrUnsupported, spec.Activation, strings.Join(kernels.ActivationNames(), ", "))
	}
	m := &Model{Spec: spec, Config: cfg.Clone(), byRole: map[roleKey]*Param{}, act: act}
	m.rope.scale = opts.RoPEThetaScale
	return m, nil
}

// reorder puts a parameter stored in another row order than the engine
// computes with into the engine's order: GPT-NeoX's query_key_value rows
// (and bias) are stored head by head [q_h | k_h | v_h] and become
// [q | k | v]. Save writes them back in the stored order.
func (m *Model) reorder(p *Param) {
	s := m.Spec
	if !m.reordered(p.Role) {
		return
	}
	H, hd := s.Heads, s.HeadDim
	p.rowOrder = make([]int, 3*H*hd)
	for part := 0; part < 3; part++ {
		for h := 0; h < H; h++ {
			for i := 0; i < hd; i++ {
				p.rowOrder[part*H*hd+h*hd+i] = h*3*hd + part*hd + i
			}
		}
	}
	if w := p.stored(); w != nil {
		// Read into the model's own memory, never a view of the file
		// (see loadParams).
		if raw := w.Raw16(); raw != nil {
			permuteRows(raw, p.rowOrder)
		} else {
			permuteRows(w.RawF32(), p.rowOrder)
		}
		return
	}
	vals := p.Values()
	stored := append([]float32(nil), vals...)
	unit := len(vals) / len(p.rowOrder)
	for r, from := range p.rowOrder {
		copy(vals[r*unit:(r+1)*unit], stored[from*unit:(from+1)*unit])
	}
}

// reordered reports whether parameters of role are stored in another row
// order than the engine computes with (see reorder).
func (m *Model) reordered(r arch.Role) bool {
	return m.Spec.QKV == arch.FusedQKVPerHead && (r == arch.RoleQKV || r == arch.RoleQKVBias)
}

// permuteRows sets row r of x (len(order) rows) to its former row order[r].
func permuteRows[T any](x []T, order []int) {
	src := append([]T(nil), x...)
	unit := len(x) / len(order)
	for r, from := range order {
		copy(x[r*unit:(r+1)*unit], src[from*unit:(from+1)*unit])
	}
}

// newParam wraps values as a [rows, cols] parameter of the tensor ts.
func newParam(ts arch.TensorSpec, vals []float32) *Param {
	rows, cols := 1, 1
	switch len(ts.Shape) {
	case 1:
		cols = int(ts.Shape[0])
	case 2:
		rows, cols = int(ts.Shape[0]), int(ts.Shape[1])
	}
	d := mat.NewDense[float32](mat.WithShape(rows, cols), mat.WithBacking(vals))
	p := &nn.Param{Matrix: d}
	p.SetRequiresGrad(true)
	return &Param{Param: p, Name: ts.Name, Role: ts.Role, Layer: ts.Layer, StoredShape: ts.Shape, DType: safetensors.F32}
}

func (m *Model) add(p *Param) {
	m.params = append(m.params, p)
	m.byRole[roleKey{p.Role, p.Layer}] = p
}

// initAttention sets each layer's attention from the spec's SSMax state.
func (m *Model) initAttention() {
	m.attn = make([]Attention, m.Spec.Layers)
	if sc := m.Spec.SSMax; sc != nil {
		origin := *sc
		m.ssmaxOrigin = &origin
	}
	for l := range m.attn {
		a := Attention{Variant: attnscale.Softmax}
		if sc := m.Spec.SSMax; sc != nil && sc.Converts(l) {
			a.Variant = sc.Variant
			a.S = m.byRole[roleKey{arch.RoleSSMaxS, l}]
			a.B = m.byRole[roleKey{arch.RoleSSMaxB, l}]
		}
		m.attn[l] = a
	}
}

// SetRequiresGrad sets whether every weight requires a gradient (the
// default after Open, Load and New is true, except for the weights Load
// keeps in their stored 16-bit dtype, which start frozen; training then
// chooses its trainable set). Turning it on converts those to float32 (see
// Param.SetRequiresGrad). A model used only for inference — scoring,
// evaluation, generation — should turn it off: the kernels then build no
// autograd graph and keep no intermediate values, so the memory of a
// forward pass stays at a few activations whatever the sequence length.
func (m *Model) SetRequiresGrad(on bool) {
	for _, p := range m.params {
		p.SetRequiresGrad(on)
	}
}

// Params returns every parameter in the spec's canonical order.
func (m *Model) Params() []*Param { return append([]*Param(nil), m.params...) }

// Param returns the parameter of role in layer (-1 for global roles), or nil.
func (m *Model) Param(r arch.Role, layer int) *Param { return m.byRole[roleKey{r, layer}] }

// Attention returns layer l's attention setting.
func (m *Model) Attention(l int) Attention { return m.attn[l] }

// SetAttention switches layer l to mode with per-head s and b (nil when the
// mode does not use them). New SSMax parameters are created as needed and
// saved under the family's SSMax tensor names; parameters the mode does not
// use are dropped.
func (m *Model) SetAttention(l int, mode attnscale.Variant, s, b []float32) error {
	if l < 0 || l >= m.Spec.Layers {
		return fmt.Errorf("layer %d out of range [0, %d)", l, m.Spec.Layers)
	}
	if !mode.Valid() {
		return fmt.Errorf("layer %d: invalid attention variant %q", l, mode)
	}
	needS, needB := mode.HasS(), mode.HasB()
	if needS != (s != nil) || needB != (b != nil) {
		return fmt.Errorf("layer %d: mode %s needs s %v and b %v", l, mode, needS, needB)
	}
	set := func(role arch.Role, name string, vals []float32) (*Param, error) {
		if vals == nil {
			m.remove(role, l)
			return nil, nil
		}
		if len(vals) != m.Spec.Heads {
			return nil, fmt.Errorf("layer %d: %s has %d values for %d heads", l, role, len(vals), m.Spec.Heads)
		}
		if p := m.byRole[roleKey{role, l}]; p != nil {
			copy(p.Values(), vals)
			return p, nil
		}
		p := newParam(arch.TensorSpec{Name: name, Role: role, Layer: l, Shape: []int64{int64(m.Spec.Heads)}}, append([]float32(nil), vals...))
		m.add(p)
		return p, nil
	}
	sp, err := set(arch.RoleSSMaxS, m.Spec.SSMaxS(l), s)
	if err != nil {
		return err
	}
	bp, err := set(arch.RoleSSMaxB, m.Spec.SSMaxB(l), b)
	if err != nil {
		return err
	}
	m.attn[l] = Attention{Variant: mode, S: sp, B: bp}
	return nil
}

func (m *Model) remove(role arch.Role, layer int) {
	p := m.byRole[roleKey{role, layer}]
	if p == nil {
		return
	}
	delete(m.byRole, roleKey{role, layer})
	for i, q := range m.params {
		if q == p {
			m.params = append(m.params[:i:i], m.params[i+1:]...)
			break
		}
	}
}

// ParamCount counts the weights' elements (SSMax parameters excluded).
func (m *Model) ParamCount() int64 {
	var n int64
	for _, p := range m.params {
		if !p.Role.IsSSMax() {
			n += int64(p.Len())
		}
	}
	return n
}

// Open loads the model of the checkpoint at path (a directory, or a
// .safetensors file with configPath) as Load does, and owns the
// checkpoint: the weights held in their stored dtype view its
// memory-mapped files without a copy (where a tensor's bytes are suitably
// aligned), and the files stay open, read-only, until no such weight is
// left (a runtime cleanup closes them; the model needs no Close). The
// files must not be modified in place meanwhile (replacing them, as every
// ssmax writer does by renaming a new file into place, is fine). When no
// weight views them they are closed before Open returns.
func Open(path, configPath string, o Options) (*Model, error) {
	c, err := checkpoint.Open(path, checkpoint.Options{ConfigPath: configPath})
	if err != nil {
		return nil, err
	}
	spec, err := arch.Load(c)
	if err != nil {
		c.Close()
		return nil, err
	}
	m, viewed, err := load(c, spec, o, true)
	if !viewed {
		c.Close()
	}
	return m, err
}
