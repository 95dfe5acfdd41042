package convert

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/internal/atomicfile"
	"github.com/ssmax/ssmax/internal/outlock"
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
	res, out, err := planOutput(src, spec, &o, dstDType)
	if err != nil {
		return nil, err
	}
	lock, err := lockDst(o.Dst, o.Force)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	err = checkpoint.Write(ctx, o.Dst, *out, checkpoint.WriteOptions{Replace: o.Force, Progress: o.Progress})
	if errors.Is(err, atomicfile.ErrExists) {
		return nil, fmt.Errorf("destination %s appeared while converting (use --force to replace it)", o.Dst)
	}
	if err != nil {
		return nil, err
	}
	res.Dst = o.Dst
	return res, nil
}

// lockDst takes the lock of the destination (package outlock: the hidden
// file .NAME.ssmax.lock beside it, never inside the checkpoint), so that
// two conversions to one destination do not both proceed: the second fails
// at once naming the first's pid. Holding it, it removes the temporary
// directories of dst a killed conversion left behind, and checks again
// that dst does not exist (it may have been written since checkPaths).
func lockDst(dst string, force bool) (*outlock.Lock, error) {
	lock, err := outlock.Path(dst)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.RemoveTemporaries(dst); err != nil {
		lock.Release()
		return nil, fmt.Errorf("remove what an interrupted conversion left beside %s: %w", dst, err)
	}
	if _, err := os.Lstat(dst); err == nil && !force {
		lock.Release()
		return nil, fmt.Errorf("destination %s exists (use --force to replace it)", dst)
	}
	return lock, nil
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
func planOutput(src *checkpoint.Checkpoint, spec *arch.Spec, o *Options, dt safetensors.DType) (*Result, *checkpoint.Output, error) {
	res := &Result{}
	cfg := src.Config.Clone()
	newSpec := *spec
	switch {
	case o.Revert:
		if spec.SSMax == nil {
			return nil, nil, fmt.Errorf("%s: --revert: the checkpoint has no SSMax state", src.Path)
		}
		cfg.Delete(arch.SSMaxConfigKey)
		newSpec.SSMax = nil
	case spec.SSMax != nil && !o.Reinit:
		return nil, nil, fmt.Errorf("%s: %w with SSMax variant %s (layers %v): use --reinit to convert again with new settings or --revert for plain softmax",
			src.Path, ErrConverted, spec.SSMax.Variant, spec.SSMax.Layers)
	default:
		layers, err := ParseLayers(o.Layers, spec.Layers)
		if err != nil {
			return nil, nil, fmt.Errorf("--layers: %w", err)
		}
		req := arch.InitRequest{Variant: o.Variant, Init: o.Init, TrainLen: o.TrainLen, Context: spec.Context, S: o.S, B: o.B}
		if o.Init == InitCalibrate {
			if err := checkPerHead(o, len(layers), spec.Heads); err != nil {
				return nil, nil, err
			}
			req.Init = InitMatch // resolves L; the values come from PerHead
		}
		iv, err := arch.ResolveInit(req)
		if err != nil {
			return nil, nil, err
		}
		sc := arch.NewSSMaxConfig(req, iv, layers)
		if o.Init == InitCalibrate {
			sc.Init, sc.SInit, sc.BInit = InitCalibrate, nil, nil
		}
		if err := cfg.Set(arch.SSMaxConfigKey, sc); err != nil {
			return nil, nil, err
		}
		newSpec.SSMax = sc
	}
	res.SSMax = newSpec.SSMax
	if dt != "" {
		if err := cfg.SetDType(dt); err != nil {
			return nil, nil, err
		}
	}
	placement, err := placeTensors(src, &newSpec, dt, res, o.PerHead)
	if err != nil {
		return nil, nil, err
	}
	placement.MaxShardSize = o.ShardSize
	shards, err := checkpoint.Plan(src.Layout(), placement)
	if err != nil {
		return nil, nil, err
	}
	out := &checkpoint.Output{Shards: shards, Config: cfg, AuxDir: src.Dir, Auxiliary: src.Auxiliary}
	for _, sh := range shards {
		res.Shards = append(res.Shards, sh.Name)
		res.Tensors += len(sh.Tensors)
	}
	res.Bytes = out.TensorBytes()
	out.Files = map[string][]byte{"README.md": modelCard(src, res, o)}
	return res, out, nil
}

// placeTensors says what convert writes for each stored tensor (a kernel
// copy, or a dtype conversion when asked; old SSMax parameters dropped) and
// places the new SSMax parameters of spec right after the last tensor of
// their layer's attention module.
func placeTensors(src *checkpoint.Checkpoint, spec *arch.Spec, dt safetensors.DType, res *Result, perHead *PerHead) (checkpoint.Placement, error) {
	p := checkpoint.Placement{After: map[string][]safetensors.WriteTensor{}}
	p.Tensor = func(name string) (safetensors.WriteTensor, bool, error) {
		t, _ := src.Tensor(name)
		if arch.IsSSMaxTensor(name) {
			res.Dropped = append(res.Dropped, name)
			return safetensors.WriteTensor{}, false, nil
		}
		var wt safetensors.WriteTensor
		var err error
		if dt != "" && convertible(t.DType) {
			wt, err = safetensors.Convert(t.File, name, dt)
		} else {
			wt, err = safetensors.FromFile(t.File, name)
		}
		return wt, err == nil, err
	}
	if spec.SSMax == nil {
		return p, nil
	}
	anchors := spec.AttentionAnchors(src.TensorNames())
	shape := []int64{int64(spec.Heads)}
	for i, l := range spec.SSMax.Layers {
		anchor, ok := anchors[l]
		var add []safetensors.WriteTensor
		values := func(one *float64, table [][]float64) []float32 {
			if spec.SSMax.Init == InitCalibrate {
				return attnscale.Values(table[i])
			}
			return attnscale.PerHead(spec.Heads, *one)
		}
		var sTable, bTable [][]float64
		if perHead != nil {
			sTable, bTable = perHead.S, perHead.B
		}
		if spec.SSMax.Variant.HasS() {
			add = append(add, safetensors.FromFloat32(spec.SSMaxS(l), safetensors.F32, shape, values(spec.SSMax.SInit, sTable)))
		}
		if spec.SSMax.Variant.HasB() {
			add = append(add, safetensors.FromFloat32(spec.SSMaxB(l), safetensors.F32, shape, values(spec.SSMax.BInit, bTable)))
		}
		if len(add) > 0 && !ok {
			return p, fmt.Errorf("%s: no tensor under %s to place %s beside", src.Path, spec.AttentionPrefix(l), add[0].Name)
		}
		p.After[anchor] = append(p.After[anchor], add...)
		for _, t := range add {
			res.Added = append(res.Added, t.Name)
		}
	}
	return p, nil
}

func convertible(dt safetensors.DType) bool {
	switch dt {
	case safetensors.F32, safetensors.F16, safetensors.BF16, safetensors.F64:
		return true
	}
	return false
}

// checkPerHead checks the per-head values of InitCalibrate against the
// layers converted and the heads.
func checkPerHead(o *Options, layers, heads int) error {
	p := o.PerHead
	if p == nil {
		return fmt.Errorf("--init calibrate: no per-head values (the command line computes them with --calib-data)")
	}
	if o.S != nil {
		return fmt.Errorf("--s sets s for --init const; init is calibrate")
	}
	check := func(name string, t [][]float64, want bool) error {
		if !want {
			if t != nil {
				return fmt.Errorf("--init calibrate: values of %s given for variant %s, which has none", name, o.Variant)
			}
			return nil
		}
		if len(t) != layers {
			return fmt.Errorf("--init calibrate: %s for %d layers, converting %d", name, len(t), layers)
		}
		for i, row := range t {
			if len(row) != heads {
				return fmt.Errorf("--init calibrate: %s of converted layer %d has %d values for %d heads", name, i, len(row), heads)
			}
			for _, v := range row {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return fmt.Errorf("--init calibrate: %s must be finite", name)
				}
			}
		}
		return nil
	}
	if err := check("s", p.S, o.Variant.HasS()); err != nil {
		return err
	}
	if err := check("b", p.B, o.Variant.HasB()); err != nil {
		return err
	}
	if o.B != nil {
		return fmt.Errorf("--init calibrate chooses b; do not give --b")
	}
	return nil
}
