package eval

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/model"
)

// Sample sources of the length evaluation (LengthOptions.Source).
const (
	// SourceAuto takes whole documents when at least Samples documents are
	// long enough for a length, and concatenated text otherwise.
	SourceAuto = "auto"
	// SourceDocuments takes each sample from the start of one document of
	// at least L+1 tokens, so positions count from a real document start.
	SourceDocuments = "documents"
	// SourceConcat takes each sample from the stream's documents laid end
	// to end (their EOS tokens stay in the text), read as ONE document: no
	// segment boundary, so attention and the SSMax key count n run across
	// document ends.
	SourceConcat = "concat"
)

// FirstBucket is the upper edge of the first position bucket; the following
// buckets double it (see PositionBuckets).
const FirstBucket = 64

// Bucket is a range of context sizes: the predictions made from n = Lo..Hi
// tokens (inclusive), that is at positions Lo-1..Hi-1, where the query sees
// n keys.
type Bucket struct {
	Lo int `json:"lo"`
	Hi int `json:"hi"`
}

// String returns "Lo-Hi".
func (b Bucket) String() string { return strconv.Itoa(b.Lo) + "-" + strconv.Itoa(b.Hi) }

// PositionBuckets returns the power-of-two buckets of a length: 1-64,
// 65-128, 129-256, ... up to length (the last bucket ends at length when it
// is not a power of two). A bucket means the same context sizes at every
// length, so the rows of a table line up and a longer length only adds
// columns.
func PositionBuckets(length int) []Bucket {
	var out []Bucket
	for lo, hi := 1, FirstBucket; lo <= length; lo, hi = hi+1, hi*2 {
		out = append(out, Bucket{Lo: lo, Hi: min(hi, length)})
	}
	return out
}

// LossByLengthOptions configures LossByLength.
type LossByLengthOptions struct {
	// Lengths are the context lengths L to evaluate: each sample holds L+1
	// tokens and gives L predictions, from n = 1 to L tokens of context.
	Lengths []int
	// Samples is the number of samples per length (default 4).
	Samples int
	// Source is SourceAuto (default), SourceDocuments or SourceConcat.
	Source string
	// Progress, if not nil, receives the tokens scored so far and the total.
	Progress func(done, total int)
}

// BucketLoss is the mean next-token loss of the predictions in a bucket.
type BucketLoss struct {
	Bucket
	// MeanLoss is the mean NLL in nats over Count predictions.
	MeanLoss float64 `json:"mean_loss"`
	Count    int     `json:"count"`
}

// LengthStats is the loss of one length.
type LengthStats struct {
	// Source is SourceDocuments or SourceConcat: where the samples came from.
	Source string `json:"source"`
	// Offsets are the samples' first tokens, as offsets into the stream
	// (its documents laid end to end).
	Offsets []int `json:"offsets"`
	// MeanLoss is the mean NLL over every prediction of every sample;
	// Perplexity is exp(MeanLoss).
	MeanLoss   float64      `json:"mean_loss"`
	Perplexity float64      `json:"perplexity"`
	Buckets    []BucketLoss `json:"buckets"`
	// SampleLoss is the mean loss of each sample, in the order of Offsets:
	// models evaluated on the same data get the same samples, so these
	// pair up for a paired comparison.
	SampleLoss []float64 `json:"sample_loss,omitempty"`
}

// LengthPoint is the result of one length: NA says why it was not
// evaluated, or LengthStats holds the losses.
type LengthPoint struct {
	Length int `json:"length"`
	// NA is the reason the length is not available (e.g. beyond the
	// model's learned positions), empty when evaluated.
	NA string `json:"na,omitempty"`
	*LengthStats
}

// LengthResult is the loss against context length of one model.
type LengthResult struct {
	// Model labels the model in tables and plots.
	Model          string        `json:"model"`
	Path           string        `json:"path,omitempty"`
	RoPEThetaScale float64       `json:"rope_theta_scale,omitempty"`
	Samples        int           `json:"samples"`
	Points         []LengthPoint `json:"lengths"`
}

// describe records which model r is about.
func (r *LengthResult) describe(label, path string, scale float64) {
	r.Model, r.Path, r.RoPEThetaScale = label, path, scale
}

// MaxLength returns the longest sequence m can read as one document: its
// number of learned positions, or 0 when unbounded (rotary positions).
func MaxLength(m *model.Model) int {
	if m.Spec.Position == arch.LearnedPositions {
		return m.Spec.Context
	}
	return 0
}

// window is a sample: L+1 tokens of the stream starting at Off.
type window struct{ Off int }

// sampleWindows chooses n windows of length tokens from s. Documents: the
// starts of n documents of at least length tokens, spread evenly over the
// qualifying documents in stream order. Concat: n non-overlapping windows
// spread evenly over the stream. It returns the source used; fewer windows
// than n when the data is short, none when it holds no window.
func sampleWindows(s *data.Stream, length, n int, source string) ([]window, string, error) {
	spans := s.Spans()
	var starts []int // stream offsets of the long-enough documents
	off := 0
	for _, sp := range spans {
		if sp.Len() >= length {
			starts = append(starts, off)
		}
		off += sp.Len()
	}
	switch source {
	case SourceAuto, "":
		source = SourceDocuments
		if len(starts) < n {
			source = SourceConcat
		}
	case SourceDocuments, SourceConcat:
	default:
		return nil, "", fmt.Errorf("sample source %q is not auto, documents or concat", source)
	}
	var out []window
	if source == SourceDocuments {
		k := min(n, len(starts))
		for i := 0; i < k; i++ {
			out = append(out, window{starts[i*len(starts)/k]})
		}
		return out, source, nil
	}
	total := s.Len() / length
	k := min(n, total)
	for i := 0; i < k; i++ {
		out = append(out, window{(i * total / k) * length})
	}
	return out, source, nil
}

// readStream returns n tokens of s from stream offset off (its documents
// laid end to end).
func readStream(s *data.Stream, off, n int) []int {
	out := make([]int, 0, n)
	pos := 0
	for _, sp := range s.Spans() {
		if len(out) == n {
			break
		}
		if pos+sp.Len() <= off {
			pos += sp.Len()
			continue
		}
		from := sp.Start + max(0, off-pos)
		to := min(sp.End, from+n-len(out))
		out = append(out, s.ReadSpan(data.Span{Start: from, End: to})...)
		pos += sp.Len()
	}
	return out
}

// LossByLength measures the mean next-token loss of m per position bucket
// for contexts of each length in opts.Lengths, on samples of the stream s
// (see LossByLengthOptions.Source for where they come from). Each sample of L+1 tokens
// is one forward pass over its first L tokens as one document (position p
// sees n = p+1 keys), scored against the next token at every position.
// Lengths beyond a model's learned positions, or with no sample in the
// data, are reported as NA rather than failing. The result's Model label is
// left empty for the caller to fill (Length fills it).
func LossByLength(ctx context.Context, m *model.Model, s *data.Stream, opts LossByLengthOptions) (*LengthResult, error) {
	if opts.Samples <= 0 {
		opts.Samples = 4
	}
	if err := checkLengths(opts.Lengths); err != nil {
		return nil, err
	}
	limit := MaxLength(m)
	res := &LengthResult{Samples: opts.Samples}
	type job struct {
		point   int
		windows []window
	}
	var jobs []job
	total := 0
	for _, L := range opts.Lengths {
		p := LengthPoint{Length: L}
		switch {
		case limit > 0 && L > limit:
			p.NA = fmt.Sprintf("beyond the model's %d learned positions", limit)
		default:
			ws, src, err := sampleWindows(s, L+1, opts.Samples, opts.Source)
			if err != nil {
				return nil, err
			}
			if len(ws) == 0 {
				p.NA = fmt.Sprintf("the data has no %d-token %s sample", L+1, src)
				break
			}
			p.LengthStats = &LengthStats{Source: src}
			for _, w := range ws {
				p.Offsets = append(p.Offsets, w.Off)
			}
			jobs = append(jobs, job{len(res.Points), ws})
			total += L * len(ws)
		}
		res.Points = append(res.Points, p)
	}
	done := 0
	if opts.Progress != nil {
		opts.Progress(0, total)
	}
	for _, j := range jobs {
		p := &res.Points[j.point]
		L := p.Length
		buckets := PositionBuckets(L)
		sums := make([]float64, len(buckets))
		var sum float64
		for _, w := range j.windows {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			ids := readStream(s, w.Off, L+1)
			nll, err := targetNLL(m, model.Input{IDs: ids[:L]}, ids[1:])
			if err != nil {
				return nil, fmt.Errorf("length %d, sample at %d: %w", L, w.Off, err)
			}
			for b, bk := range buckets {
				for _, x := range nll[bk.Lo-1 : bk.Hi] {
					sums[b] += x
				}
			}
			var one float64
			for _, x := range nll {
				one += x
			}
			sum += one
			p.SampleLoss = append(p.SampleLoss, one/float64(L))
			done += L
			if opts.Progress != nil {
				opts.Progress(done, total)
			}
		}
		k := float64(len(j.windows))
		p.MeanLoss = sum / (k * float64(L))
		p.Perplexity = math.Exp(p.MeanLoss)
		for b, bk := range buckets {
			count := len(j.windows) * (bk.Hi - bk.Lo + 1)
			p.Buckets = append(p.Buckets, BucketLoss{Bucket: bk, MeanLoss: sums[b] / float64(count), Count: count})
		}
	}
	return res, nil
}

// LengthOptions configures Length.
type LengthOptions struct {
	Checkpoints
	// Data is the held-out text: a file, a directory (with Glob), or token
	// files (.bin).
	Data, Glob string
	// ValFraction and Seed split Data as training splits it, and the
	// validation documents are evaluated: evaluating on the training corpus
	// with the trainer's fraction and seed uses the documents training held
	// out. ValFraction 0 uses all of Data.
	ValFraction float64
	Seed        uint64
	// Lengths, Samples and Source are as in LossByLengthOptions.
	Lengths []int
	Samples int
	Source  string
}

// check validates the options before any model is opened.
func (o *LengthOptions) check() error {
	if err := o.Checkpoints.check("length"); err != nil {
		return err
	}
	if o.Data == "" {
		return fmt.Errorf("eval length needs --data PATH")
	}
	if err := checkLengths(o.Lengths); err != nil {
		return fmt.Errorf("--lengths: %w", err)
	}
	if o.Samples < 0 {
		return fmt.Errorf("--samples %d: want at least 1", o.Samples)
	}
	switch o.Source {
	case "", SourceAuto, SourceDocuments, SourceConcat:
	default:
		return fmt.Errorf("--source %q: want auto, documents or concat", o.Source)
	}
	if o.ValFraction < 0 || o.ValFraction >= 1 {
		return fmt.Errorf("--val-fraction %v: want [0, 1)", o.ValFraction)
	}
	return nil
}

// LengthReport is the loss against context length of each model evaluated.
type LengthReport struct {
	Models []*LengthResult
}

// WriteTable writes the report as WriteLengthTable does.
func (r *LengthReport) WriteTable(w io.Writer) error { return WriteLengthTable(w, r.Models) }

// Save writes length.json, length.csv and length.png into dir (SaveLength),
// creating it as mkdir does, and returns the paths written.
func (r *LengthReport) Save(dir string) ([]string, error) {
	return saveReport(dir, "length", r.Models, SaveLength)
}

// Length measures the loss against context length (LossByLength) of each
// model in o.Models on the held-out text of o.Data. The text is read and
// tokenized once per tokenizer: models that share one share the samples.
func Length(ctx context.Context, o LengthOptions) (*LengthReport, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	type heldOut struct {
		ds *data.Dataset
		s  *data.Stream
	}
	cache := map[string]*heldOut{}
	defer func() {
		for _, h := range cache {
			h.ds.Close()
		}
	}()
	results, err := evaluate(ctx, &o.Checkpoints, func(ctx context.Context, lm *loadedModel) (*LengthResult, error) {
		h, ok := cache[lm.tokKey]
		if !ok {
			ds, err := data.LoadDataset(ctx, data.DatasetOptions{Input: o.Data, Glob: o.Glob, Tokenizer: lm.tok})
			if err != nil {
				return nil, fmt.Errorf("--data %s: %w", o.Data, err)
			}
			h = &heldOut{ds: ds, s: ds.Stream()}
			cache[lm.tokKey] = h
			if o.ValFraction > 0 {
				if _, h.s, err = data.SplitDataset(ds, o.ValFraction, o.Seed); err != nil {
					return nil, fmt.Errorf("--data %s: %w", o.Data, err)
				}
			}
			o.log().Info("held-out text", "data", o.Data, "documents", h.s.NumDocs(), "tokens", h.s.Len())
		}
		if err := h.ds.Validate(lm.m.Spec.Vocab); err != nil {
			return nil, err
		}
		return LossByLength(ctx, lm.m, h.s, LossByLengthOptions{
			Lengths: o.Lengths, Samples: o.Samples, Source: o.Source, Progress: lm.progress,
		})
	})
	if err != nil {
		return nil, err
	}
	return &LengthReport{Models: results}, nil
}
