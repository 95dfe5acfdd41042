package model

import (
	"os"
	"path/filepath"
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
	sharded   bool
	shards    []shardLayout
	extras    map[string]extraTensor
}

type shardLayout struct {
	name  string
	meta  safetensors.Metadata
	names []string
}

type extraTensor struct {
	dtype safetensors.DType
	shape []int64
	data  []byte
}

func layoutOf(c *checkpoint.Checkpoint) (layout, error) {
	l := layout{srcDir: c.Dir, auxiliary: c.Auxiliary, sharded: len(c.Shards) > 1, extras: map[string]extraTensor{}}
	known := map[string]bool{}
	spec, err := arch.Detect(c.Config, c.TensorNames())
	if err != nil {
		return l, err
	}
	for _, t := range spec.Tensors() {
		known[t.Name] = true
	}
	for _, f := range c.Shards {
		name := filepath.Base(f.Path())
		if !l.sharded {
			name = checkpoint.SingleFile
		}
		sl := shardLayout{name: name, meta: f.Metadata()}
		for _, t := range f.Tensors() {
			sl.names = append(sl.names, t.Name)
			if !known[t.Name] && !arch.IsSSMaxTensor(t.Name) {
				b, err := f.Bytes(t.Name)
				if err != nil {
					return l, err
				}
				l.extras[t.Name] = extraTensor{dtype: t.DType, shape: t.Shape, data: slices.Clone(b)}
			}
		}
		l.shards = append(l.shards, sl)
	}
	return l, nil
}

// SaveOptions tune Save.
type SaveOptions struct {
	// DType overrides every float weight's dtype ("" keeps each tensor's own).
	DType safetensors.DType
}

// Save writes the model as a checkpoint directory: the source's shards and
// tensor order with the current weight values in each tensor's dtype, new
// SSMax tensors beside their layer's attention, config.json with the SSMax
// object describing the current attention, and the source's tokenizer
// files. The directory is written under a temporary name and renamed into
// place; an existing dir is replaced.
func (m *Model) Save(dir string, o SaveOptions) error {
	cfg, err := m.configForSave(o)
	if err != nil {
		return err
	}
	cfgBytes, err := cfg.Marshal()
	if err != nil {
		return err
	}
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(filepath.Clean(dir))+".tmp-")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	shards := m.planSave(o)
	weightMap := map[string]string{}
	var total int64
	for _, sh := range shards {
		if err := safetensors.WriteFile(filepath.Join(tmp, sh.name), sh.meta, sh.tensors); err != nil {
			return err
		}
		for _, t := range sh.tensors {
			weightMap[t.Name] = sh.name
			total += t.Size
		}
	}
	if len(shards) > 1 {
		if err := safetensors.WriteIndex(tmp, total, weightMap); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, checkpoint.ConfigFile), cfgBytes, 0o644); err != nil {
		return err
	}
	if err := checkpoint.CopyFiles(m.layout.srcDir, tmp, m.layout.auxiliary); err != nil {
		return err
	}
	if _, err := os.Lstat(dir); err == nil {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	ok = true
	return nil
}

type saveShard struct {
	name    string
	meta    safetensors.Metadata
	tensors []safetensors.WriteTensor
}

// planSave orders the tensors: the source layout first, new parameters
// after the last tensor of their layer's attention module (or at the end
// of the last shard).
func (m *Model) planSave(o SaveOptions) []saveShard {
	byName := map[string]*Param{}
	for _, p := range m.params {
		byName[p.Name] = p
	}
	placed := map[string]bool{}
	for _, sh := range m.layout.shards {
		for _, n := range sh.names {
			placed[n] = true
		}
	}
	var stored []string
	for _, sh := range m.layout.shards {
		stored = append(stored, sh.names...)
	}
	anchors := m.Spec.AttentionAnchors(stored)
	// New parameters, keyed by the source tensor they follow.
	after := map[string][]*Param{}
	var tail []*Param
	for _, p := range m.params {
		if placed[p.Name] {
			continue
		}
		anchor := ""
		if p.Layer >= 0 {
			anchor = anchors[p.Layer]
		}
		if anchor == "" {
			tail = append(tail, p)
		} else {
			after[anchor] = append(after[anchor], p)
		}
	}
	var out []saveShard
	for i, sh := range m.layout.shards {
		s := saveShard{name: sh.name, meta: sh.meta}
		for _, n := range sh.names {
			if p := byName[n]; p != nil {
				s.tensors = append(s.tensors, m.writeParam(p, o))
			} else if e, ok := m.layout.extras[n]; ok {
				s.tensors = append(s.tensors, safetensors.FromBytes(n, e.dtype, e.shape, e.data))
			}
			for _, p := range after[n] {
				s.tensors = append(s.tensors, m.writeParam(p, o))
			}
		}
		if i == len(m.layout.shards)-1 {
			for _, p := range tail {
				s.tensors = append(s.tensors, m.writeParam(p, o))
			}
		}
		out = append(out, s)
	}
	return out
}

func (m *Model) writeParam(p *Param, o SaveOptions) safetensors.WriteTensor {
	dt := p.DType
	if o.DType != "" && !p.Role.IsSSMax() {
		dt = o.DType
	}
	return safetensors.FromFloat32(p.Name, dt, p.StoredShape, p.Values())
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
		for _, key := range []string{"torch_dtype", "dtype"} {
			if cfg.Has(key) {
				name := map[safetensors.DType]string{safetensors.F32: "float32", safetensors.F16: "float16", safetensors.BF16: "bfloat16"}[o.DType]
				if err := cfg.Set(key, name); err != nil {
					return nil, err
				}
			}
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
