package cmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// logLines returns the non-empty lines of stderr.
func logLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestGlobalOptionsReachTheLogger: --quiet and --log-format reach the
// logger from the environment and from a --config file, not only from
// flags; flags beat the environment, which beats the file.
func TestGlobalOptionsReachTheLogger(t *testing.T) {
	base := t.TempDir()
	corpus := filepath.Join(base, "corpus.txt")
	if err := os.WriteFile(corpus, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog\n", 40)), 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := func(body string) string {
		p := filepath.Join(t.TempDir(), "opts.yaml")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	jsonFile, quietFile := yaml("log-format: json\n"), yaml("quiet: true\n")
	const (
		none = "none"
		text = "text"
		js   = "json"
	)
	tests := []struct {
		name  string
		env   map[string]string
		flags []string
		want  string
	}{
		{"default", nil, nil, text},
		{"quiet flag", nil, []string{"--quiet"}, none},
		{"quiet env", map[string]string{"SSMAX_QUIET": "1"}, nil, none},
		{"quiet file", nil, []string{"--config", quietFile}, none},
		{"json flag", nil, []string{"--log-format", "json"}, js},
		{"json env", map[string]string{"SSMAX_LOG_FORMAT": "json"}, nil, js},
		{"json file", nil, []string{"--config", jsonFile}, js},
		{"env beats file", map[string]string{"SSMAX_LOG_FORMAT": "text"}, []string{"--config", jsonFile}, text},
		{"flag beats env and file", map[string]string{"SSMAX_LOG_FORMAT": "json"}, []string{"--config", jsonFile, "--log-format", "text"}, text},
		{"quiet flag beats env", map[string]string{"SSMAX_QUIET": "1"}, []string{"--quiet=false"}, text},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := append([]string{"finetune", "--model", filepath.Join(fixtures, "llama-tiny"), "--tokenizer", "bytes",
				"--data", corpus, "--out", filepath.Join(base, "run"+itoa(i)), "--steps", "1", "--batch-size", "1",
				"--seq-len", "16", "--val-fraction", "0", "--eval-every", "0"}, tc.flags...)
			stdout, stderr, code := run(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !strings.Contains(stdout, "trained 1 steps") {
				t.Errorf("stdout %q", stdout)
			}
			lines := logLines(stderr)
			switch tc.want {
			case none:
				if len(lines) != 0 {
					t.Errorf("want no log lines, got:\n%s", stderr)
				}
			case js:
				if len(lines) == 0 {
					t.Fatal("no log lines")
				}
				for _, l := range lines {
					var rec map[string]any
					if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["msg"] == nil {
						t.Errorf("not a JSON log line: %q", l)
					}
				}
			case text:
				if len(lines) == 0 {
					t.Fatal("no log lines")
				}
				for _, l := range lines {
					if !strings.HasPrefix(l, "time=") || strings.HasPrefix(l, "{") {
						t.Errorf("not a text log line: %q", l)
					}
				}
			}
		})
	}
}
