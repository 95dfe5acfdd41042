package finetune

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/nlpodyssey/spago/ag"
	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/model"
	"github.com/ssmax/ssmax/safetensors"
)

// TokenizerKey is the config.json key with which ssmax records that a model
// it trained reads bytes ("bytes"), so later commands pick the same tokenizer.
// It is data.TokenizerKey.
const TokenizerKey = data.TokenizerKey

// TokenizerKind resolves --tokenizer "auto" for a model: the kind recorded
// in its config, else "auto" (tokenizer files in dir).
func TokenizerKind(m *model.Model, kind string) string {
	if kind == "" || kind == "auto" {
		var k string
		if ok, _ := m.Config.Decode(TokenizerKey, &k); ok && k != "" {
			return k
		}
		return "auto"
	}
	return kind
}

// setupData loads the tokenizer and corpus, checks them against the model,
// and builds the training and validation iterators.
func (t *trainer) setupData(ctx context.Context) error {
	c, m := &t.cfg, t.m
	dir := c.Model
	if dir == "" {
		dir = filepath.Dir(c.Arch)
	}
	kind := TokenizerKind(m, c.Tokenizer)
	if c.Arch != "" && kind == "auto" {
		kind = "bytes"
	}
	tok, err := data.LoadTokenizer(dir, kind, m.Spec.EOS, m.Spec.BOS)
	if err != nil {
		return err
	}
	if tok.VocabSize() > m.Spec.Vocab {
		return fmt.Errorf("tokenizer %s has %d ids but the model's vocabulary is %d", tok.Name(), tok.VocabSize(), m.Spec.Vocab)
	}
	t.tok = tok
	if tok.Name() == "bytes" {
		if err := m.Config.Set(TokenizerKey, "bytes"); err != nil {
			return err
		}
	}
	if m.Spec.Position == arch.LearnedPositions && c.SeqLen > m.Spec.Context {
		return fmt.Errorf("--seq-len %d exceeds the model's %d learned positions", c.SeqLen, m.Spec.Context)
	}
	if m.Spec.Position == arch.RoPEPositions && c.SeqLen > m.Spec.Context && c.RoPEScale <= 1 {
		return fmt.Errorf("--seq-len %d exceeds the model's context %d: give --rope-theta-scale to train beyond it", c.SeqLen, m.Spec.Context)
	}
	ds, err := data.LoadDataset(ctx, data.DatasetOptions{Input: c.Data, Glob: c.Glob, Tokenizer: tok})
	if err != nil {
		return err
	}
	if err := ds.Validate(m.Spec.Vocab); err != nil {
		ds.Close()
		return err
	}
	train, val, err := data.SplitDataset(ds, c.ValFraction, c.Seed)
	if err != nil {
		ds.Close()
		return err
	}
	if t.train, err = data.NewLoader(train, c.SeqLen, c.BatchSize, c.Seed); err != nil {
		ds.Close()
		return fmt.Errorf("%s: %w", c.Data, err)
	}
	if val != nil && val.Len() > c.SeqLen {
		if t.val, err = data.NewEvalLoader(val, c.SeqLen, c.BatchSize); err != nil {
			ds.Close()
			return err
		}
	}
	t.ds = ds
	t.log("data: %d tokens (%d train, %d validation), tokenizer %s", ds.NumTokens(), train.Len(), streamLen(val), tok.Name())
	return nil
}

func streamLen(s *data.Stream) int {
	if s == nil {
		return 0
	}
	return s.Len()
}

// setupOptimizer chooses the trainable parameters and registers them.
func (t *trainer) setupOptimizer() error {
	t.opt = newOptimizer(&t.cfg)
	ps, err := selectTrainable(t.m.Params(), &t.cfg)
	if err != nil {
		if t.cfg.SwitchToSSMaxAt > 0 && t.cfg.Train == "ssmax" {
			return nil // the SSMax parameters arrive at the switch
		}
		return err
	}
	t.opt.add(ps...)
	return nil
}

// resume restores the trainer state of a step directory.
func (t *trainer) resume(dir string) error {
	st, err := readState(dir)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	f, err := safetensors.Open(filepath.Join(dir, stateDir, momentsFile))
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	defer f.Close()
	if err := restoreMaster(f, t.m); err != nil {
		return err
	}
	if err := t.opt.restore(f, st.AdamSteps); err != nil {
		return err
	}
	if err := t.train.Restore(st.Loader); err != nil {
		return fmt.Errorf("resume %s: %w", dir, err)
	}
	t.step, t.tokens, t.elapsed, t.switched = st.Step, st.Tokens, st.Elapsed, st.Switched
	t.log("resumed from %s at step %d", dir, st.Step)
	return truncateMetrics(filepath.Join(t.cfg.Out, metricsFile), st.Step)
}

func (t *trainer) writeRunConfig() error {
	b, err := json.MarshalIndent(t.cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(t.cfg.Out, runConfigFile), append(b, '\n'), 0o644)
}

// loop is the training loop.
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
		lr := LearningRate(c.Schedule, t.step, c.Warmup, t.total, c.LR, c.MinLR)
		var lossSum float64
		for micro := 0; micro < c.GradAccum; micro++ {
			b := t.train.Next()
			loss, err := t.m.Loss(model.Input{IDs: b.Inputs, Segments: b.Segments}, b.Targets)
			if err != nil {
				return nil, fmt.Errorf("step %d: %w", t.step, err)
			}
			if err := ag.Backward(loss); err != nil {
				return nil, fmt.Errorf("step %d: backward: %w", t.step, err)
			}
			lossSum += loss.Value().Item().F64()
		}
		lastLoss = lossSum / float64(c.GradAccum)
		if math.IsNaN(lastLoss) || math.IsInf(lastLoss, 0) {
			return nil, fmt.Errorf("step %d: loss is %v; lower --lr or check the data", t.step, lastLoss)
		}
		norm := t.opt.scaleAndClip(c.GradAccum, c.ClipNorm)
		if err := t.opt.step(lr); err != nil {
			return nil, err
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
		line, _ := json.Marshal(rec)
		if _, err := metrics.Write(append(line, '\n')); err != nil {
			return nil, err
		}
		if t.hooks.Step != nil {
			t.hooks.Step(rec, t.total)
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
	}
	if err := t.save(finalDir, lastLoss); err != nil {
		return nil, err
	}
	res.Steps, res.Final, res.LastLoss = t.step, filepath.Join(c.Out, finalDir), lastLoss
	return res, nil
}

func (t *trainer) save(name string, loss float64) error {
	st := trainerState{Step: t.step, Tokens: t.tokens, Loader: t.train.State(), AdamSteps: t.opt.timeSteps(),
		Switched: t.switched, Elapsed: t.elapsed, Config: t.cfg, LastLoss: loss, TotalSteps: t.total}
	return saveStep(t.cfg.Out, name, t.m, t.opt, st)
}

// switchToSSMax converts the softmax layers and makes the new parameters
// trainable (zero moments, their own Adam step count).
func (t *trainer) switchToSSMax() error {
	before := map[*model.Param]bool{}
	for _, p := range t.m.Params() {
		before[p] = true
	}
	if err := t.applySSMax(t.cfg.Variant, t.cfg.Init); err != nil {
		return fmt.Errorf("switch to SSMax at step %d: %w", t.step, err)
	}
	var added []*model.Param
	for _, p := range t.m.Params() {
		if !before[p] {
			added = append(added, p)
		}
	}
	trainable, err := selectTrainable(added, &t.cfg)
	if err == nil {
		t.opt.add(trainable...)
	}
	t.switched = true
	t.log("step %d: switched to SSMax variant %s (init %s), %d new parameters", t.step, t.cfg.Variant, t.cfg.Init, len(added))
	return nil
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

// sMeans is the mean s of each layer (0 for layers without s).
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

func countValues(ps []*model.Param) int {
	n := 0
	for _, p := range ps {
		n += len(p.Values())
	}
	return n
}
