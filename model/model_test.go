package model_test

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/model"
	"github.com/ssmax/ssmax/safetensors"
)

const fixtures = "../testdata/fixtures"

// golden is a fixture's golden.json.
type golden struct {
	Tokens []int `json:"tokens"`
	Modes  map[string]struct {
		S    [][]float64 `json:"s"`
		B    [][]float64 `json:"b"`
		Loss float64     `json:"loss"`
	} `json:"modes"`
}

var goldenModes = map[string]attnscale.Variant{
	"softmax": attnscale.Softmax, "ssmax": attnscale.SSMax, "ssmax-bias": attnscale.Bias, "ssmax-fixed": attnscale.Fixed,
}

func f32s(v []float64) []float32 {
	if v == nil {
		return nil
	}
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func load(t *testing.T, dir string, o model.Options) (*model.Model, *checkpoint.Checkpoint) {
	t.Helper()
	c, err := checkpoint.Open(dir, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	spec, err := arch.Load(c)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(c, spec, o)
	if err != nil {
		t.Fatal(err)
	}
	return m, c
}

func readGolden(t *testing.T, dir string) (golden, *safetensors.File) {
	t.Helper()
	var g golden
	data, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(dir, "golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return g, f
}

// setMode puts every layer in the golden mode with the golden s and b.
func setMode(t *testing.T, m *model.Model, g golden, mode string) {
	t.Helper()
	gm := g.Modes[mode]
	for l := 0; l < m.Spec.Layers; l++ {
		var s, b []float32
		if gm.S != nil {
			s = f32s(gm.S[l])
		}
		if gm.B != nil {
			b = f32s(gm.B[l])
		}
		if err := m.SetAttention(l, goldenModes[mode], s, b); err != nil {
			t.Fatal(err)
		}
	}
}

func targetsOf(tokens []int) []int {
	out := make([]int, len(tokens))
	for i := range out {
		out[i] = -1
		if i+1 < len(tokens) {
			out[i] = tokens[i+1]
		}
	}
	return out
}

// fixtureNames lists every fixture with goldens: the independent PyTorch
// implementations' checkpoints of every supported family (see
// testdata/fixtures/README.md).
var fixtureNames = func() []string {
	entries, err := os.ReadDir(fixtures)
	if err != nil {
		panic(err)
	}
	var out []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(fixtures, e.Name(), "golden.json")); err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}()

// withGradients lists the fixtures that have golden gradients.
func withGradients() []string {
	var out []string
	for _, name := range fixtureNames {
		if _, err := os.Stat(filepath.Join(fixtures, name, "golden_grads.safetensors")); err == nil {
			out = append(out, name)
		}
	}
	return out
}

// TestGoldenLogits: every fixture in every mode gives the reference
// implementation's logits within 1e-4 relative, and its loss.
func TestGoldenLogits(t *testing.T) {
	for _, name := range fixtureNames {
		for mode := range goldenModes {
			t.Run(name+"/"+mode, func(t *testing.T) {
				dir := filepath.Join(fixtures, name)
				m, _ := load(t, dir, model.Options{})
				g, gf := readGolden(t, dir)
				setMode(t, m, g, mode)
				want, err := gf.Float32s("logits." + mode)
				if err != nil {
					t.Fatal(err)
				}
				logits, err := m.Forward(model.Input{IDs: g.Tokens})
				if err != nil {
					t.Fatal(err)
				}
				got := logits.Value().(*mat.Dense[float32]).Data().F32()
				if len(got) != len(want) {
					t.Fatalf("%d logits, want %d", len(got), len(want))
				}
				worst := 0.0
				for i := range got {
					d := math.Abs(float64(got[i])-float64(want[i])) / math.Max(1, math.Abs(float64(want[i])))
					worst = math.Max(worst, d)
				}
				if worst > 1e-4 {
					t.Errorf("max relative logit error %.3g > 1e-4", worst)
				}
				loss, err := m.Loss(model.Input{IDs: g.Tokens}, targetsOf(g.Tokens))
				if err != nil {
					t.Fatal(err)
				}
				if got, want := loss.Value().Item().F64(), g.Modes[mode].Loss; math.Abs(got-want) > 1e-5*want {
					t.Errorf("loss %.8f, want %.8f", got, want)
				}
			})
		}
	}
}

// TestGoldenGradients: the gradient of the mean loss with respect to every
// weight, s and b included, matches the reference within 1e-3 relative.
func TestGoldenGradients(t *testing.T) {
	names := withGradients()
	if len(names) < 10 {
		t.Fatalf("only %d fixtures with gradients: %v", len(names), names)
	}
	for _, name := range names {
		dir := filepath.Join(fixtures, name)
		gf, err := safetensors.Open(filepath.Join(dir, "golden_grads.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		defer gf.Close()
		byMode := map[string][]string{}
		for _, ti := range gf.Tensors() {
			if rest, ok := strings.CutPrefix(ti.Name, "grad."); ok {
				mode, tensor, _ := strings.Cut(rest, ".")
				byMode[mode] = append(byMode[mode], tensor)
			}
		}
		if len(byMode) == 0 {
			t.Fatalf("%s: no gradients in golden_grads", name)
		}
		for mode, tensors := range byMode {
			t.Run(name+"/"+mode, func(t *testing.T) {
				m, _ := load(t, dir, model.Options{})
				g, _ := readGolden(t, dir)
				setMode(t, m, g, mode)
				loss, err := m.Loss(model.Input{IDs: g.Tokens}, targetsOf(g.Tokens))
				if err != nil {
					t.Fatal(err)
				}
				if err := ag.Backward(loss); err != nil {
					t.Fatal(err)
				}
				byName := map[string]*model.Param{}
				for _, p := range m.Params() {
					byName[p.Name] = p
				}
				for _, tensor := range tensors {
					p := byName[tensor]
					if p == nil {
						t.Errorf("golden gradient for %s, which the model lacks", tensor)
						continue
					}
					want, err := gf.Float32s("grad." + mode + "." + tensor)
					if err != nil {
						t.Fatal(err)
					}
					if !p.HasGrad() {
						t.Errorf("%s: no gradient", tensor)
						continue
					}
					got := p.StoredValues(p.Grad().(*mat.Dense[float32]).Data().F32())
					scale := 0.0
					for _, w := range want {
						scale = math.Max(scale, math.Abs(float64(w)))
					}
					worst := 0.0
					for i := range got {
						worst = math.Max(worst, math.Abs(float64(got[i])-float64(want[i])))
					}
					if scale == 0 {
						scale = 1
					}
					if worst/scale > 1e-3 {
						t.Errorf("%s: max gradient error %.3g relative to %.3g", tensor, worst/scale, scale)
					}
				}
			})
		}
	}
}

// TestDecoderMatchesForward: a KV-cache decode, one token at a time and in
// chunks, gives the full forward's logits at every step, over the whole
// golden sequence (longer than every sliding window: the bounded caches
// must hold exactly what the window needs).
func TestDecoderMatchesForward(t *testing.T) {
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(fixtures, name)
			m, _ := load(t, dir, model.Options{})
			g, _ := readGolden(t, dir)
			tokens := g.Tokens
			if sc := m.Spec.RoPE.Scaling; sc != nil && (sc.Type == arch.RoPEDynamic || sc.Type == arch.RoPELongRoPE) {
				// The frequencies depend on the sequence length; as in
				// transformers, a decoder rotates each key with those in
				// effect when it was fed, so it matches a full forward
				// only while they stay the same.
				limit := m.Spec.Context
				if sc.Type == arch.RoPELongRoPE {
					limit = sc.OriginalMaxPositions
				}
				tokens = tokens[:min(len(tokens), limit)]
			}
			logits, err := m.Forward(model.Input{IDs: tokens})
			if err != nil {
				t.Fatal(err)
			}
			full := logits.Value().(*mat.Dense[float32]).Data().F32()
			v := m.Spec.Vocab
			for _, chunk := range []int{1, 5} {
				d := m.NewDecoder()
				for i := 0; i < len(tokens); i += chunk {
					j := min(i+chunk, len(tokens))
					step, err := d.Feed(tokens[i:j])
					if err != nil {
						t.Fatal(err)
					}
					for r := 0; r < j-i; r++ {
						for c := 0; c < v; c++ {
							a, b := step[r*v+c], full[(i+r)*v+c]
							if math.Abs(float64(a-b)) > 1e-4*math.Max(1, math.Abs(float64(b))) {
								t.Fatalf("chunk %d, position %d, token %d: decoder %v, forward %v", chunk, i+r, c, a, b)
							}
						}
					}
				}
				if d.Len() != len(tokens) {
					t.Errorf("decoder length %d", d.Len())
				}
				for l := 0; l < m.Spec.Layers; l++ {
					if w := m.Spec.Window(l); w > 0 && d.CachedPositions(l) > w-1 {
						t.Errorf("layer %d (window %d) caches %d positions", l, w, d.CachedPositions(l))
					}
				}
			}
		})
	}
}

// TestSegmentsAreIndependent: two documents packed in one input give the
// logits of each document alone.
func TestSegmentsAreIndependent(t *testing.T) {
	for _, name := range []string{"gpt2-tiny-ssmax", "llama-tiny-ssmax-bias"} {
		t.Run(name, func(t *testing.T) {
			m, _ := load(t, filepath.Join(fixtures, name), model.Options{})
			g, _ := readGolden(t, filepath.Join(fixtures, name))
			a, b := g.Tokens[:20], g.Tokens[20:45]
			packed, err := m.Forward(model.Input{IDs: append(append([]int{}, a...), b...), Segments: []int{0, len(a)}})
			if err != nil {
				t.Fatal(err)
			}
			la, _ := m.Forward(model.Input{IDs: a})
			lb, _ := m.Forward(model.Input{IDs: b})
			want := append(append([]float32{}, la.Value().Data().F32()...), lb.Value().Data().F32()...)
			got := packed.Value().Data().F32()
			for i := range want {
				if math.Abs(float64(got[i]-want[i])) > 1e-4*math.Max(1, math.Abs(float64(want[i]))) {
					t.Fatalf("logit %d: packed %v, alone %v", i, got[i], want[i])
				}
			}
		})
	}
}

// TestSaveRoundTrip: load then save with unchanged weights reproduces every
// tensor byte for byte; a model switched to SSMax saves its parameters and
// config object and loads back in that mode.
func TestSaveRoundTrip(t *testing.T) {
	for _, name := range fixtureNames {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(fixtures, name)
			m, _ := load(t, dir, model.Options{})
			out := filepath.Join(t.TempDir(), "saved")
			if err := m.Save(out, model.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
			for _, f := range files {
				if strings.HasPrefix(filepath.Base(f), "golden") {
					continue
				}
				a, _ := os.ReadFile(f)
				b, err := os.ReadFile(filepath.Join(out, filepath.Base(f)))
				if err != nil || !bytes.Equal(a, b) {
					t.Errorf("saved %s differs from the source (%d vs %d bytes, %v)", filepath.Base(f), len(b), len(a), err)
				}
			}
		})
	}
	m, _ := load(t, filepath.Join(fixtures, "gpt2-tiny"), model.Options{})
	for l := 0; l < m.Spec.Layers; l++ {
		if err := m.SetAttention(l, attnscale.SSMax, []float32{0.1, 0.2, 0.3, 0.4}, nil); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "ssmax")
	if err := m.Save(out, model.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	back, _ := load(t, out, model.Options{})
	if a := back.Attention(1); a.Variant != attnscale.SSMax || a.S == nil || a.S.Values()[3] != 0.4 {
		t.Fatalf("reloaded attention %+v", a)
	}
	// Same layout as the reference conversion of the same checkpoint.
	ref, err := safetensors.Open(filepath.Join(fixtures, "gpt2-tiny-ssmax", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	got, err := safetensors.Open(filepath.Join(out, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	for i, ti := range ref.Tensors() {
		if got.Tensors()[i].Name != ti.Name {
			t.Errorf("tensor %d: %s, reference %s", i, got.Tensors()[i].Name, ti.Name)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	m, _ := load(t, filepath.Join(fixtures, "gpt2-tiny"), model.Options{})
	long := make([]int, 129)
	tests := []struct {
		name string
		in   model.Input
		msg  string
	}{
		{"token past vocab", model.Input{IDs: []int{1, 256}}, "outside the vocabulary"},
		{"negative token", model.Input{IDs: []int{-1}}, "outside the vocabulary"},
		{"too long for learned positions", model.Input{IDs: long}, "exceeds the model's 128 learned positions"},
		{"bad segments", model.Input{IDs: []int{1, 2, 3}, Segments: []int{1}}, "segments"},
		{"empty", model.Input{}, "empty"},
	}
	for _, tc := range tests {
		if _, err := m.Forward(tc.in); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.msg)
		}
	}
}
