package eval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/internal/outlock"
	"github.com/ssmax/ssmax/model"
)

// Checkpoints are the models an evaluation (Length, NIAH, Attention) runs
// over, one after the other, and how they are read.
type Checkpoints struct {
	// Models are checkpoint directories, labelled in tables and plots by
	// Labels, or by ModelLabels(Models) when Labels is nil.
	Models []string
	// Labels, if not nil, are the models' labels (one per model).
	Labels []string
	// RoPEThetaScale multiplies RoPE theta, to read a model beyond its
	// training length (0 means 1).
	RoPEThetaScale float64
	// Tokenizer is "auto" (or ""; each model's tokenizer files, or bytes
	// when it was trained on bytes), "bytes", or a tokenizer path; see
	// data.LoadModelTokenizer.
	Tokenizer string
	// Logger, if not nil, receives a line per model opened and per data
	// set read.
	Logger *slog.Logger
	// Progress, if not nil, receives the work done on the model labelled
	// model and its total.
	Progress func(model string, done, total int)
}

// check validates the options of the evaluation named kind.
func (c *Checkpoints) check(kind string) error {
	if len(c.Models) == 0 {
		return fmt.Errorf("eval %s needs --model DIR", kind)
	}
	if c.RoPEThetaScale < 0 {
		return fmt.Errorf("--rope-theta-scale %v: want a positive factor", c.RoPEThetaScale)
	}
	return nil
}

// log returns the logger, one that discards everything when none is set.
func (c *Checkpoints) log() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// scale is RoPEThetaScale with its default.
func (c *Checkpoints) scale() float64 {
	if c.RoPEThetaScale == 0 {
		return 1
	}
	return c.RoPEThetaScale
}

// loadedModel is one opened model of an evaluation.
type loadedModel struct {
	path, label string
	m           *model.Model
	tok         data.Tokenizer
	// tokKey identifies the tokenizer, so models that share it share
	// tokenized data.
	tokKey string
	// progress reports this model's progress (nil when not watched).
	progress func(done, total int)
}

// open loads the model at path, for inference, and its tokenizer.
func (c *Checkpoints) open(path, label string) (*loadedModel, error) {
	m, err := model.Open(path, "", model.Options{RoPEThetaScale: c.scale(), Inference: true})
	if err != nil {
		return nil, fmt.Errorf("--model %s: %w", path, err)
	}
	tok, err := data.LoadModelTokenizer(path, c.Tokenizer)
	if err != nil {
		return nil, fmt.Errorf("--tokenizer %s: %w", c.Tokenizer, err)
	}
	if tok.VocabSize() > m.Spec.Vocab {
		return nil, fmt.Errorf("--model %s: tokenizer %s has %d ids but the model's vocabulary is %d", path, tok.Name(), tok.VocabSize(), m.Spec.Vocab)
	}
	key := fmt.Sprintf("bytes/%d", tok.EOS())
	if tok.Name() != "bytes" {
		key = c.Tokenizer + "|" + filepath.Clean(path)
	}
	c.log().Info("model", "dir", path, "family", m.Spec.Family, "layers", m.Spec.Layers, "attention", m.Attention(0).Variant.String(), "tokenizer", tok.Name())
	lm := &loadedModel{path: path, label: label, m: m, tok: tok, tokKey: key}
	if c.Progress != nil {
		lm.progress = func(done, total int) { c.Progress(label, done, total) }
	}
	return lm, nil
}

// labelled is a per-model result that records which model it describes.
type labelled interface {
	describe(label, path string, ropeThetaScale float64)
}

// evaluate opens the models one after the other and runs one on each,
// labelling its result; each model is dropped before the next is opened.
// An error names the model it came from.
func evaluate[R labelled](ctx context.Context, c *Checkpoints, one func(ctx context.Context, lm *loadedModel) (R, error)) ([]R, error) {
	labels := c.Labels
	if labels == nil {
		labels = ModelLabels(c.Models)
	}
	if len(labels) != len(c.Models) {
		return nil, fmt.Errorf("%d labels for %d models", len(labels), len(c.Models))
	}
	var out []R
	for i, path := range c.Models {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		lm, err := c.open(path, labels[i])
		if err != nil {
			return nil, err
		}
		res, err := one(ctx, lm)
		if err != nil {
			return nil, fmt.Errorf("--model %s: %w", path, err)
		}
		res.describe(lm.label, lm.path, c.scale())
		out = append(out, res)
	}
	return out, nil
}

// LockOut takes the lock of the report directory dir (package outlock),
// creating it as mkdir does, so that two evaluations writing one --out do
// not both proceed: the second fails at once, naming the first's pid. Take
// it before evaluating and call release when done: it removes the lock
// file, and dir itself when LockOut created it and nothing was written
// into it (the evaluation failed).
func LockOut(dir string) (release func(), err error) {
	_, statErr := os.Stat(dir)
	lock, err := outlock.Dir(dir)
	if errors.Is(err, outlock.ErrBusy) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("--out %s: %w", dir, err)
	}
	return func() {
		lock.Release()
		if statErr != nil {
			os.Remove(dir) // fails, as it should, once the report is in it
		}
	}, nil
}

// saveReport creates dir as mkdir does (0777 less the umask) and writes an
// evaluation's files into it with save; it returns the paths written.
func saveReport[R any](dir, kind string, results []R, save func(string, []R) error) ([]string, error) {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, fmt.Errorf("--out %s: %w", dir, err)
	}
	if err := save(dir, results); err != nil {
		return nil, err
	}
	var files []string
	for _, ext := range []string{".json", ".csv", ".png"} {
		files = append(files, filepath.Join(dir, kind+ext))
	}
	return files, nil
}

// checkLengths validates a list of context or prompt lengths.
func checkLengths(lengths []int) error {
	if len(lengths) == 0 {
		return fmt.Errorf("need at least one length")
	}
	for _, L := range lengths {
		if L < 1 {
			return fmt.Errorf("length %d: want at least 1", L)
		}
	}
	return nil
}

// checkDepths validates a list of needle depths.
func checkDepths(depths []float64) error {
	if len(depths) == 0 {
		return fmt.Errorf("need at least one depth")
	}
	for _, d := range depths {
		if !(d >= 0 && d <= 1) {
			return fmt.Errorf("depth %v not in [0, 1]", d)
		}
	}
	return nil
}

// NeedleOptions are the needle-in-a-haystack prompts that NIAH and
// Attention build; the same options give every model the same prompts.
type NeedleOptions struct {
	// Haystack is the filler text: a file, or a directory with Glob (see
	// OpenHaystack).
	Haystack, Glob string
	// Needle is the needle template, with {number} (default DefaultNeedle);
	// Question ends the prompt (default DefaultQuestion).
	Needle, Question string
	// Digits is the number of digits of the needle's number (default 5).
	Digits int
	// Trials is the number of prompts per cell (NIAH, default 4) or
	// averaged (Attention, default 1), each with its own number and
	// haystack start.
	Trials int
	// Seed fixes the numbers and the haystack starts.
	Seed uint64
}

// open validates the prompt options of the evaluation named kind and
// opens the haystack.
func (n *NeedleOptions) open(kind string) (*Haystack, error) {
	if n.Haystack == "" {
		return nil, fmt.Errorf("eval %s needs --haystack PATH", kind)
	}
	o := NeedleRetrievalOptions{Needle: n.Needle, Question: n.Question, Digits: n.Digits}
	o.defaults()
	if err := (needleText{needle: o.Needle, question: o.Question, digits: o.Digits}).check(); err != nil {
		return nil, err
	}
	if n.Trials < 0 {
		return nil, fmt.Errorf("--trials %d: want at least 1", n.Trials)
	}
	h, err := OpenHaystack(n.Haystack, n.Glob)
	if err != nil {
		return nil, fmt.Errorf("--haystack %s: %w", n.Haystack, err)
	}
	return h, nil
}
