package finetune

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/internal/atomicfile"
	"github.com/ssmax/ssmax/model"
	"github.com/ssmax/ssmax/safetensors"
)

// TorchRunFormat identifies OUT/torch/node<R>/run.json, what the torch
// workers read besides OUT/spec.json (see python/ssmax_torch/README.md).
const (
	TorchRunFormat  = "ssmax.torch_run"
	TorchRunVersion = 1
	specFile        = "spec.json"
)

// torchRun is run.json.
type torchRun struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	// Out is the run's output directory (absolute).
	Out    string `json:"out"`
	Config Config `json:"config"`
	// Spec is the resolved architecture (a copy of OUT/spec.json).
	Spec string `json:"spec"`
	// Source is the checkpoint the weights start from; Resume the step
	// directory to continue from ("" for none).
	Source string `json:"source"`
	// Summary is the spec on one line (Spec.String).
	Summary    string `json:"summary"`
	Resume     string `json:"resume,omitempty"`
	TotalSteps int    `json:"total_steps"`
	// Trainable lists the trainable tensors with their optimizer group.
	Trainable []torchTrainable `json:"trainable"`
	// Groups are the optimizer groups: learning-rate factor and weight decay.
	Groups map[string]torchGroup `json:"groups"`
	Data   torchData             `json:"data"`
	// Save lays out every checkpoint the run writes.
	Save *torchSavePlan `json:"save"`
	// Switch describes --switch-to-ssmax-at, nil without it.
	Switch *torchSwitch `json:"switch,omitempty"`
	// Engine: DDP or FSDP, precision.
	FSDP      bool   `json:"fsdp"`
	Precision string `json:"precision"`
}

type torchTrainable struct {
	Name  string `json:"name"`
	Group string `json:"group"`
}

type torchGroup struct {
	LRScale     float64 `json:"lr_scale"`
	WeightDecay float64 `json:"weight_decay"`
}

// torchData locates the token streams and the batch plan (files relative
// to run.json's directory).
type torchData struct {
	// TokenWidth is the byte width of a token in the stream files (2 or 4,
	// little-endian unsigned).
	TokenWidth int          `json:"token_width"`
	Train      torchStream  `json:"train"`
	Val        *torchStream `json:"val,omitempty"`
	// Batches holds, for every step from FirstStep on, micro-batch and row,
	// the index of the train window of that sequence (uint32,
	// [steps][grad_accum][batch_size]).
	Batches   string `json:"batches"`
	FirstStep int    `json:"first_step"`
	// LR holds every step's learning rate (float64).
	LR string `json:"lr"`
	// Windows is the number of train windows per epoch, Seed the loader's
	// seed and StartWindows the windows it had drawn before FirstStep: with
	// the stream length, what the spago loader's position in
	// trainer_state/state.json records.
	Windows      int    `json:"windows"`
	Seed         uint64 `json:"seed"`
	StartWindows int64  `json:"start_windows"`
}

type torchStream struct {
	Tokens    string `json:"tokens"`
	DocEnds   string `json:"doc_ends"` // int64 stream offset after each document
	NumTokens int    `json:"num_tokens"`
	NumDocs   int    `json:"num_docs"`
}

// torchSavePlan is the layout of every checkpoint the workers write:
// shards with their exact headers and the order of their tensors,
// config.json, the index, the tensors the model does not use (copied
// unchanged) and the auxiliary files. Go plans every byte but the weight
// values, so a checkpoint written by the torch engine is laid out as
// model.Save lays it out.
type torchSavePlan struct {
	// Dir holds config.json, model.safetensors.index.json (when sharded)
	// and extras.safetensors (when the source has extra tensors).
	Dir    string       `json:"dir"`
	Shards []torchShard `json:"shards"`
	Index  bool         `json:"index"`
	// AuxDir and Auxiliary are the tokenizer files to copy.
	AuxDir    string   `json:"aux_dir"`
	Auxiliary []string `json:"auxiliary"`
}

type torchShard struct {
	Name string `json:"name"`
	// Header is the JSON header, padded, written after its 8-byte
	// little-endian length.
	Header  string        `json:"header"`
	Tensors []torchTensor `json:"tensors"`
}

type torchTensor struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Size  int64  `json:"size"`
	// Extra: copy the bytes of extras.safetensors' tensor of this name.
	Extra bool `json:"extra,omitempty"`
}

// torchSwitch is --switch-to-ssmax-at resolved: the layers that switch,
// their new tensors and initial values, and the checkpoint layout after.
type torchSwitch struct {
	At        int                  `json:"at"`
	Variant   attnscale.Variant    `json:"variant"`
	Layers    []arch.ResolvedLayer `json:"layers"`
	S         *float32             `json:"s_init,omitempty"`
	B         *float32             `json:"b_init,omitempty"`
	Trainable []torchTrainable     `json:"trainable"`
	Save      *torchSavePlan       `json:"save"`

	spec  *arch.Spec
	added []arch.TensorSpec
}

// prepareTorch checks the model and the data as Run does, without loading
// the weights: the spec, the tokenizer and corpus against it, the trainable
// set, the SSMax switch. A model pretrained from a preset is created here
// (model.New) and saved under node/init, so both engines start from the
// same weights.
func (t *trainer) prepareTorch(ctx context.Context, node string) (*torchPrep, error) {
	c := &t.cfg
	p := &torchPrep{node: node}
	if c.Resume {
		if steps := completeSteps(c.Out); len(steps) > 0 {
			dir := filepath.Join(c.Out, stepDirName(steps[len(steps)-1]))
			st, err := readState(dir)
			if err != nil {
				return nil, fmt.Errorf("resume: %w", err)
			}
			p.resume, p.state = dir, &st
		} else {
			t.log("--resume: no complete checkpoint in %s, starting from the beginning", c.Out)
		}
	}
	var presetConfig *checkpoint.Config
	if c.Model != "" {
		p.source = c.Model
	} else {
		preset, err := LoadPreset(c.Arch)
		if err != nil {
			return nil, err
		}
		m, err := model.New(preset, c.Seed)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Arch, err)
		}
		t.m = m
		if c.Attention != "softmax" {
			if err := t.applySSMax(c.Attention, arch.InitMatch); err != nil {
				return nil, err
			}
		}
		// The spago engine keeps the preset's config and adds the SSMax
		// object when saving: so does the save plan (same key order).
		presetConfig = m.Config.Clone()
		p.source = filepath.Join(node, "init")
		if err := m.Save(p.source, model.SaveOptions{}); err != nil {
			return nil, err
		}
	}
	ck, spec, err := openSpec(p.source)
	if err != nil {
		return nil, err
	}
	p.ckpt, p.spec = ck, spec
	// setupData reads the spec and config only.
	t.m = &model.Model{Spec: spec, Config: ck.Config.Clone()}
	if presetConfig != nil {
		t.m.Config = presetConfig
	}
	if err := t.setupData(ctx); err != nil {
		p.close()
		return nil, err
	}
	if p.state != nil {
		// The spago engine's check of the data position, with its error.
		if err := t.train.Restore(p.state.Loader); err != nil {
			p.close()
			return nil, fmt.Errorf("resume %s: %w", p.resume, err)
		}
	}
	for _, ts := range spec.Tensors() {
		st, ok := ck.Tensor(ts.Name)
		if !ok {
			continue // an optional tensor (tied head)
		}
		p.params = append(p.params, standIn(ts, st.DType))
	}
	if c.SwitchToSSMaxAt > 0 && c.SwitchToSSMaxAt < t.total {
		// Checked now; the spago engine finds a bad initialisation when it
		// reaches the step (a switch past the last step never happens).
		if p.switched, err = t.resolveSwitch(spec); err != nil {
			p.close()
			return nil, err
		}
	}
	if _, err := selectTrainable(p.params, c); err != nil && !(c.SwitchToSSMaxAt > 0 && c.Train == "ssmax") {
		p.close()
		return nil, err
	}
	return p, nil
}

// standIn is a parameter with the name, role, shape and dtype of a stored
// tensor and no values: what selectTrainable and groupOf read.
func standIn(ts arch.TensorSpec, dt safetensors.DType) *model.Param {
	np := &nn.Param{Matrix: mat.NewDense[float32](mat.WithShape(1, 1))}
	return &model.Param{Param: np, Name: ts.Name, Role: ts.Role, Layer: ts.Layer, StoredShape: ts.Shape, DType: dt}
}

// resolveSwitch checks --switch-to-ssmax-at as the switch itself would
// (the spago engine finds a bad initialisation only at that step) and
// resolves the new parameters.
func (t *trainer) resolveSwitch(spec *arch.Spec) (*torchSwitch, error) {
	c := &t.cfg
	v, err := attnscale.ParseSSMax(c.Variant)
	if err != nil {
		return nil, err
	}
	trainLen := c.TrainLen
	if trainLen == 0 {
		trainLen = c.SeqLen
	}
	req := arch.InitRequest{Variant: v, Init: c.Init, TrainLen: trainLen, S: c.S, B: c.B, Context: spec.Context}
	iv, err := arch.ResolveInit(req)
	if err != nil {
		return nil, fmt.Errorf("switch to SSMax at step %d: %w", c.SwitchToSSMaxAt, err)
	}
	var layers, all []int
	for l := 0; l < spec.Layers; l++ {
		if spec.SSMax != nil && spec.SSMax.Converts(l) {
			if spec.SSMax.Variant != v {
				return nil, fmt.Errorf("switch to SSMax at step %d: layer %d already uses variant %s, the switch asks for %s: a checkpoint records one", c.SwitchToSSMaxAt, l, spec.SSMax.Variant, v)
			}
			all = append(all, l)
			continue
		}
		layers = append(layers, l)
		all = append(all, l)
	}
	after := *spec
	after.SSMax = arch.NewSSMaxConfig(req, iv, layers)
	after.SSMax.Layers = all
	sw := &torchSwitch{At: c.SwitchToSSMaxAt, Variant: v, spec: &after}
	if v.HasS() {
		s := float32(iv.S)
		sw.S = &s
	}
	if v.HasB() {
		b := float32(iv.B)
		sw.B = &b
	}
	res := after.Resolve(arch.ResolveOptions{SeqLen: c.SeqLen, RoPEThetaScale: c.RoPEScale})
	var added []*model.Param
	for _, l := range layers {
		sw.Layers = append(sw.Layers, res.Layers[l])
		for _, ts := range after.LayerTensors(l) {
			if ts.Role.IsSSMax() {
				sw.added = append(sw.added, ts)
				added = append(added, standIn(ts, safetensors.F32))
			}
		}
	}
	if ps, err := selectTrainable(added, c); err == nil {
		for _, p := range ps {
			sw.Trainable = append(sw.Trainable, torchTrainable{Name: p.Name, Group: groupOf(p)})
		}
	}
	return sw, nil
}

// write writes OUT/spec.json and what the workers read into p.node.
func (p *torchPrep) write(t *trainer, o TorchOptions) error {
	c := &t.cfg
	if err := os.MkdirAll(p.node, 0o777); err != nil {
		return err
	}
	res := p.spec.Resolve(arch.ResolveOptions{SeqLen: c.SeqLen, RoPEThetaScale: c.RoPEScale})
	js, err := json.MarshalIndent(res, "", " ")
	if err != nil {
		return err
	}
	js = append(js, '\n')
	if err := atomicfile.WriteFile(filepath.Join(c.Out, specFile), js); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(p.node, specFile), js); err != nil {
		return err
	}
	if err := writePythonPackage(filepath.Join(p.node, "python")); err != nil {
		return err
	}
	out, err := filepath.Abs(c.Out)
	if err != nil {
		return err
	}
	run := torchRun{Format: TorchRunFormat, Version: TorchRunVersion, Out: out, Config: *c, Spec: specFile,
		Summary: p.spec.String(), TotalSteps: t.total, Groups: map[string]torchGroup{}}
	if run.Source, err = filepath.Abs(p.source); err != nil {
		return err
	}
	if p.resume != "" {
		if run.Resume, err = filepath.Abs(p.resume); err != nil {
			return err
		}
	}
	for _, g := range newOptimizer(c).groups {
		run.Groups[g.name] = torchGroup{LRScale: g.lrScale, WeightDecay: g.decay}
	}
	if ps, err := selectTrainable(p.params, c); err == nil {
		for _, q := range ps {
			run.Trainable = append(run.Trainable, torchTrainable{Name: q.Name, Group: groupOf(q)})
		}
	}
	first := 0
	if p.state != nil {
		first = p.state.Step
	}
	if run.Data, err = t.writeTorchData(p.node, first); err != nil {
		return err
	}
	cfg := t.m.Config // with what setupData recorded (the bytes tokenizer)
	if run.Save, err = planTorchSave(p.ckpt, p.spec, cfg, nil, filepath.Join(p.node, "save")); err != nil {
		return err
	}
	if sw := p.switched; sw != nil {
		if sw.Save, err = planTorchSave(p.ckpt, sw.spec, cfg, sw.added, filepath.Join(p.node, "save_switched")); err != nil {
			return err
		}
		run.Switch = sw
	}
	run.FSDP, run.Precision = o.FSDP, o.Precision
	return writeJSON(filepath.Join(p.node, "run.json"), run)
}

func writeJSON(path string, v any) error {
	js, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(js, '\n'))
}

// writeTorchData writes the train and validation streams, their document
// ends, the window of every sequence of every step from first on (the
// spago loader's order, from where a resumed run's loader stood) and the
// learning rate of every step.
func (t *trainer) writeTorchData(node string, first int) (torchData, error) {
	c := &t.cfg
	pos := t.train.State()
	d := torchData{TokenWidth: 4, Seed: pos.Seed, Batches: "batches.bin", LR: "lr.bin", Windows: pos.Windows,
		FirstStep: first, StartWindows: int64(pos.Epoch)*int64(pos.Windows) + int64(pos.Cursor)}
	if t.m.Spec.Vocab <= 1<<16 {
		d.TokenWidth = 2
	}
	train, val, err := data.SplitDataset(t.ds, c.ValFraction, c.splitSeed())
	if err != nil {
		return d, err
	}
	if d.Train, err = writeStream(node, "train", train, d.TokenWidth); err != nil {
		return d, err
	}
	if t.val != nil {
		v, err := writeStream(node, "val", val, d.TokenWidth)
		if err != nil {
			return d, err
		}
		d.Val = &v
	}
	perStep := c.BatchSize * c.GradAccum
	err = writeBinary(filepath.Join(node, d.Batches), func(w io.Writer) error {
		buf := make([]uint32, 0, perStep)
		for step := first; step < t.total; step++ {
			buf = t.train.NextWindows(buf[:0], perStep)
			if err := binary.Write(w, binary.LittleEndian, buf); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return d, err
	}
	err = writeBinary(filepath.Join(node, d.LR), func(w io.Writer) error {
		for step := 0; step < t.total; step++ {
			lr := LearningRate(c.Schedule, step, c.Warmup, t.total, c.LR, c.MinLR)
			if err := binary.Write(w, binary.LittleEndian, math.Float64bits(lr)); err != nil {
				return err
			}
		}
		return nil
	})
	return d, err
}

// writeStream writes a stream's tokens and document ends.
func writeStream(node, name string, s *data.Stream, width int) (torchStream, error) {
	ts := torchStream{Tokens: name + ".tok", DocEnds: name + ".docs", NumTokens: s.Len(), NumDocs: s.NumDocs()}
	if err := writeBinary(filepath.Join(node, ts.Tokens), func(w io.Writer) error { return s.WriteTokens(w, width) }); err != nil {
		return ts, err
	}
	err := writeBinary(filepath.Join(node, ts.DocEnds), func(w io.Writer) error {
		return binary.Write(w, binary.LittleEndian, s.DocEnds())
	})
	return ts, err
}

// writeBinary writes a file atomically through a buffer.
func writeBinary(path string, fill func(w io.Writer) error) error {
	f, err := atomicfile.Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := fill(bw); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Commit()
}

// planTorchSave lays out the checkpoints of a model of spec whose weights
// start from ck, as model.Save would write them: the stored shards, order
// and metadata, each weight in its stored dtype, added (SSMax) tensors
// after the last tensor of their layer's attention, config.json with the
// SSMax object describing spec's attention, the tensors the model does not
// use carried along, and the tokenizer files. It writes config.json, the
// index and the carried tensors into dir.
func planTorchSave(ck *checkpoint.Checkpoint, spec *arch.Spec, cfg *checkpoint.Config, added []arch.TensorSpec, dir string) (*torchSavePlan, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, err
	}
	params := map[string]bool{}
	for _, ts := range spec.Tensors() {
		params[ts.Name] = true
	}
	layout := ck.Layout()
	var stored []string
	for _, sh := range layout.Shards {
		stored = append(stored, sh.Names...)
	}
	header := func(name string, dt safetensors.DType, shape []int64) (safetensors.WriteTensor, error) {
		size, err := dt.ByteSize(shape)
		return safetensors.WriteTensor{Name: name, DType: dt, Shape: slices.Clone(shape), Size: size}, err
	}
	var extras []safetensors.WriteTensor
	pl := checkpoint.Placement{After: map[string][]safetensors.WriteTensor{}}
	anchors := spec.AttentionAnchors(stored)
	for _, ts := range added {
		wt, err := header(ts.Name, safetensors.F32, ts.Shape)
		if err != nil {
			return nil, err
		}
		if a := anchors[ts.Layer]; a != "" {
			pl.After[a] = append(pl.After[a], wt)
		} else {
			pl.Tail = append(pl.Tail, wt)
		}
	}
	extra := map[string]bool{}
	pl.Tensor = func(name string) (safetensors.WriteTensor, bool, error) {
		t, ok := ck.Tensor(name)
		switch {
		case !ok:
			return safetensors.WriteTensor{}, false, nil
		case params[name]:
			wt, err := header(name, t.DType, t.Shape)
			return wt, true, err
		case arch.IsSSMaxTensor(name):
			return safetensors.WriteTensor{}, false, nil
		}
		b, err := t.File.Bytes(name)
		if err != nil {
			return safetensors.WriteTensor{}, false, err
		}
		extras = append(extras, safetensors.FromBytes(name, t.DType, slices.Clone(t.Shape), slices.Clone(b)))
		extra[name] = true
		wt, err := header(name, t.DType, t.Shape)
		return wt, true, err
	}
	shards, err := checkpoint.Plan(layout, pl)
	if err != nil {
		return nil, err
	}
	plan := &torchSavePlan{Dir: filepath.Base(dir), Index: len(shards) > 1, AuxDir: ck.Dir, Auxiliary: ck.Auxiliary}
	if plan.AuxDir, err = filepath.Abs(ck.Dir); err != nil {
		return nil, err
	}
	weightMap := map[string]string{}
	var total int64
	for _, sh := range shards {
		h, err := safetensors.EncodeHeader(sh.Meta, sh.Tensors)
		if err != nil {
			return nil, err
		}
		ps := torchShard{Name: sh.Name, Header: string(h[8:])}
		for _, wt := range sh.Tensors {
			ps.Tensors = append(ps.Tensors, torchTensor{Name: wt.Name, DType: string(wt.DType), Size: wt.Size, Extra: extra[wt.Name]})
			weightMap[wt.Name] = sh.Name
			total += wt.Size
		}
		plan.Shards = append(plan.Shards, ps)
	}
	if plan.Index {
		if err := safetensors.WriteIndex(dir, total, weightMap); err != nil {
			return nil, err
		}
	}
	if len(extras) > 0 {
		if err := safetensors.WriteFile(filepath.Join(dir, "extras.safetensors"), nil, extras); err != nil {
			return nil, err
		}
	}
	saved, err := savedConfig(cfg, spec.SSMax)
	if err != nil {
		return nil, err
	}
	b, err := saved.Marshal()
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, checkpoint.ConfigFile), b); err != nil {
		return nil, err
	}
	return plan, nil
}

// savedConfig is config.json as model.Save writes it for a model whose
// attention sc describes: the SSMax object with its layers in order, the
// rule for n and the current format version; none for softmax.
func savedConfig(cfg *checkpoint.Config, sc *arch.SSMaxConfig) (*checkpoint.Config, error) {
	out := cfg.Clone()
	if sc == nil || len(sc.Layers) == 0 {
		out.Delete(arch.SSMaxConfigKey)
		return out, nil
	}
	s := *sc
	s.Layers = slices.Sorted(slices.Values(sc.Layers))
	s.KeyCount = arch.KeyCountRule
	s.Version = arch.SSMaxFormatVersion
	if err := out.Set(arch.SSMaxConfigKey, s); err != nil {
		return nil, err
	}
	return out, nil
}
