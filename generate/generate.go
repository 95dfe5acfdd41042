// Package generate continues a prompt with a language model: the prompt is
// fed through the model's KV cache (model.Decoder) in chunks, then one token
// per step, each picked greedily or sampled (temperature, top-k, top-p with
// a seeded random source), the text streamed as it is produced, until an
// EOS token, a stop string or the token limit.
package generate

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/model"
)

// Why generation ended (Result.Stop).
const (
	StopEOS    = "eos"    // the model produced an EOS token
	StopString = "stop"   // the text reached a stop string
	StopLength = "length" // MaxNewTokens, or the end of the model's context
)

// logitsBudget bounds the logits one prefill Feed returns: a chunk has at
// most logitsBudget/vocab rows (values; 256 MiB of float32).
const logitsBudget = 64 << 20

// DefaultPrefillChunk is the prompt tokens fed per Decoder.Feed call when
// Options.PrefillChunk is 0 (fewer when the vocabulary is large).
const DefaultPrefillChunk = 512

// Options tune Generate.
type Options struct {
	// MaxNewTokens is the most tokens generated (at least 1).
	MaxNewTokens int
	Sampling
	// Seed seeds the sampler (unused when greedy).
	Seed uint64
	// EOS are the ids that end generation (the EOS token is part of
	// Result.IDs but not of the text).
	EOS []int
	// Stop strings end generation when the generated text contains one;
	// the text is cut before it (Result.IDs keeps every token generated).
	Stop []string
	// PrefillChunk is the prompt tokens per Decoder.Feed call (0:
	// DefaultPrefillChunk, capped so a chunk's logits stay under 256 MiB).
	PrefillChunk int
}

// Result is a finished generation.
type Result struct {
	// PromptIDs are the tokens fed as the prompt.
	PromptIDs []int `json:"prompt_ids"`
	// IDs are the generated tokens only (an ending EOS included).
	IDs []int `json:"ids"`
	// Text is the generated text, as streamed: without the EOS token's text
	// and cut before a stop string.
	Text string `json:"text"`
	// Stop is why generation ended: StopEOS, StopString or StopLength.
	Stop string `json:"stop"`
	// Seed is the sampler's seed, nil for greedy decoding.
	Seed *uint64 `json:"seed,omitempty"`
}

// Decode feeds prompt to a new KV-cache decoder of m, chunk tokens per Feed
// call (0: DefaultPrefillChunk, capped by the logits budget), then produces
// up to maxNew tokens: next picks each from the logits of the last position
// fed, and emit, if not nil, receives it and returns true to stop there.
// The last token produced is not fed. It returns the tokens produced.
func Decode(ctx context.Context, m *model.Model, prompt []int, maxNew, chunk int, next func(logits []float32) int, emit func(id int) bool) ([]int, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("empty prompt")
	}
	vocab := m.Spec.Vocab
	if chunk <= 0 {
		chunk = DefaultPrefillChunk
	}
	chunk = max(1, min(chunk, logitsBudget/vocab))
	d := m.NewDecoder()
	if err := d.Reserve(len(prompt) + maxNew); err != nil {
		return nil, err
	}
	var logits []float32
	for lo := 0; lo < len(prompt); lo += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var err error
		if logits, err = d.Feed(prompt[lo:min(lo+chunk, len(prompt))]); err != nil {
			return nil, err
		}
	}
	logits = logits[len(logits)-vocab:]
	var out []int
	for len(out) < maxNew {
		id := next(logits)
		out = append(out, id)
		if (emit != nil && emit(id)) || len(out) == maxNew {
			break
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
		var err error
		if logits, err = d.Feed([]int{id}); err != nil {
			return out, err
		}
	}
	return out, nil
}

// Capacity returns the most new tokens m can generate after a prompt of
// promptLen tokens, up to want: the model must accept the prompt and every
// generated token but the last as one document (model.Validate: learned
// positions, and any other limit the engine has). A prompt the model
// cannot read is an error.
func Capacity(m *model.Model, promptLen, want int) (int, error) {
	fits := func(n int) error { return m.Validate(model.Input{IDs: make([]int, n)}) }
	if err := fits(promptLen); err != nil {
		return 0, fmt.Errorf("the prompt of %d tokens leaves no room to generate: %w", promptLen, err)
	}
	if want <= 1 || fits(promptLen+want-1) == nil {
		return max(want, 0), nil
	}
	lo, hi := 1, want-1 // lo new tokens fit, hi do not
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fits(promptLen+mid-1) == nil {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// Generate continues prompt with m as o says and returns what it produced.
// With a tokenizer, the text is streamed to out (if not nil) as it is
// decoded (data.StreamDecoder, primed with the prompt so the first tokens
// decode in context) and stop strings apply; without one (tok nil) only ids
// are produced. Generation ends at an EOS id, a stop string, MaxNewTokens,
// or the end of the model's context (learned positions), whichever comes
// first.
func Generate(ctx context.Context, m *model.Model, tok data.Tokenizer, prompt []int, o Options, out io.Writer) (*Result, error) {
	if o.MaxNewTokens < 1 {
		return nil, fmt.Errorf("max new tokens %d: want at least 1", o.MaxNewTokens)
	}
	if err := o.Sampling.Validate(); err != nil {
		return nil, err
	}
	if len(prompt) == 0 {
		return nil, fmt.Errorf("empty prompt")
	}
	for _, s := range o.Stop {
		if s == "" {
			return nil, fmt.Errorf("empty stop string")
		}
	}
	if tok == nil && len(o.Stop) > 0 {
		return nil, fmt.Errorf("stop strings need a tokenizer")
	}
	limit, err := Capacity(m, len(prompt), o.MaxNewTokens)
	if err != nil {
		return nil, err
	}
	res := &Result{PromptIDs: slices.Clone(prompt), IDs: []int{}, Stop: StopLength}
	if !o.Greedy() {
		seed := o.Seed
		res.Seed = &seed
	}
	sampler := NewSampler(o.Sampling, o.Seed)
	var (
		sd   *data.StreamDecoder
		text = &stopWriter{w: out, stops: o.Stop}
	)
	if tok != nil {
		sd = data.NewStreamDecoder(tok)
		for _, id := range prompt {
			sd.Next(id)
		}
	}
	emit := func(id int) bool {
		if slices.Contains(o.EOS, id) {
			res.Stop = StopEOS
			return true
		}
		if sd != nil && text.add(sd.Next(id)) {
			res.Stop = StopString
			return true
		}
		return text.err != nil // stdout is gone: stop, and report it
	}
	ids, err := Decode(ctx, m, prompt, limit, o.PrefillChunk, sampler.Next, emit)
	res.IDs = append(res.IDs, ids...)
	if err != nil {
		return res, err
	}
	if sd != nil && res.Stop != StopString {
		if text.add(sd.Flush()) {
			res.Stop = StopString
		}
	}
	if err := text.finish(); err != nil {
		return res, err
	}
	res.Text = text.text.String()
	return res, nil
}

// stopWriter passes text on to w as it arrives, except a tail that may be
// the start of a stop string, which it holds back until the text goes on
// differently; when the text reaches a stop string, the text before it is
// written and the rest dropped. A write error is kept for finish.
type stopWriter struct {
	w       io.Writer
	stops   []string
	pending string // received, not written yet
	text    strings.Builder
	stopped bool
	err     error
}

// add takes the next piece of text and reports whether a stop string has
// been reached.
func (s *stopWriter) add(piece string) bool {
	if s.stopped {
		return true
	}
	s.pending += piece
	cut := -1
	for _, stop := range s.stops {
		if i := strings.Index(s.pending, stop); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		s.write(s.pending[:cut])
		s.pending, s.stopped = "", true
		return true
	}
	// Hold back the longest tail that a stop string starts with.
	hold := 0
	for _, stop := range s.stops {
		for n := min(len(stop)-1, len(s.pending)); n > hold; n-- {
			if strings.HasSuffix(s.pending, stop[:n]) {
				hold = n
				break
			}
		}
	}
	s.write(s.pending[:len(s.pending)-hold])
	s.pending = s.pending[len(s.pending)-hold:]
	return false
}

func (s *stopWriter) write(t string) {
	if t == "" {
		return
	}
	s.text.WriteString(t)
	if s.w != nil && s.err == nil {
		_, s.err = io.WriteString(s.w, t)
	}
}

// finish writes the text held back (no stop string followed it) and
// returns the first write error.
func (s *stopWriter) finish() error {
	if !s.stopped {
		s.write(s.pending)
		s.pending = ""
	}
	return s.err
}
