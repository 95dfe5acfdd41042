package finetune

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/nlpodyssey/spago/ag"
	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/internal/outlock"
	"github.com/ssmax/ssmax/model"
)

// Metrics is one line of OUT/metrics.jsonl.
type Metrics struct {
	Step         int     `json:"step"`
	Loss         float64 `json:"loss"`
	LR           float64 `json:"lr"`
	GradNorm     float64 `json:"grad_norm"`
	TokensPerSec float64 `json:"tokens_per_sec"`
	Tokens       int64   `json:"tokens"`
	Elapsed      float64 `json:"elapsed_seconds"`
	// SMean is the mean s of each layer, 0 for a layer without s (softmax
	// or the fixed variant); nil, and left out of the line, when no layer
	// has s.
	SMean   []float64 `json:"s_mean,omitempty"`
	ValLoss *float64  `json:"val_loss,omitempty"`
	// RetrievalLoss is the loss on the answer tokens of fixed retrieval
	// documents at the training length (package retrieval; chance is
	// ln 10 per digit), logged with ValLoss when the run mixes retrieval
	// documents into its data.
	RetrievalLoss *float64 `json:"retrieval_answer_loss,omitempty"`
}

// Hooks let a caller watch a run (progress bars, logs). All are optional.
type Hooks struct {
	// Start is called once the run is set up, with the first and last step.
	Start func(first, total int, info string)
	// Step is called when step m.Step is complete: its metrics line is
	// written and its step_N checkpoint, if it saves one, is complete (the
	// last step's final/ checkpoint follows the call).
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
	// retrievalIn and retrievalTargets are the fixed retrieval validation
	// documents (built on first use).
	retrievalIn      *model.Input
	retrievalTargets []int
}

// log reports an event through Hooks.Log.
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
	// One run per output directory: a second run on it fails here, before
	// it reads or writes anything. --out gets what mkdir gives it: 0777
	// less the umask.
	lock, err := outlock.Dir(cfg.Out)
	if errors.Is(err, outlock.ErrBusy) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("--out %s: %w", cfg.Out, err)
	}
	defer lock.Release()
	if err := removeLeftovers(cfg.Out); err != nil {
		return nil, err
	}
	resumeFrom, err := t.setupModel()
	if err != nil {
		return nil, err
	}
	t.m.SetActivationCheckpointing(cfg.ActivationCheckpointing)
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

// loop is the training loop, one optimizer step per iteration: data ->
// forward -> loss -> backward (GradAccum micro-batches) -> clip -> AdamW
// step -> metrics line -> validation and checkpoint every EvalEvery and
// SaveEvery steps; the final checkpoint after the last step.
func (t *trainer) loop(ctx context.Context) (*Result, error) {
	c := &t.cfg
	metrics, err := os.OpenFile(filepath.Join(c.Out, metricsFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer metrics.Close()
	res := &Result{}
	if t.step == 0 && t.val != nil {
		v, err := t.evaluate()
		if err != nil {
			return nil, err
		}
		res.FirstValLoss = &v
		t.log("validation loss before training: %.4f", v)
	}
	if t.hooks.Start != nil {
		t.hooks.Start(t.step, t.total, fmt.Sprintf("%s, %d trainable parameters", t.m.Spec, countValues(t.opt.params())))
	}
	saveEvery := c.SaveEvery
	if saveEvery <= 0 {
		saveEvery = c.EvalEvery
	}
	var lastLoss float64
	for t.step < t.total {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if c.SwitchToSSMaxAt > 0 && t.step == c.SwitchToSSMaxAt && !t.switched {
			if err := t.switchToSSMax(); err != nil {
				return nil, err
			}
		}
		start := time.Now()
		// Errors name the step being made as metrics.jsonl numbers it
		// (t.step+1); a non-finite loss, gradient or weight stops the run
		// before anything saves it.
		lr := LearningRate(c.Schedule, t.step, c.Warmup, t.total, c.LR, c.MinLR)
		var lossSum float64
		for micro := 0; micro < c.GradAccum; micro++ {
			b, err := t.nextBatch(micro)
			if err != nil {
				return nil, fmt.Errorf("step %d: %w", t.step, err)
			}
			loss, err := t.m.Loss(model.Input{IDs: b.Inputs, Segments: b.Segments}, b.Targets)
			if err != nil {
				return nil, fmt.Errorf("step %d: %w", t.step+1, err)
			}
			if err := ag.Backward(loss); err != nil {
				return nil, fmt.Errorf("step %d: backward: %w", t.step+1, err)
			}
			lossSum += loss.Value().Item().F64()
		}
		lastLoss = lossSum / float64(c.GradAccum)
		if math.IsNaN(lastLoss) || math.IsInf(lastLoss, 0) {
			return nil, fmt.Errorf("step %d: loss is %v; lower --lr or check the data", t.step+1, lastLoss)
		}
		norm := t.opt.scaleAndClip(c.GradAccum, c.ClipNorm)
		if math.IsNaN(norm) || math.IsInf(norm, 0) {
			return nil, fmt.Errorf("step %d: gradient norm is %v; lower --lr or check the data", t.step+1, norm)
		}
		if err := t.opt.step(lr); err != nil {
			return nil, fmt.Errorf("step %d: %w; lower --lr", t.step+1, err)
		}
		t.step++
		t.tokens += c.tokensPerStep()
		dt := time.Since(start).Seconds()
		t.elapsed += dt
		rec := Metrics{Step: t.step, Loss: lastLoss, LR: lr, GradNorm: norm, TokensPerSec: float64(c.tokensPerStep()) / dt,
			Tokens: t.tokens, Elapsed: t.elapsed, SMean: t.sMeans()}
		if t.val != nil && c.EvalEvery > 0 && (t.step%c.EvalEvery == 0 || t.step == t.total) {
			v, err := t.evaluate()
			if err != nil {
				return nil, err
			}
			rec.ValLoss = &v
			res.ValLoss = &v
		}
		if c.MixRetrieval > 0 && c.EvalEvery > 0 && (t.step%c.EvalEvery == 0 || t.step == t.total) {
			v, err := t.retrievalLoss()
			if err != nil {
				return nil, err
			}
			rec.RetrievalLoss = &v
		}
		line, _ := json.Marshal(rec)
		if _, err := metrics.Write(append(line, '\n')); err != nil {
			return nil, err
		}
		if saveEvery > 0 && t.step%saveEvery == 0 && t.step < t.total {
			if err := t.save(stepDirName(t.step), lastLoss); err != nil {
				return nil, err
			}
			if err := prune(c.Out, c.Keep); err != nil {
				return nil, err
			}
			t.log("checkpoint %s", stepDirName(t.step))
		}
		if t.hooks.Step != nil {
			t.hooks.Step(rec, t.total)
		}
	}
	if err := t.save(finalDir, lastLoss); err != nil {
		return nil, err
	}
	res.Steps, res.Final, res.LastLoss = t.step, filepath.Join(c.Out, finalDir), lastLoss
	return res, nil
}

// save writes the checkpoint OUT/name of the current step.
func (t *trainer) save(name string, loss float64) error {
	st := trainerState{Step: t.step, Tokens: t.tokens, Loader: t.train.State(), AdamSteps: t.opt.timeSteps(),
		Switched: t.switched, Elapsed: t.elapsed, Config: t.cfg, LastLoss: loss, TotalSteps: t.total}
	return saveStep(t.cfg.Out, name, t.m, t.opt, st)
}

// evaluate is the mean loss over up to EvalBatches validation batches.
func (t *trainer) evaluate() (float64, error) {
	t.val.Reset()
	var sum float64
	n := 0
	for n < max(1, t.cfg.EvalBatches) {
		b, ok := t.val.Next()
		if !ok {
			break
		}
		loss, err := t.m.Loss(model.Input{IDs: b.Inputs, Segments: b.Segments}, b.Targets)
		if err != nil {
			return 0, fmt.Errorf("validation: %w", err)
		}
		sum += loss.Value().Item().F64()
		n++
	}
	if n == 0 {
		return math.NaN(), nil
	}
	return sum / float64(n), nil
}

// sMeans is Metrics.SMean: the mean s of each layer, 0 for a layer without
// s, nil when no layer has s.
func (t *trainer) sMeans() []float64 {
	var out []float64
	any := false
	for l := 0; l < t.m.Spec.Layers; l++ {
		a := t.m.Attention(l)
		if a.S == nil {
			out = append(out, 0)
			continue
		}
		any = true
		var s float64
		for _, v := range a.S.Values() {
			s += float64(v)
		}
		out = append(out, s/float64(len(a.S.Values())))
	}
	if !any {
		return nil
	}
	return out
}

// countValues is the number of values of ps.
func countValues(ps []*model.Param) int {
	n := 0
	for _, p := range ps {
		n += p.Len()
	}
	return n
}
