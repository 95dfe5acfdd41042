// Package demo runs ssmax's main job end to end on a bundled default: a
// tiny softmax GPT-2 (with rotary positions, reading bytes) pretrained by
// ssmax on the Go source tree is converted to SSMax and fine-tuned for about
// a minute on the Go source tree of the installed Go; the same checkpoint
// left with softmax is fine-tuned with the same steps, data and settings,
// so the two are compared like with like: validation loss, and loss against
// context length beyond the training length with a paired noise estimate.
package demo

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"

	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/convert"
	"github.com/ssmax/ssmax/finetune"
	"github.com/ssmax/ssmax/internal/atomicfile"
	"github.com/ssmax/ssmax/internal/outlock"
)

//go:embed base/config.json base/model.safetensors
var bundled embed.FS

// bundledSeed is the seed the bundled checkpoint was pretrained with: the
// demo splits the corpus with it, so its validation documents are ones the
// bundled model never trained on.
const bundledSeed = 7

// marker marks a directory as a demo output, which a later run may replace.
const marker = ".ssmax-demo"

// Options configure a demo run.
type Options struct {
	// Out is the output directory (replaced if an earlier demo wrote it).
	Out string
	// Data and Glob are the corpus: by default the installed Go's source tree.
	Data, Glob string
	// Steps of fine-tuning.
	Steps int
	// Lengths are the context lengths of the length evaluation.
	Lengths []int
	// Samples per length.
	Samples int
	// RoPEThetaScale multiplies RoPE theta for the length evaluation (the
	// paper used 50 beyond the training length).
	RoPEThetaScale float64
	// Hooks watch the fine-tuning.
	Hooks finetune.Hooks
	// Log reports each stage.
	Log func(string)
}

// Report is what the demo prints.
type Report struct {
	// Base is the bundled softmax checkpoint, Converted its SSMax
	// conversion, Finetuned the conversion fine-tuned and
	// SoftmaxFinetuned the base fine-tuned with the same settings.
	Base, Converted, Finetuned, SoftmaxFinetuned string
	// ValBefore and ValAfter are the SSMax model's validation loss before
	// and after fine-tuning; SoftmaxValBefore and SoftmaxValAfter the
	// softmax model's.
	ValBefore, ValAfter               *float64
	SoftmaxValBefore, SoftmaxValAfter *float64
	Steps                             int
	Length                            *LengthTable
}

// LengthTable is the mean loss per context length of the two fine-tuned
// models on the same held-out samples (NaN where a model cannot run), and
// their paired difference.
type LengthTable struct {
	Lengths  []int
	TrainLen int
	// RoPEThetaScale is the RoPE theta factor the lengths were read with.
	RoPEThetaScale float64
	Softmax, SSMax []float64
	// Diff is the mean over samples of SSMax's loss minus softmax's on the
	// same sample, SE its standard error (sample sd / sqrt(samples)): a
	// difference within 2 SE is within the noise of the evaluation.
	Diff, SE []float64
}

// WithinNoise reports whether the difference at length index i is within
// two standard errors.
func (t *LengthTable) WithinNoise(i int) bool { return math.Abs(t.Diff[i]) <= 2*t.SE[i] }

// Defaults returns the demo's default options.
func Defaults() Options {
	return Options{
		Out: "ssmax-demo", Data: filepath.Join(runtime.GOROOT(), "src"), Glob: "*.go",
		Steps: 60, Lengths: []int{128, 256, 512, 1024}, Samples: 8, RoPEThetaScale: 1,
	}
}

func (o *Options) log(format string, a ...any) {
	if o.Log != nil {
		o.Log(fmt.Sprintf(format, a...))
	}
}

// Run performs the demo.
func Run(ctx context.Context, o Options) (*Report, error) {
	lock, err := outlock.Path(o.Out)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	if err := prepareOut(o.Out); err != nil {
		return nil, err
	}
	r := &Report{
		Base:             filepath.Join(o.Out, "base"),
		Converted:        filepath.Join(o.Out, "ssmax"),
		Finetuned:        filepath.Join(o.Out, "finetune", "final"),
		SoftmaxFinetuned: filepath.Join(o.Out, "finetune-softmax", "final"),
	}
	if err := extract(r.Base); err != nil {
		return nil, err
	}
	o.log("bundled softmax checkpoint written to %s", r.Base)
	if _, err := convert.Run(ctx, convert.Options{
		Src: r.Base, Dst: r.Converted, Variant: attnscale.SSMax, Init: convert.InitMatch,
		Command: "ssmax demo (convert --variant ssmax --init match)",
	}); err != nil {
		return nil, err
	}
	o.log("converted to SSMax (s = 1/ln 256 in every head): %s", r.Converted)
	// The same fine-tuning (steps, data order, learning rates) for both.
	cfg := finetune.Defaults()
	cfg.Data, cfg.Glob = o.Data, o.Glob
	cfg.Steps, cfg.BatchSize, cfg.SeqLen = o.Steps, 8, 256
	cfg.LR, cfg.MinLR, cfg.Warmup = 1e-3, 1e-4, 5
	cfg.SSMaxLR = 1e-2
	cfg.Seed = bundledSeed
	cfg.EvalEvery, cfg.EvalBatches, cfg.Keep = o.Steps, 8, 1
	ssmax := cfg
	ssmax.Model, ssmax.Out = r.Converted, filepath.Join(o.Out, "finetune")
	res, err := finetune.Run(ctx, ssmax, o.Hooks)
	if err != nil {
		return nil, err
	}
	r.ValBefore, r.ValAfter, r.Steps = res.FirstValLoss, res.ValLoss, res.Steps
	o.log("fine-tuned the SSMax model %d steps: %s", res.Steps, r.Finetuned)
	soft := cfg
	soft.Model, soft.Out = r.Base, filepath.Join(o.Out, "finetune-softmax")
	if res, err = finetune.Run(ctx, soft, o.Hooks); err != nil {
		return nil, err
	}
	r.SoftmaxValBefore, r.SoftmaxValAfter = res.FirstValLoss, res.ValLoss
	o.log("fine-tuned the softmax model %d steps (same data and settings): %s", res.Steps, r.SoftmaxFinetuned)
	if len(o.Lengths) > 0 {
		if r.Length, err = lengthTable(ctx, r.SoftmaxFinetuned, r.Finetuned, o); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// prepareOut removes an earlier demo's output; any other existing path is
// left alone and reported.
func prepareOut(out string) error {
	if _, err := os.Lstat(out); err == nil {
		if _, err := os.Stat(filepath.Join(out, marker)); err != nil {
			return fmt.Errorf("%s exists and was not written by ssmax demo: choose another --out", out)
		}
		if err := os.RemoveAll(out); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(out, 0o777); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(out, marker), []byte("written by ssmax demo; a later demo run replaces this directory\n"))
}

// extract writes the bundled checkpoint to dir.
func extract(dir string) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	return fs.WalkDir(bundled, "base", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := bundled.ReadFile(p)
		if err != nil {
			return err
		}
		return atomicfile.WriteFile(filepath.Join(dir, filepath.Base(p)), b)
	})
}
