// Package calibrate chooses the initial SSMax parameters of a conversion
// per head: the s (and, for the bias variant, b) of every converted head
// that keep the converted model closest to the original on calibration
// text, measured by the next-token loss over windows of at most the
// training length L.
//
// It starts from the better of the closed-form initialisations (match:
// s = 1/ln L, b = 0; for the bias variant also identity: s = 0, b = 1,
// which is the original model exactly) and runs full-batch Adam on s and b
// alone, every other weight frozen, keeping the best parameters seen. The
// result is therefore never worse than match on the calibration text.
//
// convert does not load models (it streams tensors); the command line
// calls Run, then convert with the values found (convert.Options.PerHead).
package calibrate

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/convert"
	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/model"
)

// Options configure a calibration.
type Options struct {
	// Model is the softmax checkpoint to convert.
	Model string
	// Variant is ssmax or bias (fixed has no parameter to choose).
	Variant attnscale.Variant
	// TrainLen is L (0: the model's context); windows are at most L tokens.
	TrainLen int
	// Layers are the layers to convert, as convert's --layers ("" for
	// all).
	Layers string
	// Data is the calibration text: a file, a directory (with Glob) or
	// token files (.bin); Tokenizer as every command reads it ("auto",
	// "bytes" or a path).
	Data, Glob, Tokenizer string
	// Tokens is the number of calibration tokens (default 16384), read from
	// the start of Data in windows of L tokens.
	Tokens int
	// Steps is the number of Adam steps (default 40); LR their learning
	// rate (default 0.1/ln L, about half of match's s per ten steps).
	Steps int
	LR    float64
	// Logger, if not nil, receives a line per step.
	Logger *slog.Logger
}

// Result is a calibration.
type Result struct {
	Variant  attnscale.Variant `json:"variant"`
	TrainLen int               `json:"train_len"`
	Layers   []int             `json:"layers"`
	// S[i] and B[i] are the values per head of layer Layers[i] (B nil for
	// the ssmax variant).
	S [][]float64 `json:"s"`
	B [][]float64 `json:"b,omitempty"`
	// Start is the initialisation the search started from (match or
	// identity).
	Start string `json:"start"`
	// Loss of the original softmax model, of the match initialisation (and
	// identity, for bias) and of the calibrated values, in nats per token
	// on the calibration text.
	LossSoftmax    float64  `json:"loss_softmax"`
	LossMatch      float64  `json:"loss_match"`
	LossIdentity   *float64 `json:"loss_identity,omitempty"`
	LossCalibrated float64  `json:"loss_calibrated"`
	// Tokens scored (predictions), Steps taken and the wall time.
	Tokens  int     `json:"tokens"`
	Steps   int     `json:"steps"`
	Seconds float64 `json:"seconds"`
}

func (o *Options) defaults() {
	if o.Tokens <= 0 {
		o.Tokens = 16384
	}
	if o.Steps < 0 {
		o.Steps = 0
	} else if o.Steps == 0 {
		o.Steps = 40
	}
	if o.Tokenizer == "" {
		o.Tokenizer = "auto"
	}
}

// calibData is the calibration batches.
type calibData struct {
	batches []data.Batch
	count   int // predictions
}

// load reads Tokens tokens of calibration text in windows of seqLen.
func load(ctx context.Context, o *Options, tok data.Tokenizer, seqLen, vocab int) (*calibData, error) {
	ds, err := data.LoadDataset(ctx, data.DatasetOptions{Input: o.Data, Glob: o.Glob, Tokenizer: tok})
	if err != nil {
		return nil, fmt.Errorf("--calib-data %s: %w", o.Data, err)
	}
	defer ds.Close()
	if err := ds.Validate(vocab); err != nil {
		return nil, err
	}
	ev, err := data.NewEvalLoader(ds.Stream(), seqLen, max(1, min(8, o.Tokens/seqLen)))
	if err != nil {
		return nil, fmt.Errorf("--calib-data %s: %w", o.Data, err)
	}
	cd := &calibData{}
	seen := 0
	for seen < o.Tokens {
		b, ok := ev.Next()
		if !ok {
			break
		}
		// The stream is memory-mapped: keep copies.
		b.Inputs = append([]int(nil), b.Inputs...)
		b.Targets = append([]int(nil), b.Targets...)
		b.Segments = append([]int(nil), b.Segments...)
		cd.batches = append(cd.batches, b)
		seen += len(b.Inputs)
		for _, t := range b.Targets {
			if t >= 0 {
				cd.count++
			}
		}
	}
	if cd.count == 0 {
		return nil, fmt.Errorf("--calib-data %s: no calibration tokens", o.Data)
	}
	return cd, nil
}

// loss is the mean loss over the calibration batches; with grad it also
// accumulates the gradients of the trainable parameters (each batch's
// gradient weighted by its share of the predictions).
func (cd *calibData) loss(m *model.Model, grad bool) (float64, error) {
	var sum float64
	for _, b := range cd.batches {
		n := 0
		for _, t := range b.Targets {
			if t >= 0 {
				n++
			}
		}
		if n == 0 {
			continue
		}
		l, err := m.Loss(model.Input{IDs: b.Inputs, Segments: b.Segments}, b.Targets)
		if err != nil {
			return 0, err
		}
		w := float64(n) / float64(cd.count)
		sum += l.Value().Item().F64() * w
		if grad {
			if err := ag.Backward(ag.ProdScalar(l, mat.Scalar(float32(w)))); err != nil {
				return 0, err
			}
		}
	}
	return sum, nil
}

// setAll sets every calibrated layer's s and b.
func setAll(m *model.Model, v attnscale.Variant, layers []int, s, b [][]float64) error {
	for i, l := range layers {
		var sv, bv []float32
		if v.HasS() {
			sv = attnscale.Values(s[i])
		}
		if v.HasB() {
			bv = attnscale.Values(b[i])
		}
		if err := m.SetAttention(l, v, sv, bv); err != nil {
			return err
		}
	}
	return nil
}

// fill returns layers×heads copies of v.
func fill(layers, heads int, v float64) [][]float64 {
	out := make([][]float64, layers)
	for i := range out {
		out[i] = make([]float64, heads)
		for h := range out[i] {
			out[i][h] = v
		}
	}
	return out
}

// clone copies a [layer][head] table.
func clone(x [][]float64) [][]float64 {
	if x == nil {
		return nil
	}
	out := make([][]float64, len(x))
	for i := range x {
		out[i] = append([]float64(nil), x[i]...)
	}
	return out
}

// Run calibrates the conversion of o.Model. It reads the model and the
// calibration text, measures the original model, the closed-form
// initialisations and then o.Steps steps of Adam on s (and b), and
// returns the best values found.
func Run(ctx context.Context, o Options) (*Result, error) {
	o.defaults()
	start := time.Now()
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !o.Variant.HasS() {
		return nil, fmt.Errorf("--init calibrate chooses s (and b) per head; variant %s has none", o.Variant)
	}
	if o.Data == "" {
		return nil, fmt.Errorf("--init calibrate needs --calib-data PATH")
	}
	m, err := model.Open(o.Model, "", model.Options{})
	if err != nil {
		return nil, err
	}
	spec := m.Spec
	for l := 0; l < spec.Layers; l++ {
		if m.Attention(l).Variant != attnscale.Softmax {
			return nil, fmt.Errorf("%s: layer %d already uses %s attention: calibrate a softmax checkpoint", o.Model, l, m.Attention(l).Variant)
		}
	}
	iv, err := arch.ResolveInit(arch.InitRequest{Variant: o.Variant, Init: arch.InitMatch, TrainLen: o.TrainLen, Context: spec.Context})
	if err != nil {
		return nil, err
	}
	L := iv.TrainLen
	layers, err := convert.ParseLayers(o.Layers, spec.Layers)
	if err != nil {
		return nil, fmt.Errorf("--layers: %w", err)
	}
	tok, err := data.LoadModelTokenizer(o.Model, o.Tokenizer)
	if err != nil {
		return nil, fmt.Errorf("--tokenizer %s: %w", o.Tokenizer, err)
	}
	seqLen := L
	if spec.Position == arch.LearnedPositions {
		seqLen = min(seqLen, spec.Context)
	}
	cd, err := load(ctx, &o, tok, seqLen, spec.Vocab)
	if err != nil {
		return nil, err
	}
	m.SetRequiresGrad(false)
	res := &Result{Variant: o.Variant, TrainLen: L, Layers: layers, Tokens: cd.count}
	if res.LossSoftmax, err = cd.loss(m, false); err != nil {
		return nil, err
	}
	heads := spec.Heads
	s := fill(len(layers), heads, attnscale.MatchS(L))
	var b [][]float64
	if o.Variant.HasB() {
		b = fill(len(layers), heads, 0)
	}
	if err := setAll(m, o.Variant, layers, s, b); err != nil {
		return nil, err
	}
	if res.LossMatch, err = cd.loss(m, false); err != nil {
		return nil, err
	}
	res.Start = arch.InitMatch
	best, bestS, bestB := res.LossMatch, clone(s), clone(b)
	if o.Variant.HasB() {
		is, ib := fill(len(layers), heads, 0), fill(len(layers), heads, 1)
		if err := setAll(m, o.Variant, layers, is, ib); err != nil {
			return nil, err
		}
		li, err := cd.loss(m, false)
		if err != nil {
			return nil, err
		}
		res.LossIdentity = &li
		if li < best {
			best, bestS, bestB, res.Start = li, clone(is), clone(ib), arch.InitIdentity
		}
	}
	log.Info("calibrate", "tokens", cd.count, "softmax", fmt.Sprintf("%.4f", res.LossSoftmax), "match", fmt.Sprintf("%.4f", res.LossMatch), "start", res.Start)
	// Adam on s and b from the best start.
	s, b = clone(bestS), clone(bestB)
	if err := setAll(m, o.Variant, layers, s, b); err != nil {
		return nil, err
	}
	lr := o.LR
	if lr <= 0 {
		lr = 0.1 / math.Log(float64(L))
	}
	var ps []*model.Param
	for _, l := range layers {
		a := m.Attention(l)
		ps = append(ps, a.S)
		if a.B != nil {
			ps = append(ps, a.B)
		}
	}
	for _, p := range ps {
		p.SetRequiresGrad(true)
	}
	adam := newAdam(ps, lr)
	for step := 0; step < o.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		l, err := cd.loss(m, true)
		if err != nil {
			return nil, err
		}
		if l < best {
			best = l
			bestS, bestB = readBack(m, layers)
		}
		adam.step()
		res.Steps = step + 1
		log.Debug("calibrate", "step", step, "loss", fmt.Sprintf("%.4f", l), "best", fmt.Sprintf("%.4f", best))
	}
	if o.Steps > 0 {
		l, err := cd.loss(m, false)
		if err != nil {
			return nil, err
		}
		if l < best {
			best = l
			bestS, bestB = readBack(m, layers)
		}
	}
	res.S, res.B, res.LossCalibrated = bestS, bestB, best
	if !o.Variant.HasB() {
		res.B = nil
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// readBack reads the model's current s and b of layers.
func readBack(m *model.Model, layers []int) (s, b [][]float64) {
	for _, l := range layers {
		a := m.Attention(l)
		s = append(s, toF64(a.S.Values()))
		if a.B != nil {
			b = append(b, toF64(a.B.Values()))
		}
	}
	return s, b
}

func toF64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// adam is a plain Adam optimiser over a few small parameters.
type adam struct {
	ps     []*model.Param
	m, v   [][]float64
	lr     float64
	t      int
	b1, b2 float64
}

func newAdam(ps []*model.Param, lr float64) *adam {
	a := &adam{ps: ps, lr: lr, b1: 0.9, b2: 0.99}
	for _, p := range ps {
		a.m = append(a.m, make([]float64, len(p.Values())))
		a.v = append(a.v, make([]float64, len(p.Values())))
	}
	return a
}

// step applies one update from the accumulated gradients and clears them.
func (a *adam) step() {
	a.t++
	c1 := 1 - math.Pow(a.b1, float64(a.t))
	c2 := 1 - math.Pow(a.b2, float64(a.t))
	for i, p := range a.ps {
		if !p.HasGrad() {
			continue
		}
		g := p.Grad().(*mat.Dense[float32]).Data().F32()
		vals := p.Values()
		for j := range vals {
			gj := float64(g[j])
			a.m[i][j] = a.b1*a.m[i][j] + (1-a.b1)*gj
			a.v[i][j] = a.b2*a.v[i][j] + (1-a.b2)*gj*gj
			vals[j] -= float32(a.lr * (a.m[i][j] / c1) / (math.Sqrt(a.v[i][j]/c2) + 1e-8))
		}
		p.ZeroGrad()
	}
}

// PerHead returns the values for convert, with the model card's notes.
func (r *Result) PerHead() *convert.PerHead {
	return &convert.PerHead{S: r.S, B: r.B, Notes: r.Notes()}
}

// Notes is the Markdown section the model card gets: the losses on the
// calibration text and the values chosen per layer.
func (r *Result) Notes() string {
	var b strings.Builder
	b.WriteString("## Calibration\n\n")
	fmt.Fprintf(&b, "s%s chosen per head to keep the model closest to the original on %d tokens of calibration text "+
		"(windows of at most L = %d tokens): %d steps of Adam on s%s alone from the %s initialisation, keeping the best values "+
		"(%.1f s).\n\n", map[bool]string{true: " and b", false: ""}[r.B != nil], r.Tokens, r.TrainLen, r.Steps,
		map[bool]string{true: " and b", false: ""}[r.B != nil], r.Start, r.Seconds)
	b.WriteString("| model | loss on the calibration text (nats/token) |\n|---|---|\n")
	fmt.Fprintf(&b, "| original (softmax) | %.4f |\n", r.LossSoftmax)
	fmt.Fprintf(&b, "| match (s = 1/ln %d = %.4f) | %.4f |\n", r.TrainLen, attnscale.MatchS(r.TrainLen), r.LossMatch)
	if r.LossIdentity != nil {
		fmt.Fprintf(&b, "| identity (s = 0, b = 1) | %.4f |\n", *r.LossIdentity)
	}
	fmt.Fprintf(&b, "| calibrated | %.4f |\n\n", r.LossCalibrated)
	head := "| layer | s per head | s mean |"
	sep := "|---|---|---|"
	if r.B != nil {
		head += " b per head | b mean |"
		sep += "---|---|"
	}
	b.WriteString(head + "\n" + sep + "\n")
	row := func(x []float64) (string, float64) {
		var parts []string
		var sum float64
		for _, v := range x {
			parts = append(parts, strconv.FormatFloat(v, 'f', 4, 64))
			sum += v
		}
		return strings.Join(parts, " "), sum / float64(max(1, len(x)))
	}
	for i, l := range r.Layers {
		sv, sm := row(r.S[i])
		fmt.Fprintf(&b, "| %d | %s | %.4f |", l, sv, sm)
		if r.B != nil {
			bv, bm := row(r.B[i])
			fmt.Fprintf(&b, " %s | %.4f |", bv, bm)
		}
		b.WriteString("\n")
	}
	return b.String()
}
