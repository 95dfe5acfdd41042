package finetune

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/model"
)

// Metrics is one line of OUT/metrics.jsonl.
type Metrics struct {
	Step         int       `json:"step"`
	Loss         float64   `json:"loss"`
	LR           float64   `json:"lr"`
	GradNorm     float64   `json:"grad_norm"`
	TokensPerSec float64   `json:"tokens_per_sec"`
	Tokens       int64     `json:"tokens"`
	Elapsed      float64   `json:"elapsed_seconds"`
	SMean        []float64 `json:"s_mean,omitempty"` // per layer; NaN-free: layers without s are omitted as null
	ValLoss      *float64  `json:"val_loss,omitempty"`
}

// Hooks let a caller watch a run (progress bars, logs). All are optional.
type Hooks struct {
	// Start is called once the run is set up, with the first and last step.
	Start func(first, total int, info string)
	// Step is called after each optimizer step.
	Step func(m Metrics, total int)
	// Log reports events (checkpoints, evaluations, the SSMax switch).
	Log func(msg string)
}

// Result summarises a finished run.
type Result struct {
	Steps    int
	Final    string
	LastLoss float64
	ValLoss  *float64
	// FirstValLoss is the validation loss before the first step (nil if
	// there is no validation data).
	FirstValLoss *float64
}

// trainer holds a run's state.
type trainer struct {
	cfg      Config
	hooks    Hooks
	m        *model.Model
	tok      data.Tokenizer
	train    *data.Loader
	val      *data.EvalLoader
	opt      *optimizer
	ds       *data.Dataset
	step     int
	total    int
	tokens   int64
	elapsed  float64
	switched bool
}

func (t *trainer) log(format string, a ...any) {
	if t.hooks.Log != nil {
		t.hooks.Log(fmt.Sprintf(format, a...))
	}
}

// trainGCPercent is the garbage collector's target while training (unless
// GOGC is set): the weights, their moments and gradients live for the whole
// run and each step allocates its activations, so Go's default of 100 lets
// the heap grow to twice the live memory before collecting. The heap is
// almost all pointer-free float slices, so more frequent collections cost
// little CPU, and the peak RSS stays near the live memory.
const trainGCPercent = 20

// Run trains according to cfg. It stops cleanly when ctx is cancelled,
// leaving the newest complete checkpoint in place.
func Run(ctx context.Context, cfg Config, hooks Hooks) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(trainGCPercent))
	}
	t := &trainer{cfg: cfg, hooks: hooks, total: cfg.totalSteps()}
	if err := os.MkdirAll(cfg.Out, 0o777); err != nil {
		return nil, err
	}
	resumeFrom, err := t.setupModel()
	if err != nil {
		return nil, err
	}
	if err := t.setupData(ctx); err != nil {
		return nil, err
	}
	defer t.ds.Close()
	if err := t.setupOptimizer(); err != nil {
		return nil, err
	}
	if resumeFrom != "" {
		if err := t.resume(resumeFrom); err != nil {
			return nil, err
		}
	} else if err := truncateMetrics(filepath.Join(cfg.Out, metricsFile), -1); err != nil {
		return nil, err
	}
	if err := t.writeRunConfig(); err != nil {
		return nil, err
	}
	return t.loop(ctx)
}

// setupModel loads or creates the model; it returns the step directory to
// resume from, if any.
func (t *trainer) setupModel() (string, error) {
	c := &t.cfg
	if c.Resume {
		if steps := completeSteps(c.Out); len(steps) > 0 {
			dir := filepath.Join(c.Out, stepDirName(steps[len(steps)-1]))
			m, err := model.Open(dir, "", model.Options{RoPEThetaScale: c.RoPEScale})
			if err != nil {
				return "", fmt.Errorf("resume from %s: %w", dir, err)
			}
			t.m = m
			return dir, nil
		}
		t.log("--resume: no complete checkpoint in %s, starting from the beginning", c.Out)
	}
	if c.Model != "" {
		m, err := model.Open(c.Model, "", model.Options{RoPEThetaScale: c.RoPEScale})
		if err != nil {
			return "", err
		}
		t.m = m
		return "", nil
	}
	preset, err := LoadPreset(c.Arch)
	if err != nil {
		return "", err
	}
	m, err := model.New(preset, c.Seed)
	if err != nil {
		return "", fmt.Errorf("%s: %w", c.Arch, err)
	}
	if c.RoPEScale > 0 {
		m.RoPETheta *= c.RoPEScale
	}
	t.m = m
	if c.Attention != "softmax" {
		if err := t.applySSMax(c.Attention, arch.InitMatch); err != nil {
			return "", err
		}
	}
	return "", nil
}

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
