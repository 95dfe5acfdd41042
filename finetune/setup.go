package finetune

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/internal/atomicfile"
	"github.com/ssmax/ssmax/model"
	"github.com/ssmax/ssmax/safetensors"
)

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
		m.ScaleRoPETheta(c.RoPEScale)
	}
	t.m = m
	if c.Attention != "softmax" {
		if err := t.applySSMax(c.Attention, arch.InitMatch); err != nil {
			return "", err
		}
	}
	return "", nil
}

// setupData loads the tokenizer and corpus, checks them against the model,
// and builds the training and validation iterators.
func (t *trainer) setupData(ctx context.Context) error {
	c, m := &t.cfg, t.m
	tok, err := t.loadTokenizer()
	if err != nil {
		return err
	}
	if tok.VocabSize() > m.Spec.Vocab {
		return fmt.Errorf("tokenizer %s has %d ids but the model's vocabulary is %d", tok.Name(), tok.VocabSize(), m.Spec.Vocab)
	}
	t.tok = tok
	if tok.Name() == "bytes" {
		if err := m.Config.Set(data.TokenizerKey, "bytes"); err != nil {
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
	train, val, err := data.SplitDataset(ds, c.ValFraction, c.splitSeed())
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

// loadTokenizer loads the tokenizer of the model being fine-tuned, as every
// command that reads a checkpoint does (data.LoadModelTokenizer). A model
// pretrained from a preset has no checkpoint yet: it reads bytes unless
// --tokenizer names another.
func (t *trainer) loadTokenizer() (data.Tokenizer, error) {
	c := &t.cfg
	if c.Model != "" {
		return data.LoadModelTokenizer(c.Model, c.Tokenizer)
	}
	kind := c.Tokenizer
	if kind == "" || kind == "auto" {
		kind = "bytes"
	}
	return data.LoadTokenizer(filepath.Dir(c.Arch), kind, t.m.Spec.EOS, t.m.Spec.BOS)
}

// streamLen is the number of tokens of s, 0 for none.
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

// writeRunConfig writes OUT/run_config.json, the run's configuration.
func (t *trainer) writeRunConfig() error {
	b, err := json.MarshalIndent(t.cfg, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(t.cfg.Out, runConfigFile), append(b, '\n'))
}
