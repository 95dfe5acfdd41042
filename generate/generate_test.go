package generate_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nlpodyssey/spago/mat"
	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/generate"
	"github.com/ssmax/ssmax/model"
)

const (
	fixtures = "../testdata/fixtures"
	demoBase = "../demo/base"
)

func open(t *testing.T, dir string) *model.Model {
	t.Helper()
	m, err := model.Open(dir, "", model.Options{Inference: true})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// randomIDs returns n ids below vocab, the same for the same seed.
func randomIDs(seed uint64, n, vocab int) []int {
	r := rand.New(rand.NewPCG(seed, 1))
	ids := make([]int, n)
	for i := range ids {
		ids[i] = r.IntN(vocab)
	}
	return ids
}

// greedyByForward decodes greedily by running the full forward pass over
// the growing sequence at every step (no KV cache).
func greedyByForward(m *model.Model, prompt []int, n int) ([]int, error) {
	seq := slices.Clone(prompt)
	v := m.Spec.Vocab
	var out []int
	for range n {
		logits, err := m.Forward(model.Input{IDs: seq})
		if err != nil {
			return nil, err
		}
		all := logits.Value().(*mat.Dense[float32]).Data().F32()
		id := generate.Argmax(all[len(all)-v:])
		out = append(out, id)
		seq = append(seq, id)
	}
	return out, nil
}

// unsupported reports an error of a model or input the current engine does
// not support (a family, an option, or a sliding window it cannot apply):
// the only reason the greedy test skips.
func unsupported(err error) bool {
	return errors.Is(err, arch.ErrUnsupported) || strings.Contains(err.Error(), "not implemented")
}

// TestGreedyMatchesForward: greedy generation through the KV cache (prompt
// fed in chunks, then one token per step) gives the tokens of greedy
// decoding by repeated full forward passes, for the bundled demo model,
// every fixture, and every attention variant. A fixture the engine does not
// support is skipped with the engine's error, so it turns on when support
// lands; the prompt plus generation (32 tokens) exceeds the sliding window
// of the windowed fixtures.
func TestGreedyMatchesForward(t *testing.T) {
	type tcase struct {
		name, dir string
		variant   attnscale.Variant // "" keeps the checkpoint's attention
	}
	cases := []tcase{{"demo-base", demoBase, ""}}
	ents, err := os.ReadDir(fixtures)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			cases = append(cases, tcase{e.Name(), filepath.Join(fixtures, e.Name()), ""})
		}
	}
	for _, v := range attnscale.SSMaxVariants {
		cases = append(cases, tcase{"llama-tiny-as-" + string(v), filepath.Join(fixtures, "llama-tiny"), v})
	}
	const promptLen, newTokens = 12, 20
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := model.Open(tc.dir, "", model.Options{Inference: true})
			if err != nil {
				if unsupported(err) {
					t.Skipf("%s: %v", tc.name, err)
				}
				t.Fatal(err)
			}
			if tc.variant != "" {
				h := m.Spec.Heads
				var s, b []float32
				if tc.variant.HasS() {
					s = slices.Repeat([]float32{0.4}, h)
				}
				if tc.variant.HasB() {
					b = slices.Repeat([]float32{0.7}, h)
				}
				for l := range m.Spec.Layers {
					if err := m.SetAttention(l, tc.variant, s, b); err != nil {
						t.Fatal(err)
					}
				}
				m.SetRequiresGrad(false)
			}
			prompt := randomIDs(uint64(len(tc.name)), promptLen, m.Spec.Vocab)
			newTokens := newTokens
			if sc := m.Spec.RoPE.Scaling; sc != nil && (sc.Type == arch.RoPEDynamic || sc.Type == arch.RoPELongRoPE) {
				// The frequencies change with the sequence length. As in
				// transformers, cached keys keep the rotation they were
				// fed with, so the cache equals repeated full forwards
				// only up to the length where the frequencies change.
				limit := m.Spec.Context
				if sc.Type == arch.RoPELongRoPE {
					limit = sc.OriginalMaxPositions
				}
				newTokens = min(newTokens, limit-promptLen)
			}
			want, err := greedyByForward(m, prompt, newTokens)
			if err != nil {
				if unsupported(err) {
					t.Skipf("%s: %v", tc.name, err)
				}
				t.Fatal(err)
			}
			for _, chunk := range []int{0, 5} {
				res, err := generate.Generate(context.Background(), m, nil, prompt, generate.Options{MaxNewTokens: newTokens, PrefillChunk: chunk}, nil)
				if err != nil {
					if unsupported(err) {
						t.Skipf("%s: %v", tc.name, err)
					}
					t.Fatal(err)
				}
				if !slices.Equal(res.IDs, want) || res.Stop != generate.StopLength {
					t.Errorf("chunk %d: KV cache %v (%s), full forwards %v", chunk, res.IDs, res.Stop, want)
				}
			}
		})
	}
}

// TestCapacity: a learned-position model generates up to its context and
// refuses a prompt it cannot read; a RoPE model has no such limit.
func TestCapacity(t *testing.T) {
	m := open(t, filepath.Join(fixtures, "gpt2-tiny")) // 128 learned positions
	for _, tc := range []struct{ prompt, want, got int }{{120, 20, 9}, {128, 5, 1}, {10, 5, 5}, {127, 1, 1}} {
		if n, err := generate.Capacity(m, tc.prompt, tc.want); err != nil || n != tc.got {
			t.Errorf("Capacity(%d, %d) = %d, %v; want %d", tc.prompt, tc.want, n, err, tc.got)
		}
	}
	if _, err := generate.Capacity(m, 129, 1); err == nil || !strings.Contains(err.Error(), "prompt of 129 tokens leaves no room") || !strings.Contains(err.Error(), "128 learned positions") {
		t.Errorf("Capacity(129): %v", err)
	}
	res, err := generate.Generate(context.Background(), m, nil, randomIDs(1, 125, 256), generate.Options{MaxNewTokens: 10}, nil)
	if err != nil || len(res.IDs) != 4 || res.Stop != generate.StopLength {
		t.Errorf("generation cut by the context: %+v, %v", res, err)
	}
	rope := open(t, demoBase) // RoPE, context 256
	if n, err := generate.Capacity(rope, 300, 50); err != nil || n != 50 {
		t.Errorf("RoPE Capacity(300, 50) = %d, %v", n, err)
	}
}

// TestEOS: generation stops at an EOS id, which ends the ids but not the
// text.
func TestEOS(t *testing.T) {
	m := open(t, filepath.Join(fixtures, "llama-tiny"))
	prompt := randomIDs(3, 8, 256)
	free, err := generate.Generate(context.Background(), m, nil, prompt, generate.Options{MaxNewTokens: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	eos := free.IDs[3]
	k := slices.Index(free.IDs, eos)
	res, err := generate.Generate(context.Background(), m, nil, prompt, generate.Options{MaxNewTokens: 10, EOS: []int{999, eos}}, nil)
	if err != nil || res.Stop != generate.StopEOS || !slices.Equal(res.IDs, free.IDs[:k+1]) {
		t.Errorf("EOS %d: %+v, %v; want ids %v", eos, res, err, free.IDs[:k+1])
	}
}

func TestConfigEOS(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"eos_token_id": [128001, 128009]}`), 0o644)
	os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(`{"eos_token_id": [128009, 128008], "bos_token_id": 1}`), 0o644)
	ids, err := generate.ConfigEOS(dir)
	if err != nil || !slices.Equal(ids, []int{128001, 128009, 128008}) {
		t.Errorf("ConfigEOS = %v, %v", ids, err)
	}
	os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(`{"eos_token_id": 7}`), 0o644)
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"eos_token_id": null}`), 0o644)
	if ids, err := generate.ConfigEOS(dir); err != nil || !slices.Equal(ids, []int{7}) {
		t.Errorf("ConfigEOS = %v, %v", ids, err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"eos_token_id": "x"}`), 0o644)
	if _, err := generate.ConfigEOS(dir); err == nil || !strings.Contains(err.Error(), "eos_token_id") {
		t.Errorf("bad eos_token_id: %v", err)
	}
}

// runDemo generates from the bundled byte-level model, returning the
// result and what was streamed.
func runDemo(t *testing.T, o generate.RunOptions) (*generate.Result, string) {
	t.Helper()
	o.Model = demoBase
	var out bytes.Buffer
	res, err := generate.Run(context.Background(), o, &out)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != res.Text {
		t.Errorf("streamed %q, result text %q", out.String(), res.Text)
	}
	return res, out.String()
}

// TestDemoGeneratesText: the model ssmax pretrained on the Go tree (bytes)
// writes non-empty valid UTF-8, the same for the same seed.
func TestDemoGeneratesText(t *testing.T) {
	sampled := generate.RunOptions{Prompt: "func main() {\n\t", Options: generate.Options{
		MaxNewTokens: 48, Sampling: generate.Sampling{Temperature: 0.8, TopK: 40, TopP: 0.95}, Seed: 1}}
	a, text := runDemo(t, sampled)
	if text == "" || !utf8.ValidString(text) || len(a.IDs) == 0 {
		t.Fatalf("text %q (valid UTF-8 %v), ids %v", text, utf8.ValidString(text), a.IDs)
	}
	if !slices.Equal(a.PromptIDs, []int(data.NewByteTokenizer(256).Encode(sampled.Prompt))) {
		t.Errorf("prompt ids %v", a.PromptIDs)
	}
	if a.Seed == nil || *a.Seed != 1 {
		t.Errorf("seed %v", a.Seed)
	}
	b, _ := runDemo(t, sampled)
	if b.Text != a.Text || !slices.Equal(a.IDs, b.IDs) {
		t.Errorf("same seed, texts %q and %q", a.Text, b.Text)
	}
	sampled.Seed = 2
	if c, _ := runDemo(t, sampled); c.Text == a.Text {
		t.Errorf("seeds 1 and 2 both wrote %q", c.Text)
	}
	t.Logf("sampled: %q", a.Text)

	greedy := generate.RunOptions{Prompt: "// Copyright 2009 The Go Authors. All rights reserved.\n", Options: generate.Options{MaxNewTokens: 64}}
	g, _ := runDemo(t, greedy)
	if g.Text == "" || !utf8.ValidString(g.Text) || g.Seed != nil {
		t.Errorf("greedy: %+v", g)
	}
	// top-k 1 is greedy whatever the temperature and seed.
	k1 := greedy
	k1.Sampling = generate.Sampling{Temperature: 1.3, TopK: 1}
	k1.Seed = 99
	if r, _ := runDemo(t, k1); r.Text != g.Text {
		t.Errorf("top-k 1 wrote %q, greedy %q", r.Text, g.Text)
	}
	t.Logf("greedy: %q", g.Text)

	// An empty prompt starts from the BOS token, else (bytes: no BOS) the
	// EOS token, GPT-2's convention.
	if e, _ := runDemo(t, generate.RunOptions{Options: generate.Options{MaxNewTokens: 8}}); !slices.Equal(e.PromptIDs, []int{256}) || len(e.IDs) == 0 {
		t.Errorf("empty prompt: %+v", e)
	}

	// A stop string inside the greedy text cuts it there.
	stop := g.Text[len(g.Text)/2 : len(g.Text)/2+3]
	cut := strings.Index(g.Text, stop)
	if cut == 0 {
		t.Fatalf("stop string %q starts the greedy text %q", stop, g.Text)
	}
	s := greedy
	s.Stop = []string{stop}
	r, _ := runDemo(t, s)
	if r.Stop != generate.StopString || r.Text != g.Text[:cut] || !slices.Equal(r.IDs, g.IDs[:len(r.IDs)]) {
		t.Errorf("stop %q: %+v; want text %q", stop, r, g.Text[:cut])
	}
}

// TestSentencePieceText: a model whose vocabulary is a trained
// SentencePiece model (with byte fallback) generates text through the
// SentencePiece decoder and the stream decoder: the streamed text is the
// decoding of prompt and generation less the prompt's.
func TestSentencePieceText(t *testing.T) {
	sp := "../data/testdata/sp/bpe-identity-bytes.model"
	tok, err := data.LoadTokenizer(".", sp, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := checkpoint.ParseConfig([]byte(`{"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 800,
		"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
		"max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
		"tie_word_embeddings": false, "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "sp-llama")
	if err := m.Save(dir, model.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(sp)
	os.WriteFile(filepath.Join(dir, "tokenizer.model"), raw, 0o644)

	o := generate.RunOptions{Model: dir, Prompt: "Hello world", Options: generate.Options{
		MaxNewTokens: 40, Sampling: generate.Sampling{Temperature: 1}, Seed: 3}}
	var out bytes.Buffer
	res, err := generate.Run(context.Background(), o, &out)
	if err != nil {
		t.Fatal(err)
	}
	if res.PromptIDs[0] != 1 || !slices.Equal(res.PromptIDs, tok.EncodeSpecial("Hello world")) {
		t.Errorf("prompt ids %v: want BOS 1 then the pieces", res.PromptIDs)
	}
	gen := res.IDs
	if res.Stop == generate.StopEOS {
		gen = gen[:len(gen)-1]
	}
	full, prompt := tok.Decode(append(slices.Clone(res.PromptIDs), gen...)), tok.Decode(res.PromptIDs)
	if res.Text == "" || out.String() != res.Text || !strings.HasPrefix(full, prompt) || full[len(prompt):] != res.Text {
		t.Errorf("streamed %q, text %q; decode(prompt+ids) %q less decode(prompt) %q", out.String(), res.Text, full, prompt)
	}
	t.Logf("%d ids (%s): %q", len(res.IDs), res.Stop, res.Text)
}
