package calibrate

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/convert"
	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/model"
)

const fixtures = "../testdata/fixtures"

// calibText is the calibration text of the tests: Go source.
var calibText = filepath.Join(runtime.GOROOT(), "src", "fmt")

// softmaxFixtures lists the fixture checkpoints without SSMax state.
func softmaxFixtures(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(fixtures)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(fixtures, e.Name(), "config.json"))
		if err != nil || strings.Contains(string(b), `"ssmax"`) {
			continue
		}
		out = append(out, e.Name())
	}
	if len(out) < 10 {
		t.Fatalf("only %d softmax fixtures", len(out))
	}
	return out
}

// TestNeverWorseThanMatch calibrates every softmax fixture, both variants
// with parameters: the calibrated loss on the calibration text is at most
// match's (and identity's, for bias), and the search moved.
func TestNeverWorseThanMatch(t *testing.T) {
	names := softmaxFixtures(t)
	if testing.Short() {
		names = []string{"gpt2-tiny", "llama-tiny", "qwen2-tiny-window"}
	}
	for _, name := range names {
		for _, v := range []attnscale.Variant{attnscale.SSMax, attnscale.Bias} {
			r, err := Run(context.Background(), Options{Model: filepath.Join(fixtures, name), Variant: v, Data: calibText, Glob: "*.go",
				Tokenizer: "bytes", Tokens: 512, Steps: 4, TrainLen: 64})
			if err != nil {
				t.Fatalf("%s %s: %v", name, v, err)
			}
			if r.LossCalibrated > r.LossMatch {
				t.Errorf("%s %s: calibrated %.6f worse than match %.6f", name, v, r.LossCalibrated, r.LossMatch)
			}
			if r.LossIdentity != nil && (r.LossCalibrated > *r.LossIdentity || math.Abs(*r.LossIdentity-r.LossSoftmax) > 1e-4) {
				t.Errorf("%s %s: identity %.6f (softmax %.6f), calibrated %.6f", name, v, *r.LossIdentity, r.LossSoftmax, r.LossCalibrated)
			}
			if r.LossCalibrated == r.LossMatch && r.Start == "match" {
				t.Errorf("%s %s: 4 steps did not move the loss from match's %.6f", name, v, r.LossMatch)
			}
			if len(r.S) != len(r.Layers) || (v == attnscale.Bias) != (r.B != nil) || r.Tokens < 400 {
				t.Errorf("%s %s: result %+v", name, v, r)
			}
		}
	}
}

// TestConvertCalibrated writes the calibrated values with convert and
// reads them back: the converted checkpoint has those values per head and
// the calibrated loss on the calibration text; the model card reports it.
func TestConvertCalibrated(t *testing.T) {
	for _, c := range []struct {
		name   string
		v      attnscale.Variant
		layers string
	}{{"gpt2-tiny", attnscale.SSMax, ""}, {"llama-tiny", attnscale.Bias, "1"}} {
		src := filepath.Join(fixtures, c.name)
		o := Options{Model: src, Variant: c.v, Data: calibText, Glob: "*.go", Tokenizer: "bytes", Tokens: 512, Steps: 3, TrainLen: 64, Layers: c.layers}
		r, err := Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(t.TempDir(), "out")
		if _, err := convert.Run(context.Background(), convert.Options{Src: src, Dst: dst, Variant: c.v, Init: convert.InitCalibrate,
			TrainLen: 64, Layers: c.layers, PerHead: r.PerHead()}); err != nil {
			t.Fatal(err)
		}
		m, err := model.Open(dst, "", model.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range r.Layers {
			a := m.Attention(l)
			for h, s := range a.S.Values() {
				if s != float32(r.S[i][h]) {
					t.Fatalf("%s layer %d head %d: s %v, calibrated %v", c.name, l, h, s, r.S[i][h])
				}
			}
			if c.v == attnscale.Bias && a.B.Values()[0] != float32(r.B[i][0]) {
				t.Fatalf("%s layer %d: b %v, calibrated %v", c.name, l, a.B.Values()[0], r.B[i][0])
			}
		}
		if c.layers == "1" && m.Attention(0).Variant != attnscale.Softmax {
			t.Errorf("%s: layer 0 converted", c.name)
		}
		tok, _ := data.LoadModelTokenizer(src, "bytes")
		cd, err := load(context.Background(), &o, tok, 64, m.Spec.Vocab)
		if err != nil {
			t.Fatal(err)
		}
		got, err := cd.loss(m, false)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-r.LossCalibrated) > 1e-5 {
			t.Errorf("%s: converted checkpoint's loss %.6f, calibration said %.6f", c.name, got, r.LossCalibrated)
		}
		card, _ := os.ReadFile(filepath.Join(dst, "README.md"))
		if !strings.Contains(string(card), "## Calibration") || !strings.Contains(string(card), "| calibrated |") {
			t.Errorf("%s: model card:\n%s", c.name, card)
		}
	}
	// A conversion with init calibrate but no values, or values of the
	// wrong shape, is refused.
	dst := filepath.Join(t.TempDir(), "x")
	if _, err := convert.Run(context.Background(), convert.Options{Src: filepath.Join(fixtures, "gpt2-tiny"), Dst: dst, Variant: attnscale.SSMax, Init: convert.InitCalibrate}); err == nil {
		t.Error("calibrate without values accepted")
	}
	if _, err := convert.Run(context.Background(), convert.Options{Src: filepath.Join(fixtures, "gpt2-tiny"), Dst: dst, Variant: attnscale.SSMax, Init: convert.InitCalibrate,
		PerHead: &convert.PerHead{S: [][]float64{{1, 2}}}}); err == nil {
		t.Error("calibrate with values of the wrong shape accepted")
	}
}

func TestRefusals(t *testing.T) {
	src := filepath.Join(fixtures, "gpt2-tiny")
	for _, o := range []Options{
		{Model: src, Variant: attnscale.Fixed, Data: calibText},
		{Model: src, Variant: attnscale.SSMax},
		{Model: filepath.Join(fixtures, "gpt2-tiny-ssmax"), Variant: attnscale.SSMax, Data: calibText, Glob: "*.go", Tokenizer: "bytes"},
	} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
