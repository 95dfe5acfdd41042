package cmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestEvalCommands runs the three evaluations on fixtures through the
// command line and checks their outputs and files.
func TestEvalCommands(t *testing.T) {
	gpt2 := filepath.Join(fixtures, "gpt2-tiny-ssmax")
	llama := filepath.Join(fixtures, "llama-tiny-ssmax-bias")
	text := filepath.Join(runtime.GOROOT(), "src", "fmt")
	out := t.TempDir()

	stdout, errs, code := run(t, "eval", "length", "--model", gpt2, "--model", llama, "--tokenizer", "bytes",
		"--data", text, "--glob", "*.go", "--lengths", "64,128,200", "--samples", "1", "--val-fraction", "0", "--out", out)
	if code != 0 {
		t.Fatalf("eval length: exit %d: %s", code, errs)
	}
	if !strings.Contains(stdout, "n/a") || !strings.Contains(stdout, "gpt2-tiny-ssmax") || !strings.Contains(stdout, "llama-tiny-ssmax-bias") {
		t.Errorf("eval length table:\n%s", stdout)
	}
	var rep struct {
		Models []struct {
			Model   string `json:"model"`
			Lengths []struct {
				Length   int     `json:"length"`
				NA       string  `json:"na"`
				MeanLoss float64 `json:"mean_loss"`
			} `json:"lengths"`
		} `json:"models"`
	}
	b, err := os.ReadFile(filepath.Join(out, "length.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("length.json: %v", err)
	}
	res := rep.Models
	if len(res) != 2 || res[0].Lengths[2].NA == "" || res[1].Lengths[2].NA != "" || res[1].Lengths[2].MeanLoss <= 0 {
		t.Errorf("length.json: %+v", res)
	}
	for _, f := range []string{"length.csv", "length.png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}

	stdout, errs, code = run(t, "eval", "niah", "--model", llama, "--tokenizer", "bytes", "--haystack", text, "--glob", "*.go",
		"--lengths", "127", "--depths", "0,1", "--trials", "1", "--out", out)
	if code != 0 || !strings.Contains(stdout, "accuracy") {
		t.Fatalf("eval niah: exit %d: %s\n%s", code, errs, stdout)
	}
	stdout, errs, code = run(t, "eval", "attention", "--model", llama, "--tokenizer", "bytes", "--haystack", text, "--glob", "*.go",
		"--length", "127", "--out", out)
	if code != 0 || !strings.Contains(stdout, "uniform share") {
		t.Fatalf("eval attention: exit %d: %s\n%s", code, errs, stdout)
	}
	for _, f := range []string{"niah.json", "niah.png", "attention.json", "attention.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	stdout, errs, code = run(t, "eval", "retrieval", "--model", llama, "--model", gpt2, "--tokenizer", "bytes",
		"--lengths", "64,200", "--depths", "0,1", "--trials", "1", "--attention", "--out", out)
	if code != 0 || !strings.Contains(stdout, "accuracy [95% CI]") || !strings.Contains(stdout, "key attention") || !strings.Contains(stdout, "n/a") {
		t.Fatalf("eval retrieval: exit %d: %s\n%s", code, errs, stdout)
	}
	for _, f := range []string{"retrieval.json", "retrieval.csv", "retrieval.png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	_, errs, code = run(t, "eval", "attention", "--model", gpt2, "--tokenizer", "bytes", "--haystack", text, "--glob", "*.go", "--length", "500")
	if code != 1 || !strings.Contains(errs, "learned positions") {
		t.Errorf("attention beyond learned positions: exit %d %q", code, errs)
	}
}
