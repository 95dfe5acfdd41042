package cmd

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

const demoBase = "../demo/base"

// spModelDir writes a directory with a config.json and the SentencePiece
// model name of data/testdata/sp as tokenizer.model (no weights: tokenize
// reads none).
func spModelDir(t *testing.T, name string) string {
	dir := filepath.Join(t.TempDir(), "sp")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type": "llama", "bos_token_id": 1, "eos_token_id": 2}`), 0o644)
	raw, err := os.ReadFile(filepath.Join("../data/testdata/sp", name))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "tokenizer.model"), raw, 0o644)
	return dir
}

func idsText(ids []int) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(id)
	}
	return strings.Join(parts, " ")
}

// TestTokenizeText: tokenize --text prints the ids Hugging Face's slow
// LlamaTokenizer gives (tokenizer(text)["input_ids"], BOS included; the
// goldens recorded with transformers) for a tokenizer.model checkpoint, and
// the bytes for the demo model; --json adds the token strings.
func TestTokenizeText(t *testing.T) {
	var goldens struct {
		Models []struct {
			Model string `json:"model"`
			Cases []struct {
				Text     string `json:"text"`
				HFLegacy []int  `json:"hf_legacy"`
			} `json:"cases"`
		} `json:"models"`
	}
	raw, err := os.ReadFile("../data/testdata/sp/goldens.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &goldens); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, m := range goldens.Models {
		if m.Model != "bpe-identity-bytes.model" && m.Model != "unigram-identity.model" {
			continue
		}
		dir := spModelDir(t, m.Model)
		for _, c := range m.Cases {
			if c.HFLegacy == nil || c.Text == "" {
				continue
			}
			checked++
			out, errs, code := run(t, "tokenize", "--model", dir, "--text", c.Text)
			if code != 0 {
				t.Fatalf("%s %q: exit %d: %s", m.Model, c.Text, code, errs)
			}
			if got := strings.TrimSuffix(out, "\n"); got != idsText(c.HFLegacy) {
				t.Errorf("%s %q: %s, transformers gives %s", m.Model, c.Text, got, idsText(c.HFLegacy))
			}
		}
	}
	if checked == 0 {
		t.Fatal("no golden case")
	}

	out, errs, code := run(t, "tokenize", "--model", demoBase, "--text", "héllo", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := `{"ids":[104,195,169,108,108,111],"tokens":["h","<0xC3>","<0xA9>","l","l","o"]}` + "\n"
	if out != want {
		t.Errorf("--json: %s, want %s", out, want)
	}
	out, _, _ = run(t, "tokenize", "--tokenizer", "bytes", "--text", "ab")
	if out != "97 98\n" {
		t.Errorf("--tokenizer bytes: %q", out)
	}
	for _, args := range [][]string{
		{"tokenize", "--model", demoBase, "--text", "x", "--data", "f", "--out", "o"},
		{"tokenize", "--model", demoBase},
		{"tokenize", "--text", "x"},
	} {
		if _, errs, code := run(t, args...); code != 1 || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d, %q: want a one-line error", args, code, errs)
		}
	}
}

type generated struct {
	PromptIDs []int   `json:"prompt_ids"`
	IDs       []int   `json:"ids"`
	Text      string  `json:"text"`
	Stop      string  `json:"stop"`
	Seed      *uint64 `json:"seed"`
}

func generateJSON(t *testing.T, args ...string) generated {
	t.Helper()
	out, errs, code := run(t, append(append([]string{"generate"}, args...), "--json")...)
	if code != 0 {
		t.Fatalf("generate %v: exit %d: %s", args, code, errs)
	}
	var g generated
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		t.Fatalf("generate --json: %v\n%s", err, out)
	}
	return g
}

// TestGenerateCommand: generate streams the text --json reports, the same
// for the same seed; greedy with --temperature 0; --stop cuts the text;
// a prompt beyond a learned-position model's context is refused in one
// line.
func TestGenerateCommand(t *testing.T) {
	args := []string{"--model", demoBase, "--prompt", "func (s *Server) ", "--max-new-tokens", "40", "--seed", "4", "--top-k", "50", "--top-p", "0.9"}
	out, errs, code := run(t, append([]string{"generate"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	g := generateJSON(t, args...)
	if out != g.Text || g.Text == "" || !utf8.ValidString(g.Text) || g.Seed == nil || *g.Seed != 4 {
		t.Errorf("streamed %q; --json %+v", out, g)
	}
	if !slices.Equal(g.PromptIDs, []int{'f', 'u', 'n', 'c', ' ', '(', 's', ' ', '*', 'S', 'e', 'r', 'v', 'e', 'r', ')', ' '}) {
		t.Errorf("prompt ids %v", g.PromptIDs)
	}
	if g.Stop == "length" && len(g.IDs) != 40 || g.Stop == "eos" && g.IDs[len(g.IDs)-1] != 256 {
		t.Errorf("stop %s after %d ids", g.Stop, len(g.IDs))
	}
	if again := generateJSON(t, args...); again.Text != g.Text {
		t.Errorf("same seed: %q then %q", g.Text, again.Text)
	}

	greedy := generateJSON(t, "--model", demoBase, "--prompt", "// Copyright 2009 The Go Authors. All rights reserved.\n", "--temperature", "0", "--max-new-tokens", "30")
	if greedy.Seed != nil || greedy.Text == "" {
		t.Errorf("greedy: %+v", greedy)
	}
	stop := greedy.Text[10:13]
	cut := strings.Index(greedy.Text, stop)
	s := generateJSON(t, "--model", demoBase, "--prompt", "// Copyright 2009 The Go Authors. All rights reserved.\n", "--temperature", "0", "--max-new-tokens", "30", "--stop", "@@@", "--stop", stop)
	if s.Stop != "stop" || s.Text != greedy.Text[:cut] {
		t.Errorf("--stop %q: %+v; want text %q", stop, s, greedy.Text[:cut])
	}

	long := strings.Repeat("x", 129)
	_, errs, code = run(t, "generate", "-q", "--model", filepath.Join(fixtures, "gpt2-tiny"), "--tokenizer", "bytes", "--prompt", long)
	if code != 1 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "prompt of 129 tokens leaves no room") || !strings.Contains(errs, "128 learned positions") {
		t.Errorf("long prompt: exit %d, %q", code, errs)
	}
	ok := generateJSON(t, "--model", filepath.Join(fixtures, "gpt2-tiny"), "--tokenizer", "bytes", "--prompt", long[:125], "--temperature", "0", "--max-new-tokens", "10")
	if ok.Stop != "length" && ok.Stop != "eos" || len(ok.IDs) > 4 {
		t.Errorf("prompt of 125 in 128 positions: %+v", ok)
	}
	if _, errs, code := run(t, "generate", "--model", demoBase, "--prompt", "x", "--top-p", "2"); code != 1 || !strings.Contains(errs, "top-p") {
		t.Errorf("--top-p 2: exit %d, %q", code, errs)
	}
}

type scoreJSON struct {
	Tokens   int        `json:"tokens"`
	MeanLoss float64    `json:"mean_loss"`
	NLL      []*float64 `json:"nll"`
	Windows  int        `json:"windows"`
	Window   int        `json:"window"`
	Stride   int        `json:"stride"`
}

func scoreRun(t *testing.T, args ...string) scoreJSON {
	t.Helper()
	out, errs, code := run(t, append(append([]string{"score"}, args...), "--json")...)
	if code != 0 {
		t.Fatalf("score %v: exit %d: %s", args, code, errs)
	}
	var s scoreJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("score --json: %v\n%s", err, out)
	}
	return s
}

// TestScoreText: score --text and --data encode with the model's
// tokenizer and give the score of the same ids given with --tokens; a text
// longer than the context is windowed at the context with --stride.
func TestScoreText(t *testing.T) {
	text := "func main() {\n\tfmt.Println(\"hello, world\")\n}\n"
	dir := t.TempDir()
	tokens, data := filepath.Join(dir, "tokens.txt"), filepath.Join(dir, "main.go")
	ids := make([]int, len(text))
	for i := range ids {
		ids[i] = int(text[i])
	}
	os.WriteFile(tokens, []byte(idsText(ids)), 0o644)
	os.WriteFile(data, []byte(text), 0o644)
	a := scoreRun(t, "--model", demoBase, "--text", text)
	b := scoreRun(t, "--model", demoBase, "--data", data)
	c := scoreRun(t, "--model", demoBase, "--tokens", tokens)
	if a.Tokens != len(text)-1 || a.Windows != 1 || a.MeanLoss != b.MeanLoss || a.MeanLoss != c.MeanLoss || a.Window != 256 {
		t.Errorf("--text %+v, --data %+v, --tokens %+v", a, b, c)
	}

	// 600 bytes in windows of the demo's 256 positions.
	long := strings.Repeat(text, 14)[:600]
	os.WriteFile(data, []byte(long), 0o644)
	disjoint := scoreRun(t, "--model", demoBase, "--data", data)
	if disjoint.Windows != 3 || disjoint.Tokens != 599-2 || disjoint.NLL[255] != nil || disjoint.NLL[511] != nil || disjoint.Stride != 256 {
		t.Errorf("disjoint windows: %d windows, %d tokens, window %d, stride %d", disjoint.Windows, disjoint.Tokens, disjoint.Window, disjoint.Stride)
	}
	strided := scoreRun(t, "--model", demoBase, "--data", data, "--stride", "128")
	if strided.Windows != 4 || strided.Tokens != 599 || strided.MeanLoss >= disjoint.MeanLoss {
		t.Errorf("stride 128: %d windows, %d tokens, mean %v (disjoint %v)", strided.Windows, strided.Tokens, strided.MeanLoss, disjoint.MeanLoss)
	}
	whole := scoreRun(t, "--model", demoBase, "--data", data, "--no-window")
	if whole.Windows != 1 || whole.Tokens != 599 || math.IsNaN(whole.MeanLoss) {
		t.Errorf("--no-window: %+v", whole.Windows)
	}
	out, errs, code := run(t, "score", "--model", demoBase, "--data", data, "--stride", "128")
	if code != 0 || !strings.Contains(out, "windows        4 (window 256, stride 128)") {
		t.Errorf("text output: exit %d %s\n%s", code, errs, out)
	}
	if _, errs, code := run(t, "score", "--model", demoBase, "--text", "a", "--tokens", tokens); code != 1 || !strings.Contains(errs, "one of --tokens FILE, --text TEXT or --data FILE") {
		t.Errorf("two sources: exit %d %q", code, errs)
	}
}
