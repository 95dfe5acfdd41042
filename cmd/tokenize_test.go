package cmd

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/data"
)

// TestTokenizeReadsOnlyTheConfig: tokenize --model takes the tokenizer
// kind and EOS from the checkpoint's config.json without reading its
// weights (here not even valid safetensors), and --tokenizer overrides the
// recorded kind.
func TestTokenizeReadsOnlyTheConfig(t *testing.T) {
	base := t.TempDir()
	text := filepath.Join(base, "doc.txt")
	if err := os.WriteFile(text, []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		config string
		flags  []string
		want   []int // tokens of the file
		errMsg string
	}{
		{"recorded bytes, eos from config", `{"model_type": "gpt2", "eos_token_id": 7, "ssmax_tokenizer": "bytes"}`, nil, []int{'a', 'b', 'c', 7}, ""},
		{"--tokenizer bytes over auto", `{"model_type": "llama", "eos_token_id": 2}`, []string{"--tokenizer", "bytes"}, []int{'a', 'b', 'c', 2}, ""},
		{"no tokenizer files", `{"model_type": "llama", "eos_token_id": 2}`, nil, nil, "no tokenizer files"},
		{"eos not an integer", `{"model_type": "llama", "eos_token_id": "x", "ssmax_tokenizer": "bytes"}`, nil, nil, "eos_token_id"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(base, "model"+itoa(i))
			os.MkdirAll(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "config.json"), []byte(tc.config), 0o644)
			os.WriteFile(filepath.Join(dir, "model.safetensors"), []byte("not weights"), 0o644)
			out := filepath.Join(base, "tokens"+itoa(i)+".bin")
			_, errs, code := run(t, append([]string{"tokenize", "--model", dir, "--data", text, "--out", out}, tc.flags...)...)
			if tc.errMsg != "" {
				if code != 1 || !strings.Contains(errs, tc.errMsg) || !strings.Contains(errs, dir) {
					t.Fatalf("exit %d %q: want an error naming %s and %q", code, errs, dir, tc.errMsg)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			f, err := data.OpenTokenFile(out, data.FormatAuto)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got := make([]int, f.Len())
			f.Read(got, 0)
			if !slices.Equal(got, tc.want) {
				t.Errorf("tokens %v, want %v", got, tc.want)
			}
		})
	}
}
