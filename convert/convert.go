package convert

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/safetensors"
)

// ErrConverted reports a source that already has SSMax state.
var ErrConverted = errors.New("already converted")

// Result describes a finished conversion.
type Result struct {
	Dst     string
	Shards  []string
	Tensors int
	// Added lists the new SSMax tensors; Dropped the SSMax tensors removed.
	Added, Dropped []string
	// Bytes is the size of the tensor data written.
	Bytes int64
	// SSMax is the config object written, nil after --revert.
	SSMax *arch.SSMaxConfig
}

// shard is one output file: its name and ordered tensors.
type shard struct {
	name    string
	meta    safetensors.Metadata
	tensors []safetensors.WriteTensor
}

// Run performs the conversion described by o.
func Run(ctx context.Context, o Options) (*Result, error) {
	dstDType, err := ParseDType(o.DType)
	if err != nil {
		return nil, err
	}
	if err := checkPaths(o.Src, o.Dst, o.Force); err != nil {
		return nil, err
	}
	src, err := checkpoint.Open(o.Src, checkpoint.Options{ConfigPath: o.ConfigPath})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	spec, err := arch.Load(src)
	if err != nil {
		return nil, err
	}
	out, plan, configBytes, err := planOutput(src, spec, &o, dstDType)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(o.Dst)), "."+filepath.Base(filepath.Clean(o.Dst))+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("create temporary output beside %s: %w", o.Dst, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := writeAll(ctx, tmp, src, plan, configBytes, out, &o); err != nil {
		return nil, err
	}
	if err := replaceDir(tmp, o.Dst, o.Force); err != nil {
		return nil, err
	}
	ok = true
	out.Dst = o.Dst
	return out, nil
}

// checkPaths refuses a destination that is the source, lies inside it, or
// (with --force) contains it, and an existing destination without --force.
func checkPaths(src, dst string, force bool) error {
	if dst == "" {
		return fmt.Errorf("no destination directory given")
	}
	as, err := absReal(src)
	if err != nil {
		return fmt.Errorf("source %s: %w", src, err)
	}
	ad, err := absReal(dst)
	if err != nil {
		return fmt.Errorf("destination %s: %w", dst, err)
	}
	srcDir := as
	if st, err := os.Stat(as); err == nil && !st.IsDir() {
		srcDir = filepath.Dir(as)
		if ad == as {
			return fmt.Errorf("destination %s is the source file", dst)
		}
	}
	if ad == srcDir {
		return fmt.Errorf("destination %s is the source checkpoint directory: write the converted checkpoint elsewhere", dst)
	}
	if within(ad, srcDir) && srcDir == as {
		return fmt.Errorf("destination %s is inside the source checkpoint %s", dst, src)
	}
	if within(as, ad) {
		return fmt.Errorf("destination %s contains the source %s", dst, src)
	}
	if _, err := os.Lstat(dst); err == nil && !force {
		return fmt.Errorf("destination %s exists (use --force to replace it)", dst)
	}
	return nil
}

func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..")
}

// absReal resolves symlinks of the longest existing prefix of p.
func absReal(p string) (string, error) {
	a, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	var rest []string
	for cur := a; ; cur = filepath.Dir(cur) {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(append([]string{r}, rest...)...), nil
		}
		if cur == filepath.Dir(cur) {
			return a, nil
		}
		rest = append([]string{filepath.Base(cur)}, rest...)
	}
}

// planOutput decides the config, the SSMax tensors and the shards.
func planOutput(src *checkpoint.Checkpoint, spec *arch.Spec, o *Options, dt safetensors.DType) (*Result, []shard, []byte, error) {
	res := &Result{}
	cfg := src.Config.Clone()
	newSpec := *spec
	switch {
	case o.Revert:
		if spec.SSMax == nil {
			return nil, nil, nil, fmt.Errorf("%s: --revert: the checkpoint has no SSMax state", src.Path)
		}
		cfg.Delete(arch.SSMaxConfigKey)
		newSpec.SSMax = nil
	case spec.SSMax != nil && !o.Reinit:
		return nil, nil, nil, fmt.Errorf("%s: %w with SSMax variant %s (layers %v): use --reinit to convert again with new settings or --revert for plain softmax",
			src.Path, ErrConverted, spec.SSMax.Variant, spec.SSMax.Layers)
	default:
		layers, err := ParseLayers(o.Layers, spec.Layers)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--layers: %w", err)
		}
		req := arch.InitRequest{Variant: o.Variant, Init: o.Init, TrainLen: o.TrainLen, Context: spec.Context, S: o.S, B: o.B}
		iv, err := arch.ResolveInit(req)
		if err != nil {
			return nil, nil, nil, err
		}
		sc := arch.NewSSMaxConfig(req, iv, layers)
		if err := cfg.Set(arch.SSMaxConfigKey, sc); err != nil {
			return nil, nil, nil, err
		}
		newSpec.SSMax = sc
		res.SSMax = sc
	}
	if dt != "" {
		for _, key := range []string{"torch_dtype", "dtype"} {
			if cfg.Has(key) {
				if err := cfg.Set(key, torchDType(dt)); err != nil {
					return nil, nil, nil, err
				}
			}
		}
	}
	added := ssmaxTensors(&newSpec)
	plan, err := planShards(src, spec, added, dt, res)
	if err != nil {
		return nil, nil, nil, err
	}
	if o.ShardSize > 0 {
		plan = reshard(plan, o.ShardSize)
	}
	for _, sh := range plan {
		res.Shards = append(res.Shards, sh.name)
		res.Tensors += len(sh.tensors)
		for _, t := range sh.tensors {
			res.Bytes += t.Size
		}
	}
	res.SSMax = newSpec.SSMax
	configBytes, err := cfg.Marshal()
	if err != nil {
		return nil, nil, nil, err
	}
	return res, plan, configBytes, nil
}

// newTensor is an SSMax tensor to add after the attention tensors of a layer.
type newTensor struct {
	layer  int
	tensor safetensors.WriteTensor
}

func ssmaxTensors(spec *arch.Spec) []newTensor {
	if spec.SSMax == nil {
		return nil
	}
	var out []newTensor
	fill := func(v float64) []float32 { return attnscale.PerHead(spec.Heads, v) }
	shape := []int64{int64(spec.Heads)}
	for _, l := range spec.SSMax.Layers {
		if spec.SSMax.Variant.HasS() {
			out = append(out, newTensor{l, safetensors.FromFloat32(spec.SSMaxS(l), safetensors.F32, shape, fill(*spec.SSMax.SInit))})
		}
		if spec.SSMax.Variant.HasB() {
			out = append(out, newTensor{l, safetensors.FromFloat32(spec.SSMaxB(l), safetensors.F32, shape, fill(*spec.SSMax.BInit))})
		}
	}
	return out
}

// planShards keeps the source's shards and tensor order, drops old SSMax
// tensors, converts dtypes if asked, and inserts each new SSMax tensor right
// after the last tensor of its layer's attention module.
func planShards(src *checkpoint.Checkpoint, spec *arch.Spec, added []newTensor, dt safetensors.DType, res *Result) ([]shard, error) {
	// Where each layer's attention module ends: shard index and position.
	type place struct{ shard, pos int }
	at := map[string]place{}
	for si, f := range src.Shards {
		for pos, t := range f.Tensors() {
			at[t.Name] = place{si, pos}
		}
	}
	last := map[int]place{}
	for l, name := range spec.AttentionAnchors(src.TensorNames()) {
		last[l] = at[name]
	}
	byPlace := map[place][]safetensors.WriteTensor{}
	for _, nt := range added {
		p, ok := last[nt.layer]
		if !ok {
			return nil, fmt.Errorf("%s: no tensor under %s to place %s beside", src.Path, spec.AttentionPrefix(nt.layer), nt.tensor.Name)
		}
		byPlace[p] = append(byPlace[p], nt.tensor)
		res.Added = append(res.Added, nt.tensor.Name)
	}
	var plan []shard
	for si, f := range src.Shards {
		name := filepath.Base(f.Path())
		if len(src.Shards) == 1 {
			name = checkpoint.SingleFile
		}
		meta := f.Metadata()
		if _, ok := meta.Get("format"); !ok {
			meta = meta.With("format", "pt")
		}
		sh := shard{name: name, meta: meta}
		for pos, t := range f.Tensors() {
			if arch.IsSSMaxTensor(t.Name) {
				res.Dropped = append(res.Dropped, t.Name)
				continue
			}
			var wt safetensors.WriteTensor
			var err error
			if dt != "" && convertible(t.DType) {
				wt, err = safetensors.Convert(f, t.Name, dt)
			} else {
				wt, err = safetensors.FromFile(f, t.Name)
			}
			if err != nil {
				return nil, err
			}
			sh.tensors = append(sh.tensors, wt)
			sh.tensors = append(sh.tensors, byPlace[place{si, pos}]...)
		}
		plan = append(plan, sh)
	}
	if len(plan) > 1 {
		n := len(plan)
		for i := range plan {
			if len(src.Shards) > 1 && src.Index != nil {
				continue // keep the source's shard names
			}
			plan[i].name = fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, n)
		}
	}
	return plan, nil
}

func convertible(dt safetensors.DType) bool {
	switch dt {
	case safetensors.F32, safetensors.F16, safetensors.BF16, safetensors.F64:
		return true
	}
	return false
}

// reshard regroups the ordered tensors under a maximum shard size.
func reshard(plan []shard, max int64) []shard {
	var all []safetensors.WriteTensor
	for _, sh := range plan {
		all = append(all, sh.tensors...)
	}
	meta := plan[0].meta
	groups := safetensors.PlanShards(all, max)
	out := make([]shard, len(groups))
	for i, g := range groups {
		name := checkpoint.SingleFile
		if len(groups) > 1 {
			name = fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(groups))
		}
		out[i] = shard{name: name, meta: meta, tensors: g}
	}
	return out
}

// shardWorkers is how many shards writeAll writes at once: while one shard
// waits for its final fsync, the next one is already being copied or
// converted, so the disk and the CPU work at the same time.
const shardWorkers = 2

// writeAll writes shards, index, config, auxiliary files and the model card
// into dir.
func writeAll(ctx context.Context, dir string, src *checkpoint.Checkpoint, plan []shard, configBytes []byte, res *Result, o *Options) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex // guards done, firstErr and calls to o.Progress
		done     int64
		firstErr error
	)
	weightMap := map[string]string{}
	files := make([][]safetensors.WriteTensor, len(plan))
	for si, sh := range plan {
		tensors := make([]safetensors.WriteTensor, len(sh.tensors))
		for i, t := range sh.tensors {
			t := t
			write := t.Write
			t.Write = func(w io.Writer) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := write(w); err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				done += t.Size
				if o.Progress != nil {
					o.Progress(done, res.Bytes)
				}
				return nil
			}
			tensors[i] = t
			weightMap[t.Name] = sh.name
		}
		files[si] = tensors
	}
	// Shards are independent files; the first error cancels ctx, which
	// stops the others at their next tensor, and is the one reported.
	sem := make(chan struct{}, shardWorkers)
	var wg sync.WaitGroup
	for si, sh := range plan {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := safetensors.WriteFile(filepath.Join(dir, sh.name), sh.meta, files[si]); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("write %s: %w", sh.name, err)
				}
				mu.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if len(plan) > 1 {
		if err := safetensors.WriteIndex(dir, res.Bytes, weightMap); err != nil {
			return err
		}
	}
	if err := writeFileSync(filepath.Join(dir, checkpoint.ConfigFile), configBytes); err != nil {
		return err
	}
	if err := checkpoint.CopyFiles(src.Dir, dir, src.Auxiliary); err != nil {
		return err
	}
	return writeFileSync(filepath.Join(dir, "README.md"), modelCard(src, res, o))
}
