package cmd

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestConvertRecordsItsOwnCommandLine: the model card's "Command:" line is
// the converted command's own arguments (here given to Run, not the test
// binary's os.Args), with options from the environment and --config
// spelled out as the flags they set.
func TestConvertRecordsItsOwnCommandLine(t *testing.T) {
	src := filepath.Join(fixtures, "gpt2-tiny")
	base := t.TempDir()
	yaml := filepath.Join(base, "opts.yaml")
	if err := os.WriteFile(yaml, []byte("layers: \"0\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string // after SRC DST
		want string   // after "ssmax convert SRC DST"
	}{
		{"no options", nil, nil, ""},
		{"flags in name order", nil, []string{"--variant", "bias", "--init", "identity", "-q"}, " --init=identity --variant=bias"},
		{"environment and config file", map[string]string{"SSMAX_S": "0.5"}, []string{"--config", yaml, "--init", "const"},
			" --init=const --layers=0 --s=0.5"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			dst := filepath.Join(base, "out "+itoa(i)) // a space: the card quotes it
			_, errs, code := run(t, append([]string{"convert", src, dst}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			card, err := os.ReadFile(filepath.Join(dst, "README.md"))
			if err != nil {
				t.Fatal(err)
			}
			want := "Command:\n\n```\nssmax convert " + src + " '" + dst + "'" + tc.want + "\n```\n"
			if !strings.Contains(string(card), want) {
				t.Errorf("model card lacks\n%s\ncard:\n%s", want, card)
			}
		})
	}
}

// TestConvertCalibrate: --init calibrate through the command line writes
// per-head values and the calibration report in the model card; the
// options it needs are checked.
func TestConvertCalibrate(t *testing.T) {
	src := filepath.Join(fixtures, "gpt2-tiny")
	text := filepath.Join(runtime.GOROOT(), "src", "fmt")
	dst := filepath.Join(t.TempDir(), "cal")
	out, errs, code := run(t, "convert", src, dst, "--init", "calibrate", "--calib-data", text, "--calib-glob", "*.go",
		"--tokenizer", "bytes", "--calib-tokens", "512", "--calib-steps", "2", "--train-len", "64", "-q")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "calibrated s per head on") || !strings.Contains(out, "init calibrate") {
		t.Errorf("output:\n%s", out)
	}
	card, _ := os.ReadFile(filepath.Join(dst, "README.md"))
	if !strings.Contains(string(card), "## Calibration") || !strings.Contains(string(card), "--init=calibrate") {
		t.Errorf("card:\n%s", card)
	}
	for _, args := range [][]string{
		{"--init", "calibrate"},
		{"--init", "calibrate", "--calib-data", text, "--s", "0.3"},
		{"--init", "calibrate", "--calib-data", text, "--variant", "fixed"},
	} {
		_, errs, code := run(t, append([]string{"convert", src, filepath.Join(t.TempDir(), "x")}, args...)...)
		if code != 1 || errs == "" {
			t.Errorf("%v: exit %d %q", args, code, errs)
		}
	}
}
