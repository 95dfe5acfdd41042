package cmd

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const fixtures = "../testdata/fixtures"

// run executes ssmax with args and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestVersion(t *testing.T) {
	out, _, code := run(t, "version")
	if code != 0 || !strings.HasPrefix(out, "ssmax "+Version) {
		t.Fatalf("version: %q (exit %d)", out, code)
	}
}

func TestInspectJSON(t *testing.T) {
	out, errs, code := run(t, "inspect", filepath.Join(fixtures, "llama-tiny-ssmax-bias"), "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		Family  string `json:"family"`
		KVHeads int    `json:"kv_heads"`
		Params  int64  `json:"params"`
		SSMax   struct {
			Variant  string `json:"variant"`
			PerLayer []struct {
				S, B *struct{ Min, Mean, Max float64 }
			} `json:"per_layer"`
		} `json:"ssmax"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("inspect --json output: %v\n%s", err, out)
	}
	if r.Family != "llama" || r.KVHeads != 2 || r.Params != 125248 || r.SSMax.Variant != "bias" || len(r.SSMax.PerLayer) != 2 || r.SSMax.PerLayer[1].B == nil {
		t.Errorf("report %+v", r)
	}
}

// TestScoreGoldenLoss: ssmax score gives each fixture's expected loss in
// its own attention mode.
func TestScoreGoldenLoss(t *testing.T) {
	modes := map[string]string{"gpt2-tiny": "softmax", "gpt2-tiny-ssmax": "ssmax", "llama-tiny": "softmax", "llama-tiny-ssmax-bias": "ssmax-bias"}
	for name, mode := range modes {
		t.Run(name, func(t *testing.T) {
			var g struct {
				Tokens []int `json:"tokens"`
				Modes  map[string]struct {
					Loss float64 `json:"loss"`
				} `json:"modes"`
			}
			data, _ := os.ReadFile(filepath.Join(fixtures, name, "golden.json"))
			if err := json.Unmarshal(data, &g); err != nil {
				t.Fatal(err)
			}
			tokens := filepath.Join(t.TempDir(), "tokens.txt")
			var sb strings.Builder
			for _, id := range g.Tokens {
				sb.WriteString(" " + itoa(id))
			}
			os.WriteFile(tokens, []byte(sb.String()), 0o644)
			out, errs, code := run(t, "score", "--model", filepath.Join(fixtures, name), "--tokens", tokens, "--json")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var s struct {
				MeanLoss float64   `json:"mean_loss"`
				NLL      []float64 `json:"nll"`
			}
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				t.Fatal(err)
			}
			want := g.Modes[mode].Loss
			if math.Abs(s.MeanLoss-want) > 1e-5*want || len(s.NLL) != len(g.Tokens)-1 {
				t.Errorf("mean loss %.8f over %d tokens, want %.8f over %d", s.MeanLoss, len(s.NLL), want, len(g.Tokens)-1)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// safetensorsFile assembles a file from a header and data.
func safetensorsFile(header string, data []byte, pad bool) []byte {
	h := []byte(header)
	if pad {
		for (8+len(h))%8 != 0 {
			h = append(h, ' ')
		}
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	out = append(out, h...)
	return append(out, data...)
}

// TestMalformedFiles: every kind of malformed weight file makes inspect and
// convert fail with one line naming the file, exit code 1, no panic, and
// no output directory.
func TestMalformedFiles(t *testing.T) {
	cfg, _ := os.ReadFile(filepath.Join(fixtures, "gpt2-tiny", "config.json"))
	eight := make([]byte, 8)
	tests := []struct {
		name string
		file []byte
		msg  string
	}{
		{"truncated", []byte{1, 2, 3}, ""},
		{"header length past end", binary.LittleEndian.AppendUint64(nil, 1000), ""},
		{"header over limit", binary.LittleEndian.AppendUint64(nil, 200_000_000), ""},
		{"overlapping ranges", safetensorsFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight, true), `"b"`},
		{"gap between ranges", safetensorsFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[0],"data_offsets":[6,6]}}`, eight, true), ``},
		{"trailing bytes", safetensorsFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, eight, true), ``},
		{"bad dtype", safetensorsFile(`{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}`, eight, true), `"a"`},
		{"shape size mismatch", safetensorsFile(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, eight, true), `"a"`},
		{"duplicate names", safetensorsFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight, true), `"a"`},
		{"non-string metadata", safetensorsFile(`{"__metadata__":{"format":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, eight, true), ``},
		{"invalid UTF-8", safetensorsFile("{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", eight, true), ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ckpt")
			os.MkdirAll(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644)
			os.WriteFile(filepath.Join(dir, "model.safetensors"), tc.file, 0o644)
			for _, args := range [][]string{{"inspect", dir}, {"convert", dir, dir + "-out"}} {
				out, errs, code := run(t, args...)
				if code != 1 {
					t.Fatalf("%v: exit %d, want 1 (stdout %q)", args, code, out)
				}
				lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
				if len(lines) != 1 || !strings.Contains(errs, "model.safetensors") || !strings.Contains(errs, tc.msg) {
					t.Errorf("%v: stderr %q: want one line naming the file and %s", args, errs, tc.msg)
				}
			}
			if _, err := os.Stat(dir + "-out"); !os.IsNotExist(err) {
				t.Errorf("convert left an output directory")
			}
		})
	}
}

// TestOptionsFromEnvAndConfig: flags override SSMAX_* variables, which
// override the --config YAML file.
func TestOptionsFromEnvAndConfig(t *testing.T) {
	src := filepath.Join(fixtures, "gpt2-tiny")
	base := t.TempDir()
	yaml := filepath.Join(base, "opts.yaml")
	os.WriteFile(yaml, []byte("variant: bias\ninit: const\ns: 0.5\nb: 0.25\nlayers: \"1\"\n"), 0o644)

	readSSMax := func(dir string) map[string]any {
		data, err := os.ReadFile(filepath.Join(dir, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		json.Unmarshal(data, &cfg)
		m, _ := cfg["ssmax"].(map[string]any)
		return m
	}
	dst := filepath.Join(base, "from-file")
	if _, errs, code := run(t, "convert", src, dst, "--config", yaml); code != 0 {
		t.Fatalf("config file: %s", errs)
	}
	if s := readSSMax(dst); s["variant"] != "bias" || s["s_init"] != 0.5 || s["b_init"] != 0.25 || len(s["layers"].([]any)) != 1 {
		t.Errorf("from config file: %v", s)
	}
	t.Setenv("SSMAX_S", "0.75")
	dst = filepath.Join(base, "from-env")
	if _, errs, code := run(t, "convert", src, dst, "--config", yaml); code != 0 {
		t.Fatalf("env: %s", errs)
	}
	if s := readSSMax(dst); s["s_init"] != 0.75 || s["b_init"] != 0.25 {
		t.Errorf("env over file: %v", s)
	}
	dst = filepath.Join(base, "from-flag")
	if _, errs, code := run(t, "convert", src, dst, "--config", yaml, "--s", "0.125"); code != 0 {
		t.Fatalf("flag: %s", errs)
	}
	if s := readSSMax(dst); s["s_init"] != 0.125 {
		t.Errorf("flag over env: %v", s)
	}
	if _, errs, code := run(t, "inspect", src, "--log-format", "xml"); code != 1 || !strings.Contains(errs, "--log-format") {
		t.Errorf("bad --log-format: exit %d %q", code, errs)
	}
}

// TestCPUProfileWrittenOnFailure checks that a failing command still ends
// its --cpuprofile (a gzip-compressed pprof file), and a succeeding one too.
func TestCPUProfileWrittenOnFailure(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		code int
	}{
		{"failure", []string{"inspect", filepath.Join(t.TempDir(), "missing")}, 1},
		{"success", []string{"version"}, 0},
	} {
		prof := filepath.Join(t.TempDir(), "cpu.prof")
		_, stderr, code := run(t, append(c.args, "--cpuprofile", prof)...)
		if code != c.code {
			t.Fatalf("%s: exit %d (%s)", c.name, code, stderr)
		}
		b, err := os.ReadFile(prof)
		if err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("%s: profile not written (%d bytes, %v)", c.name, len(b), err)
		}
	}
}
