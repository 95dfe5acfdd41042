package cmd

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/internal/hftest"
)

const (
	commitMain  = "1a2b3c4d5e6f70819203a4b5c6d7e8f901234567"
	commitSSMax = "9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"
	commitDemo  = "00112233445566778899aabbccddeeff00112233"
)

// copyDir copies the regular files of src into a new directory.
func copyDir(t *testing.T, src string, extra map[string]string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			b, _ := os.ReadFile(filepath.Join(src, e.Name()))
			os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
		}
	}
	for name, from := range extra {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, name), b, 0o644)
	}
	return dst
}

// fakeHubCache builds a Hugging Face hub cache in a temporary directory and
// points HF_HUB_CACHE at it: test-org/llama-tiny (main: the llama-tiny
// fixture with a tokenizer.model and a generation_config.json; tag ssmax:
// llama-tiny-ssmax-bias) and test-org/demo (the bundled demo model).
func fakeHubCache(t *testing.T) string {
	t.Helper()
	cache := t.TempDir()
	for _, v := range []string{"HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"} {
		t.Setenv(v, "")
	}
	t.Setenv("HF_HUB_CACHE", cache)
	gen := filepath.Join(t.TempDir(), "generation_config.json")
	os.WriteFile(gen, []byte(`{"eos_token_id": [2, 3]}`), 0o644)
	llama := copyDir(t, filepath.Join(fixtures, "llama-tiny"), map[string]string{
		"tokenizer.model":        "../data/testdata/sp/bpe-identity.model",
		"generation_config.json": gen,
	})
	hftest.AddSnapshot(t, cache, "test-org/llama-tiny", commitMain, llama, "main")
	hftest.AddSnapshot(t, cache, "test-org/llama-tiny", commitSSMax, filepath.Join(fixtures, "llama-tiny-ssmax-bias"), "ssmax")
	hftest.AddSnapshot(t, cache, "test-org/demo", commitDemo, demoBase, "main")
	return cache
}

func inspectFamily(t *testing.T, args ...string) (family, variant string) {
	t.Helper()
	out, errs, code := run(t, append(append([]string{"inspect"}, args...), "--json")...)
	if code != 0 {
		t.Fatalf("inspect %v: exit %d: %s", args, code, errs)
	}
	var r struct {
		Family string `json:"family"`
		SSMax  *struct {
			Variant string `json:"variant"`
		} `json:"ssmax"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.SSMax != nil {
		variant = r.SSMax.Variant
	}
	return r.Family, variant
}

// TestModelIDs: every command takes a Hugging Face model id from the local
// cache wherever it takes a model directory, with a revision (a ref or a
// commit prefix) or without; convert writes copies of the cached files,
// never symlinks; an id not in the cache is a one-line error naming the
// directory looked in; an existing local directory spelled like an id wins.
func TestModelIDs(t *testing.T) {
	cache := fakeHubCache(t)
	fixturesAbs, _ := filepath.Abs(fixtures)

	// inspect PATH
	if f, v := inspectFamily(t, "test-org/llama-tiny"); f != "llama" || v != "" {
		t.Errorf("inspect test-org/llama-tiny: %s %s", f, v)
	}
	for _, rev := range []string{"ssmax", commitSSMax, commitSSMax[:7]} {
		if f, v := inspectFamily(t, "test-org/llama-tiny@"+rev); f != "llama" || v != "bias" {
			t.Errorf("inspect test-org/llama-tiny@%s: %s %s", rev, f, v)
		}
	}

	// convert SRC: the output holds regular files only, with the cached
	// contents.
	dst := filepath.Join(t.TempDir(), "converted")
	if _, errs, code := run(t, "convert", "test-org/llama-tiny", dst); code != 0 {
		t.Fatalf("convert: exit %d: %s", code, errs)
	}
	local := filepath.Join(t.TempDir(), "local")
	if _, errs, code := run(t, "convert", filepath.Join(fixtures, "llama-tiny"), local); code != 0 {
		t.Fatalf("convert local: exit %d: %s", code, errs)
	}
	names := 0
	filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if p == dst {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s: mode %v (%v): want a regular file", p, fi.Mode(), err)
		}
		names++
		return nil
	})
	for _, name := range []string{"model.safetensors", "config.json"} {
		a, _ := os.ReadFile(filepath.Join(dst, name))
		b, _ := os.ReadFile(filepath.Join(local, name))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs from the conversion of the local fixture", name)
		}
	}
	for name, src := range map[string]string{"tokenizer.model": "../data/testdata/sp/bpe-identity.model", "generation_config.json": ""} {
		b, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || len(b) == 0 {
			t.Errorf("%s not copied: %v", name, err)
		}
		if src != "" {
			want, _ := os.ReadFile(src)
			if !bytes.Equal(b, want) {
				t.Errorf("%s: contents differ from the cached blob", name)
			}
		}
	}
	if card, _ := os.ReadFile(filepath.Join(dst, "README.md")); !strings.Contains(string(card), "from `test-org/llama-tiny` (`"+filepath.Join(cache, "models--test-org--llama-tiny", "snapshots", commitMain)+"`)") {
		t.Errorf("model card does not name the id and its snapshot:\n%s", card)
	}
	if names < 5 {
		t.Errorf("converted directory holds %d files", names)
	}
	if f, v := inspectFamily(t, dst); f != "llama" || v != "ssmax" {
		t.Errorf("inspect the converted copy: %s %s", f, v)
	}

	// score --model, generate --model, tokenize --model
	tokens := filepath.Join(t.TempDir(), "tokens.txt")
	os.WriteFile(tokens, []byte("1 2 3 4 5 6 7 8 9 10"), 0o644)
	byID := scoreRun(t, "--model", "test-org/llama-tiny@"+commitMain[:6], "--tokens", tokens)
	byDir := scoreRun(t, "--model", filepath.Join(fixtures, "llama-tiny"), "--tokens", tokens)
	if byID.MeanLoss != byDir.MeanLoss || byID.Tokens != 9 {
		t.Errorf("score by id %+v, by directory %+v", byID, byDir)
	}
	prompt := []string{"--prompt", "func ", "--temperature", "0", "--max-new-tokens", "12"}
	g1 := generateJSON(t, append([]string{"--model", "test-org/demo"}, prompt...)...)
	g2 := generateJSON(t, append([]string{"--model", demoBase}, prompt...)...)
	if g1.Text != g2.Text || g1.Text == "" {
		t.Errorf("generate by id %q, by directory %q", g1.Text, g2.Text)
	}
	if out, errs, code := run(t, "tokenize", "--model", "test-org/llama-tiny", "--text", "hello world"); code != 0 || out != "1 314 27 189 35 13 130\n" {
		t.Errorf("tokenize by id: exit %d %q %s", code, out, errs)
	}

	// eval --model: labelled by the id's name, not the snapshot hash.
	text := filepath.Join(runtime.GOROOT(), "src", "fmt")
	out, errs, code := run(t, "eval", "length", "--model", "test-org/llama-tiny", "--tokenizer", "bytes",
		"--data", text, "--glob", "*.go", "--lengths", "64", "--samples", "1", "--val-fraction", "0")
	if code != 0 || !strings.Contains(out, "llama-tiny") || strings.Contains(out, commitMain[:8]) {
		t.Errorf("eval length by id: exit %d %s\n%s", code, errs, out)
	}

	// finetune --model
	corpus := filepath.Join(t.TempDir(), "corpus.txt")
	os.WriteFile(corpus, bytes.Repeat([]byte("package main\n\nfunc main() {}\n"), 40), 0o644)
	run1 := filepath.Join(t.TempDir(), "run")
	if _, errs, code := run(t, "finetune", "-q", "--model", "test-org/llama-tiny", "--tokenizer", "bytes", "--data", corpus,
		"--out", run1, "--steps", "1", "--batch-size", "1", "--seq-len", "16", "--val-fraction", "0", "--eval-every", "0", "--save-every", "0"); code != 0 {
		t.Errorf("finetune by id: exit %d: %s", code, errs)
	} else if _, err := os.Stat(filepath.Join(run1, "final", "model.safetensors")); err != nil {
		t.Errorf("finetune by id: %v", err)
	}

	// An id that is not cached: one line naming the directory looked in.
	for _, args := range [][]string{
		{"inspect", "test-org/absent"},
		{"convert", "test-org/absent", filepath.Join(t.TempDir(), "x")},
		{"score", "--model", "test-org/absent", "--tokens", tokens},
		{"generate", "--model", "test-org/absent", "--prompt", "x"},
		{"tokenize", "--model", "test-org/absent", "--text", "x"},
		{"finetune", "--model", "test-org/absent", "--data", corpus, "--out", filepath.Join(t.TempDir(), "y")},
		{"eval", "length", "--model", "test-org/absent", "--data", corpus},
	} {
		_, errs, code := run(t, append(args, "-q")...)
		want := filepath.Join(cache, "models--test-org--absent")
		if code != 1 || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, want) || !strings.Contains(errs, "not in the Hugging Face cache") {
			t.Errorf("%v: exit %d, %q: want one line naming %s", args, code, errs, want)
		}
	}
	if _, errs, code := run(t, "inspect", "test-org/llama-tiny@nope"); code != 1 || !strings.Contains(errs, "refs: main, ssmax") {
		t.Errorf("unknown revision: exit %d %q", code, errs)
	}

	// A local directory spelled like a cached id is the local directory.
	t.Chdir(t.TempDir())
	os.MkdirAll("test-org", 0o755)
	if err := os.Symlink(filepath.Join(fixturesAbs, "gpt2-tiny"), filepath.Join("test-org", "llama-tiny")); err != nil {
		t.Fatal(err)
	}
	if f, _ := inspectFamily(t, "test-org/llama-tiny"); f != "gpt2" {
		t.Errorf("local test-org/llama-tiny: family %s, want the local gpt2", f)
	}
	if f, v := inspectFamily(t, "test-org/llama-tiny@ssmax"); f != "llama" || v != "bias" {
		t.Errorf("test-org/llama-tiny@ssmax (no such local path): %s %s", f, v)
	}
}
