package eval

import (
	"context"
	"fmt"
	"io"
	"math"

	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/retrieval"
)

// Session is one document being decoded: Feed appends tokens and returns
// the logits [len(ids), vocab] of the new positions, row-major.
// model.Decoder is the language model's session (through its KV cache);
// tests pass stubs.
type Session interface {
	Feed(ids []int) ([]float32, error)
}

// KeyRetrievalOptions configures KeyRetrieval.
type KeyRetrievalOptions struct {
	// Lengths are the prompt lengths in tokens (each prompt is at most that
	// long and at least that long less one line).
	Lengths []int
	// Depths are where the target records sit in the filler: 0 its first
	// line, 1 its last. Every prompt holds one target per depth and ends
	// with a query for each.
	Depths []float64
	// Trials is the number of prompts per length (default 8): each cell
	// (length, depth) gets Trials queries.
	Trials int
	// Seed fixes the prompts: the same seed gives every model with the same
	// tokenizer the same prompts.
	Seed uint64
	// Task is the shape of the records (zero: retrieval.Default).
	Task retrieval.Task
	// MaxTokens is the longest sequence the model reads (its learned
	// positions), 0 for no limit: longer lengths are NA.
	MaxTokens int
	// Attention also measures, when the sessions can probe their attention
	// (model.Decoder can), the attention each head of the query predicting
	// a value's first token puts on the target record.
	Attention bool
	// Progress, if not nil, receives the prompts done and the total.
	Progress func(done, total int)
}

// probing is a session that records the attention of the last position it
// was fed (model.Decoder).
type probing interface {
	ProbeAttention(on bool)
	LastAttention() [][][]float64
}

// KeyAttention is the attention the query that predicts a value's first
// token puts on the target record (its key, value and newline), averaged
// over the queries of a length.
type KeyAttention struct {
	// Mass[l][h] is the mean attention probability of head h of layer l on
	// the record's tokens.
	Mass [][]float64 `json:"mass"`
	// Max is the largest Mass, at layer MaxLayer, head MaxHead: the head
	// that retrieves most.
	Max      float64 `json:"max"`
	MaxLayer int     `json:"max_layer"`
	MaxHead  int     `json:"max_head"`
	// Uniform is the mean share of the record's tokens among the keys the
	// query sees: the mass of attention spread evenly.
	Uniform float64 `json:"uniform"`
	queries int
}

// add accumulates one query's attention rows on [lo, hi) of keys seen.
func (k *KeyAttention) add(rows [][][]float64, lo, hi, seen int) {
	if k.Mass == nil {
		k.Mass = make([][]float64, len(rows))
		for l := range rows {
			k.Mass[l] = make([]float64, len(rows[l]))
		}
	}
	n := float64(k.queries)
	for l := range rows {
		for h, row := range rows[l] {
			var m float64
			for _, x := range row[lo:hi] {
				m += x
			}
			k.Mass[l][h] = (k.Mass[l][h]*n + m) / (n + 1)
		}
	}
	k.Uniform = (k.Uniform*n + float64(hi-lo)/float64(seen)) / (n + 1)
	k.queries++
	k.Max = -1
	for l := range k.Mass {
		for h, m := range k.Mass[l] {
			if m > k.Max {
				k.Max, k.MaxLayer, k.MaxHead = m, l, h
			}
		}
	}
}

// RetrievalTrial is one final query and the model's answer.
type RetrievalTrial struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	// Output is the greedy answer up to and including its first wrong
	// token (the whole value when correct).
	Output  string  `json:"output"`
	Correct bool    `json:"correct"`
	Depth   float64 `json:"actual_depth"`
	// Distance is the number of tokens from the target record to the
	// query.
	Distance int `json:"distance"`
}

// Accuracy is a count of exact matches with a 95% Wilson score interval.
type Accuracy struct {
	Correct  int     `json:"correct"`
	Trials   int     `json:"trials"`
	Accuracy float64 `json:"accuracy"`
	// Lo and Hi bound the 95% Wilson score interval of the accuracy.
	Lo float64 `json:"ci_lo"`
	Hi float64 `json:"ci_hi"`
	// AnswerLoss is the mean NLL per value token (teacher-forced), in
	// nats; chance for digits is ln 10 = 2.303.
	AnswerLoss float64 `json:"answer_loss"`
	lossSum    float64
	lossCount  int
}

// add counts one query.
func (a *Accuracy) add(correct bool, nll []float64) {
	a.Trials++
	if correct {
		a.Correct++
	}
	for _, x := range nll {
		a.lossSum += x
		a.lossCount++
	}
	a.Accuracy = float64(a.Correct) / float64(a.Trials)
	a.Lo, a.Hi = Wilson(a.Correct, a.Trials)
	a.AnswerLoss = a.lossSum / float64(max(1, a.lossCount))
}

// Wilson returns the 95% Wilson score interval of k successes in n trials
// ([0, 1] when n is 0).
func Wilson(k, n int) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	const z = 1.959963984540054
	p, fn := float64(k)/float64(n), float64(n)
	den := 1 + z*z/fn
	mid := (p + z*z/(2*fn)) / den
	half := z * math.Sqrt(p*(1-p)/fn+z*z/(4*fn*fn)) / den
	return max(0, mid-half), min(1, mid+half)
}

// RetrievalCell is the accuracy at one (length, depth).
type RetrievalCell struct {
	Length int     `json:"length"`
	Depth  float64 `json:"depth"`
	// NA is why the cell was not evaluated, empty when evaluated.
	NA string `json:"na,omitempty"`
	Accuracy
	Results []RetrievalTrial `json:"results,omitempty"`
}

// RetrievalLength is the accuracy at one length over every depth.
type RetrievalLength struct {
	Length int    `json:"length"`
	NA     string `json:"na,omitempty"`
	Accuracy
	// PromptTokens is the mean length of the prompts.
	PromptTokens float64 `json:"prompt_tokens"`
	// Attention is the attention on the target records (with
	// KeyRetrievalOptions.Attention).
	Attention *KeyAttention `json:"attention,omitempty"`
}

// RetrievalResult is the key-retrieval accuracy of one model.
type RetrievalResult struct {
	Model          string         `json:"model"`
	Path           string         `json:"path,omitempty"`
	RoPEThetaScale float64        `json:"rope_theta_scale,omitempty"`
	Task           retrieval.Task `json:"task"`
	Lengths        []int          `json:"lengths"`
	Depths         []float64      `json:"depths"`
	Trials         int            `json:"trials"`
	Seed           uint64         `json:"seed"`
	// ByLength is the accuracy per length over every depth; Cells per
	// length and depth, indexed [length][depth].
	ByLength []RetrievalLength `json:"by_length"`
	Cells    [][]RetrievalCell `json:"cells"`
}

// describe records which model r is about.
func (r *RetrievalResult) describe(label, path string, scale float64) {
	r.Model, r.Path, r.RoPEThetaScale = label, path, scale
}

// KeyRetrieval runs the key-retrieval test (package retrieval) on one
// model. For every length and trial it builds a prompt (retrieval.NewPrompt:
// records and queries with a target record at each depth, then a query for
// each target; for a passkey task one prompt per depth) and feeds it to a new session: the text up to the first
// final query's value in one call, then each value followed by the text up
// to the next value. A query is correct when the greedy token at every
// value position is the value's token: greedy decoding through the cache
// reproduces the value exactly if and only if it does, since until its
// first wrong token it has fed exactly these tokens. The value tokens'
// mean NLL is the answer loss. The prompts depend only on the seed, the
// tokenizer and the options, so every model gets the same ones.
func KeyRetrieval(ctx context.Context, newSession func() Session, vocab int, tok data.Tokenizer, opts KeyRetrievalOptions) (*RetrievalResult, error) {
	if opts.Trials <= 0 {
		opts.Trials = 8
	}
	task := opts.Task.WithDefaults()
	if err := task.Check(); err != nil {
		return nil, err
	}
	if err := checkLengths(opts.Lengths); err != nil {
		return nil, err
	}
	if err := checkDepths(opts.Depths); err != nil {
		return nil, err
	}
	res := &RetrievalResult{Task: task, Lengths: opts.Lengths, Depths: opts.Depths, Trials: opts.Trials, Seed: opts.Seed,
		ByLength: make([]RetrievalLength, len(opts.Lengths)), Cells: make([][]RetrievalCell, len(opts.Lengths))}
	total, done := len(opts.Lengths)*opts.Trials, 0
	if opts.Progress != nil {
		opts.Progress(0, total)
	}
	for i, L := range opts.Lengths {
		res.ByLength[i] = RetrievalLength{Length: L}
		res.Cells[i] = make([]RetrievalCell, len(opts.Depths))
		for j, d := range opts.Depths {
			res.Cells[i][j] = RetrievalCell{Length: L, Depth: d}
		}
		if opts.MaxTokens > 0 && L > opts.MaxTokens {
			na := fmt.Sprintf("beyond the model's %d learned positions", opts.MaxTokens)
			res.ByLength[i].NA = na
			for j := range res.Cells[i] {
				res.Cells[i][j].NA = na
			}
			done += opts.Trials
			continue
		}
		for tr := 0; tr < opts.Trials; tr++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			prompts, err := trialPrompts(opts.Seed, tok, task, L, tr, opts.Depths)
			if err != nil {
				return nil, err
			}
			row := &res.ByLength[i]
			for _, p := range prompts {
				answers, err := answerPrompt(newSession(), vocab, p, opts.Attention)
				if err != nil {
					return nil, fmt.Errorf("length %d: %w", L, err)
				}
				row.PromptTokens += float64(len(p.IDs)) / float64(opts.Trials*len(prompts))
				for _, a := range answers {
					q := p.Queries[a.query]
					if a.attention != nil {
						if row.Attention == nil {
							row.Attention = &KeyAttention{}
						}
						row.Attention.add(a.attention, q.Record, q.RecordEnd, q.AnswerStart)
					}
					j := depthIndex(opts.Depths, q.Depth)
					cell := &res.Cells[i][j]
					cell.add(a.correct, a.nll)
					row.add(a.correct, a.nll)
					cell.Results = append(cell.Results, RetrievalTrial{Key: q.Key, Value: q.Value, Output: tok.Decode(a.output),
						Correct: a.correct, Depth: q.ActualDepth, Distance: q.AnswerStart - q.Record})
				}
			}
			done++
			if opts.Progress != nil {
				opts.Progress(done, total)
			}
		}
	}
	return res, nil
}

// trialPrompts are the prompts of one trial at length L: one holding a
// target at every depth, or for a passkey task (one record per prompt) one
// per depth, each from its own generator.
func trialPrompts(seed uint64, tok data.Tokenizer, task retrieval.Task, L, trial int, depths []float64) ([]*retrieval.Prompt, error) {
	if !task.Passkey {
		p, err := retrieval.NewPrompt(retrieval.PromptSeed(seed, L, trial), tok, task, L, depths)
		if err != nil {
			return nil, err
		}
		return []*retrieval.Prompt{p}, nil
	}
	prompts := make([]*retrieval.Prompt, len(depths))
	for j, d := range depths {
		p, err := retrieval.NewPrompt(retrieval.PromptSeed(seed, L, trial*len(depths)+j), tok, task, L, []float64{d})
		if err != nil {
			return nil, err
		}
		prompts[j] = p
	}
	return prompts, nil
}

// depthIndex is the index of depth d in depths (the first equal one).
func depthIndex(depths []float64, d float64) int {
	for j, x := range depths {
		if x == d {
			return j
		}
	}
	return 0
}

// answer is the outcome of one final query.
type answer struct {
	query   int
	correct bool
	nll     []float64
	output  []int
	// attention is the probed attention of the position predicting the
	// first value token, [layer][head][key] (nil when not probed).
	attention [][][]float64
}

// answerPrompt feeds p to s and scores every final query's value tokens:
// the logits that predict a value token are those of the position before
// it, so the prompt is fed in chunks that end just before each value.
func answerPrompt(s Session, vocab int, p *retrieval.Prompt, attention bool) ([]answer, error) {
	var out []answer
	probe, _ := s.(probing)
	if !attention {
		probe = nil
	}
	fed := 0
	var last []float32 // logits of position fed-1
	feed := func(end int) ([]float32, error) {
		var rows []float32
		chunk := max(1, prefillBudget/vocab)
		for fed < end {
			hi := min(fed+chunk, end)
			l, err := s.Feed(p.IDs[fed:hi])
			if err != nil {
				return nil, err
			}
			if len(l) != (hi-fed)*vocab {
				return nil, fmt.Errorf("session returned %d logits for %d tokens of a vocabulary of %d", len(l), hi-fed, vocab)
			}
			rows, fed = l, hi
		}
		return rows, nil
	}
	for k, q := range p.Queries {
		if probe != nil {
			probe.ProbeAttention(true)
		}
		rows, err := feed(q.AnswerStart)
		if err != nil {
			return nil, err
		}
		last = rows[len(rows)-vocab:]
		var att [][][]float64
		if probe != nil {
			att = copyRows(probe.LastAttention())
			probe.ProbeAttention(false)
		}
		// The value's tokens but the last are fed to read the logits that
		// predict the following ones.
		var valRows []float32
		if q.AnswerEnd-q.AnswerStart > 1 {
			if valRows, err = feed(q.AnswerEnd - 1); err != nil {
				return nil, err
			}
		}
		a := answer{query: k, correct: true, attention: att}
		for t := q.AnswerStart; t < q.AnswerEnd; t++ {
			row := last
			if t > q.AnswerStart {
				r := t - q.AnswerStart - 1
				row = valRows[r*vocab : (r+1)*vocab]
			}
			want := p.IDs[t]
			a.nll = append(a.nll, nll(row, want))
			if a.correct {
				got := argmax(row)
				a.output = append(a.output, got)
				if got != want {
					a.correct = false
				}
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// copyRows copies attention rows (the decoder reuses its slices).
func copyRows(r [][][]float64) [][][]float64 {
	out := make([][][]float64, len(r))
	for l := range r {
		out[l] = make([][]float64, len(r[l]))
		for h := range r[l] {
			out[l][h] = append([]float64(nil), r[l][h]...)
		}
	}
	return out
}

// nll is -log softmax(row)[want], computed in float64.
func nll(row []float32, want int) float64 {
	mx := math.Inf(-1)
	for _, x := range row {
		mx = math.Max(mx, float64(x))
	}
	var sum float64
	for _, x := range row {
		sum += math.Exp(float64(x) - mx)
	}
	return math.Log(sum) + mx - float64(row[want])
}

// RetrievalOptions configures Retrieval.
type RetrievalOptions struct {
	Checkpoints
	// Lengths, Depths, Trials and Seed are as in KeyRetrievalOptions.
	Lengths []int
	Depths  []float64
	Trials  int
	Seed    uint64
	Task    retrieval.Task
	// Attention also measures the attention on the target records.
	Attention bool
}

// RetrievalReport is the key-retrieval accuracy of each model evaluated.
type RetrievalReport struct {
	Models []*RetrievalResult
}

// WriteTable writes the report as WriteRetrievalTable does.
func (r *RetrievalReport) WriteTable(w io.Writer) error { return WriteRetrievalTable(w, r.Models) }

// Save writes retrieval.json, retrieval.csv and retrieval.png into dir
// (SaveRetrieval), creating it as mkdir does, and returns the paths
// written.
func (r *RetrievalReport) Save(dir string) ([]string, error) {
	return saveReport(dir, "retrieval", r.Models, SaveRetrieval)
}

// Retrieval runs the key-retrieval test (KeyRetrieval) on each model in
// o.Models through its KV cache; every model gets the same prompts.
// Lengths beyond a model's learned positions are n/a.
func Retrieval(ctx context.Context, o RetrievalOptions) (*RetrievalReport, error) {
	if err := o.Checkpoints.check("retrieval"); err != nil {
		return nil, err
	}
	if err := checkLengths(o.Lengths); err != nil {
		return nil, fmt.Errorf("--lengths: %w", err)
	}
	if err := checkDepths(o.Depths); err != nil {
		return nil, fmt.Errorf("--depths: %w", err)
	}
	if o.Trials < 0 {
		return nil, fmt.Errorf("--trials %d: want at least 1", o.Trials)
	}
	results, err := evaluate(ctx, &o.Checkpoints, func(ctx context.Context, lm *loadedModel) (*RetrievalResult, error) {
		return KeyRetrieval(ctx, func() Session { return lm.m.NewDecoder() }, lm.m.Spec.Vocab, lm.tok, KeyRetrievalOptions{
			Lengths: o.Lengths, Depths: o.Depths, Trials: o.Trials, Seed: o.Seed, Task: o.Task,
			MaxTokens: MaxLength(lm.m), Attention: o.Attention, Progress: lm.progress,
		})
	})
	if err != nil {
		return nil, err
	}
	return &RetrievalReport{Models: results}, nil
}
