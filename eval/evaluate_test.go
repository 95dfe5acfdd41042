package eval

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// capture is a JSON logger and the messages it wrote.
func capture() (*slog.Logger, func() []string) {
	var buf bytes.Buffer
	return slog.New(slog.NewJSONHandler(&buf, nil)), func() []string {
		var msgs []string
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var rec struct{ Msg string }
			json.Unmarshal([]byte(line), &rec)
			msgs = append(msgs, rec.Msg)
		}
		return msgs
	}
}

// TestLengthOverModels: Length evaluates every model with its label and
// path, reads the held-out text once per tokenizer (the two GPT-2 fixtures
// share their byte tokenizer, the Llama one has another EOS), reports
// progress per model, and gives each model what LossByLength gives it.
func TestLengthOverModels(t *testing.T) {
	dir := writeDocs(t, []int{300, 150, 260})
	names := []string{"gpt2-tiny", "gpt2-tiny-ssmax", "llama-tiny"}
	var paths []string
	for _, n := range names {
		paths = append(paths, filepath.Join(fixtures, n))
	}
	log, msgs := capture()
	var progressed []string
	o := LengthOptions{
		Checkpoints: Checkpoints{Models: paths, Tokenizer: "bytes", Logger: log, Progress: func(model string, done, total int) {
			if len(progressed) == 0 || progressed[len(progressed)-1] != model {
				progressed = append(progressed, model)
			}
		}},
		Data: dir, Lengths: []int{64, 100}, Samples: 2,
	}
	rep, err := Length(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"model", "held-out text", "model", "model", "held-out text"}; !slices.Equal(msgs(), want) {
		t.Errorf("log messages %q, want %q", msgs(), want)
	}
	if !slices.Equal(progressed, names) {
		t.Errorf("progress for %q, want %q", progressed, names)
	}
	if len(rep.Models) != len(names) {
		t.Fatalf("%d results", len(rep.Models))
	}
	for i, r := range rep.Models {
		if r.Model != names[i] || r.Path != paths[i] || r.RoPEThetaScale != 1 {
			t.Errorf("result %d: model %q path %q scale %v", i, r.Model, r.Path, r.RoPEThetaScale)
		}
		m := openFixture(t, names[i])
		s, _ := byteStream(t, m, dir)
		want, err := LossByLength(context.Background(), m, s, LossByLengthOptions{Lengths: o.Lengths, Samples: o.Samples})
		if err != nil {
			t.Fatal(err)
		}
		for j, p := range r.Points {
			if p.MeanLoss != want.Points[j].MeanLoss {
				t.Errorf("%s length %d: loss %v, LossByLength gives %v", names[i], p.Length, p.MeanLoss, want.Points[j].MeanLoss)
			}
		}
	}
}

// TestNeedleEvaluationsOverModels: NIAH and Attention run every model on
// the same prompts; NIAH reports cells beyond learned positions as n/a,
// Attention refuses them naming the model.
func TestNeedleEvaluationsOverModels(t *testing.T) {
	hay := writeDocs(t, []int{400, 400})
	gpt2, llama := filepath.Join(fixtures, "gpt2-tiny"), filepath.Join(fixtures, "llama-tiny-ssmax-bias")
	needle := NeedleOptions{Haystack: hay, Trials: 1}
	niah, err := NIAH(context.Background(), NIAHOptions{
		Checkpoints: Checkpoints{Models: []string{gpt2, llama}, Tokenizer: "bytes"}, NeedleOptions: needle,
		Lengths: []int{100, 200}, Depths: []float64{0.5},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := niah.Models
	if len(r) != 2 || r[0].Model != "gpt2-tiny" || r[0].Cells[0][0].NA != "" || r[0].Cells[1][0].NA == "" || r[1].Cells[1][0].NA != "" {
		t.Errorf("niah results %+v", r)
	}
	att, err := Attention(context.Background(), AttentionOptions{
		Checkpoints: Checkpoints{Models: []string{llama, gpt2}, Tokenizer: "bytes"}, NeedleOptions: needle, Length: 100, Depth: 0.5,
	})
	if err != nil || len(att.Models) != 2 || att.Models[1].Model != "gpt2-tiny" || len(att.Models[0].Mass) != 2 {
		t.Fatalf("attention: %+v %v", att, err)
	}
	_, err = Attention(context.Background(), AttentionOptions{
		Checkpoints: Checkpoints{Models: []string{llama, gpt2}, Tokenizer: "bytes"}, NeedleOptions: needle, Length: 200,
	})
	if err == nil || !strings.Contains(err.Error(), "--model "+gpt2) || !strings.Contains(err.Error(), "learned positions") {
		t.Errorf("attention beyond learned positions: %v", err)
	}
}

// TestEvaluationOptionErrors: bad options fail naming the option before
// any model is opened (the model path here does not exist).
func TestEvaluationOptionErrors(t *testing.T) {
	hay := writeDocs(t, []int{100})
	ck := Checkpoints{Models: []string{filepath.Join(t.TempDir(), "absent")}}
	needle := NeedleOptions{Haystack: hay}
	length := func(change func(*LengthOptions)) func() error {
		return func() error {
			o := LengthOptions{Checkpoints: ck, Data: hay, Lengths: []int{64}}
			change(&o)
			_, err := Length(context.Background(), o)
			return err
		}
	}
	niah := func(change func(*NIAHOptions)) func() error {
		return func() error {
			o := NIAHOptions{Checkpoints: ck, NeedleOptions: needle, Lengths: []int{64}, Depths: []float64{0}}
			change(&o)
			_, err := NIAH(context.Background(), o)
			return err
		}
	}
	attention := func(change func(*AttentionOptions)) func() error {
		return func() error {
			o := AttentionOptions{Checkpoints: ck, NeedleOptions: needle, Length: 64}
			change(&o)
			_, err := Attention(context.Background(), o)
			return err
		}
	}
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"no models", length(func(o *LengthOptions) { o.Models = nil }), "needs --model"},
		{"negative theta scale", length(func(o *LengthOptions) { o.RoPEThetaScale = -1 }), "--rope-theta-scale"},
		{"no data", length(func(o *LengthOptions) { o.Data = "" }), "--data"},
		{"no lengths", length(func(o *LengthOptions) { o.Lengths = nil }), "--lengths"},
		{"zero length", length(func(o *LengthOptions) { o.Lengths = []int{0} }), "--lengths"},
		{"negative samples", length(func(o *LengthOptions) { o.Samples = -1 }), "--samples"},
		{"bad source", length(func(o *LengthOptions) { o.Source = "random" }), "--source"},
		{"val fraction 1", length(func(o *LengthOptions) { o.ValFraction = 1 }), "--val-fraction"},
		{"no haystack", niah(func(o *NIAHOptions) { o.Haystack = "" }), "--haystack"},
		{"missing haystack", niah(func(o *NIAHOptions) { o.Haystack = filepath.Join(hay, "absent") }), "--haystack"},
		{"needle without number", niah(func(o *NIAHOptions) { o.Needle = "no number" }), "{number}"},
		{"too many digits", niah(func(o *NIAHOptions) { o.Digits = 19 }), "digits"},
		{"negative trials", niah(func(o *NIAHOptions) { o.Trials = -1 }), "--trials"},
		{"depth beyond 1", niah(func(o *NIAHOptions) { o.Depths = []float64{1.5} }), "--depths"},
		{"no length", attention(func(o *AttentionOptions) { o.Length = 0 }), "--length"},
		{"negative depth", attention(func(o *AttentionOptions) { o.Depth = -0.5 }), "--depth"},
		{"absent model", attention(func(o *AttentionOptions) {}), "absent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}
