package eval

import (
	"context"
	"fmt"
	"io"

	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/model"
)

// NeedleAttentionOptions configures NeedleAttention.
type NeedleAttentionOptions struct {
	// Length is the prompt length in tokens; Depth the needle's position in
	// the haystack (0 start, 1 end; the nearest line start).
	Length int
	Depth  float64
	// Trials is the number of prompts averaged (default 1); each has its own
	// number and haystack start (see NeedleRetrievalOptions).
	Trials int
	Seed   uint64
	// Needle, Question and Digits are as in NeedleRetrievalOptions.
	Needle, Question string
	Digits           int
	// Progress, if not nil, receives the trials done and the total.
	Progress func(done, total int)
}

// AttentionResult is the attention paid to the needle by the query that
// predicts the answer's first token (its first token with a digit), per
// layer and head.
type AttentionResult struct {
	// Model labels the model in tables and plots.
	Model          string  `json:"model"`
	Path           string  `json:"path,omitempty"`
	RoPEThetaScale float64 `json:"rope_theta_scale,omitempty"`
	Length         int     `json:"length"`
	Depth          float64 `json:"depth"`
	Trials         int     `json:"trials"`
	Seed           uint64  `json:"seed"`
	// ActualDepth is the mean depth where the needle landed.
	ActualDepth float64 `json:"actual_depth"`
	// NeedleTokens is the mean number of tokens of the needle sentence.
	NeedleTokens float64 `json:"needle_tokens"`
	// Uniform is the mean of needle tokens / keys the query sees: the
	// needle's share under uniform attention, the baseline a head's mass
	// compares to.
	Uniform float64 `json:"uniform"`
	// Modes is each layer's attention mode (softmax, ssmax, fixed, bias).
	Modes []string `json:"modes"`
	// Mass[l][h] is the mean over trials of the attention probability that
	// head h of layer l puts on the needle sentence's tokens.
	Mass [][]float64 `json:"mass"`
	// FirstTokenCorrect counts the trials where that query's greedy token is
	// the answer's first token with a digit.
	FirstTokenCorrect int `json:"first_token_correct"`
}

// describe records which model r is about.
func (r *AttentionResult) describe(label, path string, scale float64) {
	r.Model, r.Path, r.RoPEThetaScale = label, path, scale
}

// NeedleAttention builds needle-in-a-haystack prompts (as NeedleRetrieval
// does) of opts.Length tokens, feeds each to m's decoder in one prefill with
// the attention probe on (model.Decoder.ProbeAttention), and sums, for every
// layer and head, the attention probabilities of the query whose logits
// give the first answer token over the needle sentence's tokens, averaged
// over the trials. That query is the prompt's last position; when the answer
// " "+number starts with tokens without a digit (the space of a byte-level
// model), they are fed too (teacher forcing) and the query is the position
// that predicts the number's first token.
func NeedleAttention(ctx context.Context, m *model.Model, tok data.Tokenizer, hay *Haystack, opts NeedleAttentionOptions) (*AttentionResult, error) {
	no := NeedleRetrievalOptions{Trials: opts.Trials, Needle: opts.Needle, Question: opts.Question, Digits: opts.Digits}
	if opts.Trials <= 0 {
		no.Trials = 1
	}
	no.defaults()
	t := needleText{needle: no.Needle, question: no.Question, digits: no.Digits}
	if err := t.check(); err != nil {
		return nil, err
	}
	if err := checkLengths([]int{opts.Length}); err != nil {
		return nil, err
	}
	if err := checkDepths([]float64{opts.Depth}); err != nil {
		return nil, err
	}
	if limit := MaxLength(m); limit > 0 && opts.Length > limit {
		return nil, fmt.Errorf("length %d is beyond the model's %d learned positions", opts.Length, limit)
	}
	s := m.Spec
	res := &AttentionResult{Length: opts.Length, Depth: opts.Depth, Trials: no.Trials, Seed: opts.Seed, Mass: make([][]float64, s.Layers)}
	for l := range res.Mass {
		res.Mass[l] = make([]float64, s.Heads)
		res.Modes = append(res.Modes, m.Attention(l).Variant.String())
	}
	plan := makePlan(opts.Seed, hay.NumFiles(), 1, 1, no.Trials, no.Digits)
	for tr := 0; tr < no.Trials; tr++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hay0, err := hay.tokens(tok, plan.starts[tr], opts.Length)
		if err != nil {
			return nil, err
		}
		p, err := buildPrompt(tok, hay0, lineStarts(tok, hay0), opts.Length, opts.Depth, t, plan.numbers[0][0][tr])
		if err != nil {
			return nil, err
		}
		// The query is the one predicting the answer's first token with a
		// digit: the prompt's last position, after the answer's leading
		// digit-free tokens (the space of byte-level models) are fed.
		answer := tok.Encode(" " + p.Number)
		k := 0
		for k < len(answer)-1 && digitsOf(tok.Decode(answer[k:k+1])) == "" {
			k++
		}
		d := m.NewDecoder()
		d.ProbeAttention(true)
		last, err := prefill(d, append(p.IDs, answer[:k]...), s.Vocab)
		if err != nil {
			return nil, fmt.Errorf("length %d: %w", opts.Length, err)
		}
		att := d.LastAttention()
		for l := range att {
			for h, row := range att[l] {
				var mass float64
				for _, x := range row[p.NeedleStart:p.NeedleEnd] {
					mass += x
				}
				res.Mass[l][h] += mass / float64(no.Trials)
			}
		}
		if argmax(last) == answer[k] {
			res.FirstTokenCorrect++
		}
		res.ActualDepth += p.Depth / float64(no.Trials)
		res.NeedleTokens += float64(p.NeedleEnd-p.NeedleStart) / float64(no.Trials)
		res.Uniform += float64(p.NeedleEnd-p.NeedleStart) / float64(len(p.IDs)+k) / float64(no.Trials)
		if opts.Progress != nil {
			opts.Progress(tr+1, no.Trials)
		}
	}
	return res, nil
}

// AttentionOptions configures Attention.
type AttentionOptions struct {
	Checkpoints
	NeedleOptions
	// Length is the prompt length in tokens; Depth the needle's position
	// (0 start of the haystack, 1 end).
	Length int
	Depth  float64
}

// AttentionReport is the attention on the needle of each model evaluated.
type AttentionReport struct {
	Models []*AttentionResult
}

// WriteTable writes the report as WriteAttentionTable does.
func (r *AttentionReport) WriteTable(w io.Writer) error { return WriteAttentionTable(w, r.Models) }

// Save writes attention.json, attention.csv and attention.png into dir
// (SaveAttention), creating it as mkdir does, and returns the paths
// written.
func (r *AttentionReport) Save(dir string) ([]string, error) {
	return saveReport(dir, "attention", r.Models, SaveAttention)
}

// Attention measures the attention each layer and head of each model in
// o.Models puts on the needle (NeedleAttention); every model gets the same
// prompts. A length beyond a model's learned positions is an error.
func Attention(ctx context.Context, o AttentionOptions) (*AttentionReport, error) {
	if err := o.Checkpoints.check("attention"); err != nil {
		return nil, err
	}
	hay, err := o.NeedleOptions.open("attention")
	if err != nil {
		return nil, err
	}
	if o.Length < 1 {
		return nil, fmt.Errorf("eval attention needs --length N (prompt tokens)")
	}
	if err := checkDepths([]float64{o.Depth}); err != nil {
		return nil, fmt.Errorf("--depth: %w", err)
	}
	results, err := evaluate(ctx, &o.Checkpoints, func(ctx context.Context, lm *loadedModel) (*AttentionResult, error) {
		return NeedleAttention(ctx, lm.m, lm.tok, hay, NeedleAttentionOptions{
			Length: o.Length, Depth: o.Depth, Trials: o.Trials, Seed: o.Seed,
			Needle: o.Needle, Question: o.Question, Digits: o.Digits, Progress: lm.progress,
		})
	})
	if err != nil {
		return nil, err
	}
	return &AttentionReport{Models: results}, nil
}
