package model

import (
	"context"
	"runtime"
	"slices"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/safetensors"
)

// layout remembers how the source checkpoint stored its tensors, so Save
// writes the same shards, order and metadata, and carries along tensors the
// model does not use (buffers, unknown extras) and the tokenizer files.
type layout struct {
	srcDir    string
	auxiliary []string
	stored    checkpoint.Layout
	extras    map[string]extraTensor
}

type extraTensor struct {
	dtype safetensors.DType
	shape []int64
	data  []byte
}

func layoutOf(c *checkpoint.Checkpoint, spec *arch.Spec) (layout, error) {
	l := layout{srcDir: c.Dir, auxiliary: c.Auxiliary, stored: c.Layout(), extras: map[string]extraTensor{}}
	known := map[string]bool{}
	for _, t := range spec.Tensors() {
		known[t.Name] = true
	}
	for _, name := range c.TensorNames() {
		if known[name] || arch.IsSSMaxTensor(name) {
			continue
		}
		t, _ := c.Tensor(name)
		b, err := t.File.Bytes(name)
		if err != nil {
			return l, err
		}
		l.extras[name] = extraTensor{dtype: t.DType, shape: t.Shape, data: slices.Clone(b)}
	}
	return l, nil
}

// SaveOptions tune Save.
type SaveOptions struct {
	// DType overrides every float weight's dtype ("" keeps each tensor's own).
	DType safetensors.DType
}

// Save writes the model as a checkpoint directory with checkpoint.Write:
// the source's shards and tensor order with the current weight values in
// each tensor's dtype, new SSMax tensors beside their layer's attention,
// config.json with the SSMax object describing the current attention, and
// the source's tokenizer files. The directory is written under a temporary
// name and renamed into place; an existing dir is replaced.
func (m *Model) Save(dir string, o SaveOptions) error {
	cfg, err := m.configForSave(o)
	if err != nil {
		return err
	}
	shards, err := checkpoint.Plan(m.layout.stored, m.placement(o))
	if err != nil {
		return err
	}
	out := checkpoint.Output{Shards: shards, Config: cfg, AuxDir: m.layout.srcDir, Auxiliary: m.layout.auxiliary}
	err = checkpoint.Write(context.Background(), dir, out, checkpoint.WriteOptions{Replace: true})
	// The tensors written from stored weights view the model's memory.
	runtime.KeepAlive(m)
	return err
}

// placement writes each stored tensor from its parameter (or carries an
// extra along unchanged) and places parameters the source did not store
// after the last tensor of their layer's attention module, or at the end.
func (m *Model) placement(o SaveOptions) checkpoint.Placement {
	byName := map[string]*Param{}
	for _, p := range m.params {
		byName[p.Name] = p
	}
	var stored []string
	placed := map[string]bool{}
	for _, sh := range m.layout.stored.Shards {
		stored = append(stored, sh.Names...)
		for _, n := range sh.Names {
			placed[n] = true
		}
	}
	anchors := m.Spec.AttentionAnchors(stored)
	pl := checkpoint.Placement{After: map[string][]safetensors.WriteTensor{}}
	for _, p := range m.params {
		if placed[p.Name] {
			continue
		}
		anchor := ""
		if p.Layer >= 0 {
			anchor = anchors[p.Layer]
		}
		if anchor == "" {
			pl.Tail = append(pl.Tail, m.writeParam(p, o))
		} else {
			pl.After[anchor] = append(pl.After[anchor], m.writeParam(p, o))
		}
	}
	pl.Tensor = func(name string) (safetensors.WriteTensor, bool, error) {
		if p := byName[name]; p != nil {
			return m.writeParam(p, o), true, nil
		}
		if e, ok := m.layout.extras[name]; ok {
			return safetensors.FromBytes(name, e.dtype, e.shape, e.data), true, nil
		}
		return safetensors.WriteTensor{}, false, nil
	}
	return pl
}

func (m *Model) writeParam(p *Param, o SaveOptions) safetensors.WriteTensor {
	dt := p.DType
	if o.DType != "" && !p.Role.IsSSMax() {
		dt = o.DType
	}
	if w := p.stored(); w != nil && dt == p.DType {
		// A frozen weight in its stored dtype: its bytes, unchanged.
		return safetensors.FromBytes(p.Name, dt, p.StoredShape, p.storedBytes(w))
	}
	return safetensors.FromFloat32(p.Name, dt, p.StoredShape, p.StoredValues(p.Values()))
}

// configForSave returns config.json with the SSMax object describing the
// model's attention now: removed when every layer is softmax; otherwise the
// variant and layers updated, other fields kept.
func (m *Model) configForSave(o SaveOptions) (*checkpoint.Config, error) {
	cfg := m.Config.Clone()
	sc, err := m.SSMaxConfig()
	if err != nil {
		return nil, err
	}
	if o.DType != "" {
		if err := cfg.SetDType(o.DType); err != nil {
			return nil, err
		}
	}
	if sc == nil {
		cfg.Delete(arch.SSMaxConfigKey)
		return cfg, nil
	}
	if err := cfg.Set(arch.SSMaxConfigKey, sc); err != nil {
		return nil, err
	}
	return cfg, nil
}
