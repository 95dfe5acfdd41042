package eval

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"

	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/model"
)

// Generator continues a prompt. NeedleRetrieval asks it for the answer to each
// needle-in-a-haystack prompt; ModelGenerator is the language model
// implementation, tests pass stubs.
type Generator interface {
	// Generate returns at most maxNew tokens continuing prompt (it may stop
	// earlier, e.g. at a line end).
	Generate(prompt []int, maxNew int) ([]int, error)
}

// prefillBudget bounds the logits a prefill Feed call returns (values):
// longer prompts are fed in chunks of rows, so a prompt never holds a
// [tokens, vocab] matrix larger than 256 MiB.
const prefillBudget = 64 << 20

// ModelGenerator decodes greedily with a model's KV cache: the prompt is
// fed in one Decoder.Feed call (in chunks of rows only when its logits
// would exceed 256 MiB), then one token per step.
type ModelGenerator struct {
	Model *model.Model
	// Stop, if not nil, ends generation after a token for which it returns
	// true (the token is included in the output).
	Stop func(id int) bool
}

// NewModelGenerator returns a greedy generator of m that stops at stop.
func NewModelGenerator(m *model.Model, stop func(id int) bool) *ModelGenerator {
	return &ModelGenerator{Model: m, Stop: stop}
}

// prefill feeds prompt to d and returns the logits of its last position.
func prefill(d *model.Decoder, prompt []int, vocab int) ([]float32, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("empty prompt")
	}
	chunk := max(1, prefillBudget/vocab)
	var logits []float32
	for lo := 0; lo < len(prompt); lo += chunk {
		hi := min(lo+chunk, len(prompt))
		var err error
		if logits, err = d.Feed(prompt[lo:hi]); err != nil {
			return nil, err
		}
	}
	return logits[len(logits)-vocab:], nil
}

// argmax returns the index of the largest value (the first on ties).
func argmax(row []float32) int {
	best := 0
	for i, x := range row {
		if x > row[best] {
			best = i
		}
	}
	return best
}

// Generate decodes greedily.
func (g *ModelGenerator) Generate(prompt []int, maxNew int) ([]int, error) {
	d := g.Model.NewDecoder()
	vocab := g.Model.Spec.Vocab
	last, err := prefill(d, prompt, vocab)
	if err != nil {
		return nil, err
	}
	var out []int
	for len(out) < maxNew {
		id := argmax(last)
		out = append(out, id)
		if len(out) == maxNew || (g.Stop != nil && g.Stop(id)) {
			break
		}
		if last, err = d.Feed([]int{id}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// LineEnd returns a stop function for tok's ids: true for EOS and for every
// token whose text contains a newline.
func LineEnd(tok data.Tokenizer) func(id int) bool {
	eos := tok.EOS()
	cache := map[int]bool{}
	return func(id int) bool {
		if id == eos {
			return true
		}
		stop, ok := cache[id]
		if !ok {
			stop = strings.Contains(tok.Decode([]int{id}), "\n")
			cache[id] = stop
		}
		return stop
	}
}

// NeedleRetrievalOptions configures NeedleRetrieval.
type NeedleRetrievalOptions struct {
	// Lengths are the prompt lengths in tokens (haystack, needle and
	// question together).
	Lengths []int
	// Depths are the needle positions as fractions of the haystack: 0 start,
	// 1 end. The needle starts the line nearest to the depth.
	Depths []float64
	// Trials per (length, depth) cell, default 4; each has its own number,
	// and trial t takes its haystack from the t-th seeded random file on.
	Trials int
	// Seed fixes the numbers and haystack starts: the same seed gives the
	// same prompts to every model with the same tokenizer.
	Seed uint64
	// Needle is the needle template, with {number} (default DefaultNeedle);
	// Question the question that ends the prompt (default DefaultQuestion).
	Needle, Question string
	// Digits is the number of digits of the needle's number (default 5).
	Digits int
	// MaxTokens is the longest sequence the generator reads (a model's
	// learned positions), 0 for no limit: cells whose prompt and answer
	// exceed it are reported as NA.
	MaxTokens int
	// Progress, if not nil, receives the trials done and the total.
	Progress func(done, total int)
}

func (o *NeedleRetrievalOptions) defaults() {
	if o.Trials <= 0 {
		o.Trials = 4
	}
	if o.Needle == "" {
		o.Needle = DefaultNeedle
	}
	if o.Question == "" {
		o.Question = DefaultQuestion
	}
	if o.Digits <= 0 {
		o.Digits = 5
	}
}

// NIAHTrial is one prompt and the model's answer.
type NIAHTrial struct {
	Number string `json:"number"`
	// Output is the decoded answer, cut before the first stop (line end or
	// EOS).
	Output  string  `json:"output"`
	Correct bool    `json:"correct"`
	Depth   float64 `json:"depth"`
}

// NIAHCell is the accuracy at one (length, depth).
type NIAHCell struct {
	Length int     `json:"length"`
	Depth  float64 `json:"depth"`
	// NA is why the cell was not evaluated (e.g. beyond the model's learned
	// positions), empty when evaluated.
	NA       string      `json:"na,omitempty"`
	Correct  int         `json:"correct"`
	Trials   int         `json:"trials"`
	Accuracy float64     `json:"accuracy"`
	Results  []NIAHTrial `json:"results,omitempty"`
}

// NIAHResult is the needle-in-a-haystack accuracy grid of one model.
type NIAHResult struct {
	// Model labels the model in tables and plots.
	Model          string    `json:"model"`
	Path           string    `json:"path,omitempty"`
	RoPEThetaScale float64   `json:"rope_theta_scale,omitempty"`
	Lengths        []int     `json:"lengths"`
	Depths         []float64 `json:"depths"`
	Trials         int       `json:"trials"`
	Seed           uint64    `json:"seed"`
	Needle         string    `json:"needle"`
	Question       string    `json:"question"`
	// Cells is indexed [length][depth].
	Cells [][]NIAHCell `json:"cells"`
	// Accuracy is over every evaluated trial.
	Accuracy float64 `json:"accuracy"`
}

// describe records which model r is about.
func (r *NIAHResult) describe(label, path string, scale float64) {
	r.Model, r.Path, r.RoPEThetaScale = label, path, scale
}

// niahPlan is the model-independent randomness of an evaluation.
type niahPlan struct {
	starts  []int        // haystack start file per trial
	numbers [][][]string // [length][depth][trial]
}

func makePlan(seed uint64, files, lengths, depths, trials, digits int) niahPlan {
	rng := rand.New(rand.NewPCG(seed, 0x6e696168)) // "niah"
	p := niahPlan{starts: make([]int, trials)}
	for t := range p.starts {
		p.starts[t] = rng.IntN(files)
	}
	p.numbers = make([][][]string, lengths)
	for i := range p.numbers {
		p.numbers[i] = make([][]string, depths)
		for j := range p.numbers[i] {
			p.numbers[i][j] = make([]string, trials)
			for t := range p.numbers[i][j] {
				p.numbers[i][j][t] = randomNumber(rng, digits)
			}
		}
	}
	return p
}

// NeedleRetrieval runs the needle-in-a-haystack test on one model. For every length, depth and
// trial it builds a prompt of exactly that many tokens: [BOS] (when the
// tokenizer has one distinct from EOS), the haystack with the needle
// sentence (holding a random number) as its own line at the line start
// nearest to the depth, a newline and the question. gen answers with at most
// as many tokens as the encoding of " "+number; the answer is cut at the
// first line end or EOS, and the trial is correct when its digits equal the
// number. tok encodes the prompts and decodes the answers.
func NeedleRetrieval(ctx context.Context, gen Generator, tok data.Tokenizer, hay *Haystack, opts NeedleRetrievalOptions) (*NIAHResult, error) {
	opts.defaults()
	t := needleText{needle: opts.Needle, question: opts.Question, digits: opts.Digits}
	if err := t.check(); err != nil {
		return nil, err
	}
	if err := checkLengths(opts.Lengths); err != nil {
		return nil, err
	}
	if err := checkDepths(opts.Depths); err != nil {
		return nil, err
	}
	plan := makePlan(opts.Seed, hay.NumFiles(), len(opts.Lengths), len(opts.Depths), opts.Trials, opts.Digits)
	res := &NIAHResult{
		Lengths: opts.Lengths, Depths: opts.Depths, Trials: opts.Trials, Seed: opts.Seed,
		Needle: opts.Needle, Question: opts.Question, Cells: make([][]NIAHCell, len(opts.Lengths)),
	}
	stop := LineEnd(tok)
	total, done := len(opts.Lengths)*len(opts.Depths)*opts.Trials, 0
	if opts.Progress != nil {
		opts.Progress(0, total)
	}
	for i, L := range opts.Lengths {
		res.Cells[i] = make([]NIAHCell, len(opts.Depths))
		for j, d := range opts.Depths {
			res.Cells[i][j] = NIAHCell{Length: L, Depth: d}
			// The answer " "+number takes at most digits+1 tokens; the
			// last one is predicted, not read.
			if opts.MaxTokens > 0 && L+opts.Digits > opts.MaxTokens {
				res.Cells[i][j].NA = fmt.Sprintf("beyond the model's %d learned positions", opts.MaxTokens)
			}
		}
	}
	maxLen := 0 // the longest evaluated length
	for i, L := range opts.Lengths {
		if res.Cells[i][0].NA == "" {
			maxLen = max(maxLen, L)
		}
	}
	var correct, trials int
	for tr := 0; tr < opts.Trials && maxLen > 0; tr++ {
		hay0, err := hay.tokens(tok, plan.starts[tr], maxLen)
		if err != nil {
			return nil, err
		}
		starts := lineStarts(tok, hay0)
		for i, L := range opts.Lengths {
			for j, d := range opts.Depths {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				cell := &res.Cells[i][j]
				if cell.NA == "" {
					p, err := buildPrompt(tok, hay0, starts, L, d, t, plan.numbers[i][j][tr])
					if err != nil {
						return nil, err
					}
					out, err := gen.Generate(p.IDs, p.AnswerTokens)
					if err != nil {
						return nil, fmt.Errorf("length %d, depth %v: %w", L, d, err)
					}
					out = out[:min(len(out), p.AnswerTokens)]
					for k, id := range out {
						if stop(id) {
							out = out[:k]
							break
						}
					}
					text := tok.Decode(out)
					ok := digitsOf(text) == p.Number
					cell.Results = append(cell.Results, NIAHTrial{Number: p.Number, Output: text, Correct: ok, Depth: p.Depth})
					cell.Trials++
					trials++
					if ok {
						cell.Correct++
						correct++
					}
					cell.Accuracy = float64(cell.Correct) / float64(cell.Trials)
				}
				done++
				if opts.Progress != nil {
					opts.Progress(done, total)
				}
			}
		}
	}
	if opts.Progress != nil {
		opts.Progress(total, total)
	}
	if trials > 0 {
		res.Accuracy = float64(correct) / float64(trials)
	}
	return res, nil
}

// NIAHOptions configures NIAH.
type NIAHOptions struct {
	Checkpoints
	NeedleOptions
	// Lengths are the prompt lengths in tokens; Depths the needle
	// positions (0 start of the haystack, 1 end).
	Lengths []int
	Depths  []float64
}

// NIAHReport is the needle-in-a-haystack accuracy of each model evaluated.
type NIAHReport struct {
	Models []*NIAHResult
}

// WriteTable writes the report as WriteNIAHTable does.
func (r *NIAHReport) WriteTable(w io.Writer) error { return WriteNIAHTable(w, r.Models) }

// Save writes niah.json, niah.csv and niah.png into dir (SaveNIAH),
// creating it as mkdir does, and returns the paths written.
func (r *NIAHReport) Save(dir string) ([]string, error) {
	return saveReport(dir, "niah", r.Models, SaveNIAH)
}

// NIAH runs the needle-in-a-haystack test (NeedleRetrieval) on each model
// in o.Models, decoding greedily with its KV cache (ModelGenerator) until a
// line end; every model gets the same prompts. Cells beyond a model's
// learned positions are n/a.
func NIAH(ctx context.Context, o NIAHOptions) (*NIAHReport, error) {
	if err := o.Checkpoints.check("niah"); err != nil {
		return nil, err
	}
	hay, err := o.NeedleOptions.open("niah")
	if err != nil {
		return nil, err
	}
	if err := checkLengths(o.Lengths); err != nil {
		return nil, fmt.Errorf("--lengths: %w", err)
	}
	if err := checkDepths(o.Depths); err != nil {
		return nil, fmt.Errorf("--depths: %w", err)
	}
	results, err := evaluate(ctx, &o.Checkpoints, func(ctx context.Context, lm *loadedModel) (*NIAHResult, error) {
		return NeedleRetrieval(ctx, NewModelGenerator(lm.m, LineEnd(lm.tok)), lm.tok, hay, NeedleRetrievalOptions{
			Lengths: o.Lengths, Depths: o.Depths, Trials: o.Trials, Seed: o.Seed,
			Needle: o.Needle, Question: o.Question, Digits: o.Digits,
			MaxTokens: MaxLength(lm.m), Progress: lm.progress,
		})
	})
	if err != nil {
		return nil, err
	}
	return &NIAHReport{Models: results}, nil
}
