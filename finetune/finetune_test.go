package finetune_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/convert"
	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/finetune"
	"github.com/ssmax/ssmax/model"
)

const fixtures = "../testdata/fixtures"

// goText is real text present wherever this builds: the fmt package source.
func goText() string { return filepath.Join(runtime.GOROOT(), "src", "fmt") }

func tinyPretrain(out string) finetune.Config {
	c := finetune.Defaults()
	c.Arch = "../configs/models/gpt2-rope-tiny.yaml"
	c.Data, c.Glob, c.Out = goText(), "*.go", out
	c.Steps, c.BatchSize, c.SeqLen = 12, 2, 64
	c.LR, c.MinLR, c.Warmup = 3e-3, 3e-4, 2
	c.EvalEvery, c.EvalBatches, c.SaveEvery, c.Keep = 4, 2, 4, 5
	return c
}

type record struct {
	Step     int       `json:"step"`
	Loss     float64   `json:"loss"`
	GradNorm float64   `json:"grad_norm"`
	LR       float64   `json:"lr"`
	ValLoss  *float64  `json:"val_loss"`
	SMean    []float64 `json:"s_mean"`
}

func readMetrics(t *testing.T, out string) []record {
	t.Helper()
	f, err := os.Open(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return recs
}

func sameLosses(t *testing.T, a, b []record) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d metric lines vs %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Step != b[i].Step || a[i].Loss != b[i].Loss || a[i].GradNorm != b[i].GradNorm || a[i].LR != b[i].LR {
			t.Fatalf("line %d: %+v vs %+v", i, a[i], b[i])
		}
		if (a[i].ValLoss == nil) != (b[i].ValLoss == nil) || (a[i].ValLoss != nil && *a[i].ValLoss != *b[i].ValLoss) {
			t.Fatalf("line %d: validation loss differs", i)
		}
	}
}

// TestPretrainDeterministicAndResumable: the same seed and config give
// identical metrics twice, and a run interrupted after a checkpoint and
// resumed gives the loss sequence of the uninterrupted run.
func TestPretrainDeterministicAndResumable(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three small runs")
	}
	base := t.TempDir()
	a, b, c := filepath.Join(base, "a"), filepath.Join(base, "b"), filepath.Join(base, "c")
	resA, err := finetune.Run(context.Background(), tinyPretrain(a), finetune.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if resA.FirstValLoss == nil || resA.ValLoss == nil || *resA.ValLoss >= *resA.FirstValLoss {
		t.Errorf("validation loss did not go down: %v -> %v", resA.FirstValLoss, resA.ValLoss)
	}
	if _, err := finetune.Run(context.Background(), tinyPretrain(b), finetune.Hooks{}); err != nil {
		t.Fatal(err)
	}
	sameLosses(t, readMetrics(t, a), readMetrics(t, b))

	// Interrupted at step 7: step_000004 is the newest complete checkpoint,
	// metrics.jsonl has lines past it.
	ctx, cancel := context.WithCancel(context.Background())
	hooks := finetune.Hooks{Step: func(m finetune.Metrics, total int) {
		if m.Step == 7 {
			cancel()
		}
	}}
	if _, err := finetune.Run(ctx, tinyPretrain(c), hooks); err == nil {
		t.Fatal("interrupted run reported success")
	}
	// A half-written checkpoint (no DONE marker) must be ignored.
	os.MkdirAll(filepath.Join(c, "step_000006"), 0o755)
	cfg := tinyPretrain(c)
	cfg.Resume = true
	if _, err := finetune.Run(context.Background(), cfg, finetune.Hooks{}); err != nil {
		t.Fatal(err)
	}
	sameLosses(t, readMetrics(t, a), readMetrics(t, c))
}

// TestSwitchToSSMax: pretraining with softmax switches to SSMax at the
// chosen step; the final checkpoint records it and holds trained s.
func TestSwitchToSSMax(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a small run")
	}
	out := t.TempDir()
	cfg := tinyPretrain(out)
	cfg.Steps, cfg.SwitchToSSMaxAt, cfg.Variant = 8, 5, "bias"
	if _, err := finetune.Run(context.Background(), cfg, finetune.Hooks{}); err != nil {
		t.Fatal(err)
	}
	recs := readMetrics(t, out)
	if recs[3].SMean != nil || recs[5].SMean == nil {
		t.Errorf("s appears at the wrong step: %v / %v", recs[3].SMean, recs[5].SMean)
	}
	c, err := checkpoint.Open(filepath.Join(out, "final"), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	spec, err := arch.Load(c)
	if err != nil {
		t.Fatal(err)
	}
	if spec.SSMax == nil || spec.SSMax.Variant != attnscale.Bias || len(spec.SSMax.Layers) != spec.Layers {
		t.Fatalf("final SSMax state %+v", spec.SSMax)
	}
	s, _ := c.Float32s(spec.SSMaxS(0))
	if s[0] == float32(1/math.Log(64)) {
		t.Errorf("s was not trained: %v", s)
	}
}

// TestTrainSSMaxOnlyChangesSAndB: --train ssmax on a converted fixture
// leaves every other tensor byte-identical, and the result reloads.
func TestTrainSSMaxOnlyChangesSAndB(t *testing.T) {
	out := t.TempDir()
	cfg := finetune.Defaults()
	cfg.Model = filepath.Join(fixtures, "llama-tiny-ssmax-bias")
	cfg.Tokenizer = "bytes"
	cfg.Data, cfg.Glob, cfg.Out = goText(), "*.go", out
	cfg.Steps, cfg.BatchSize, cfg.SeqLen, cfg.EvalEvery, cfg.LR = 3, 2, 64, 0, 1e-2
	cfg.Train = "ssmax"
	if _, err := finetune.Run(context.Background(), cfg, finetune.Hooks{}); err != nil {
		t.Fatal(err)
	}
	src, _ := checkpoint.Open(cfg.Model, checkpoint.Options{})
	defer src.Close()
	dst, err := checkpoint.Open(filepath.Join(out, "final"), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	changed := 0
	for _, name := range src.TensorNames() {
		a, _ := src.Tensor(name)
		b, ok := dst.Tensor(name)
		if !ok {
			t.Fatalf("%s missing from the output", name)
		}
		ab, _ := a.File.Bytes(name)
		bb, _ := b.File.Bytes(name)
		same := sha256.Sum256(ab) == sha256.Sum256(bb)
		isSSMax := strings.HasSuffix(name, ".ssmax_s") || strings.HasSuffix(name, ".ssmax_b")
		if !isSSMax && !same {
			t.Errorf("%s changed under --train ssmax", name)
		}
		if isSSMax && !same {
			changed++
		}
	}
	if changed != 4 {
		t.Errorf("%d of 4 SSMax tensors changed", changed)
	}
	if _, err := model.Open(filepath.Join(out, "final"), "", model.Options{}); err != nil {
		t.Errorf("reload: %v", err)
	}
}

// TestBadDataFailsBeforeTraining: each bad input fails with a clear error
// and no checkpoint is written.
func TestBadDataFailsBeforeTraining(t *testing.T) {
	base := t.TempDir()
	empty := filepath.Join(base, "empty")
	os.MkdirAll(empty, 0o755)
	os.WriteFile(filepath.Join(empty, "a.txt"), nil, 0o644)
	big := filepath.Join(base, "big.bin")
	if err := data.WriteTokenFile(big, []int{1, 2, 300, 4, 5, 6, 7, 8, 9, 10}, 1000); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(base, "corrupt.bin")
	raw, _ := os.ReadFile(big)
	raw[0] ^= 0xff
	os.WriteFile(corrupt, raw, 0o644)

	tests := []struct {
		name   string
		change func(*finetune.Config)
		msg    string
	}{
		{"empty corpus", func(c *finetune.Config) { c.Data, c.Glob = empty, "" }, "empty"},
		{"token past vocabulary", func(c *finetune.Config) { c.Data = big }, "300"},
		{"corrupted token file", func(c *finetune.Config) { c.Data = corrupt }, "corrupt.bin"},
		{"sequence beyond context", func(c *finetune.Config) { c.SeqLen = 4096 }, "--rope-theta-scale"},
		{"learned positions too short", func(c *finetune.Config) {
			c.Model = filepath.Join(fixtures, "gpt2-tiny")
			c.SeqLen = 200
		}, "128 learned positions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := finetune.Defaults()
			cfg.Model = filepath.Join(fixtures, "llama-tiny")
			cfg.Tokenizer = "bytes"
			cfg.Data, cfg.Glob, cfg.Out = goText(), "*.go", filepath.Join(t.TempDir(), "out")
			cfg.Steps, cfg.BatchSize, cfg.SeqLen = 2, 1, 32
			tc.change(&cfg)
			_, err := finetune.Run(context.Background(), cfg, finetune.Hooks{})
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want one naming %q", err, tc.msg)
			}
			entries, _ := os.ReadDir(cfg.Out)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), "step_") || e.Name() == "final" {
					t.Errorf("%s written despite the error", e.Name())
				}
			}
		})
	}
}

// TestSMeanPerLayer: metrics.jsonl's s_mean has the mean s of each layer
// and 0 for a layer without s; it is absent when no layer has s.
func TestSMeanPerLayer(t *testing.T) {
	base := t.TempDir()
	partial := filepath.Join(base, "partial")
	if _, err := convert.Run(context.Background(), convert.Options{
		Src: filepath.Join(fixtures, "gpt2-tiny"), Dst: partial, Variant: attnscale.SSMax, Init: convert.InitMatch, Layers: "1",
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		model string
		want  func([]float64) bool
	}{
		{partial, func(s []float64) bool { return len(s) == 2 && s[0] == 0 && s[1] > 0 }},
		{filepath.Join(fixtures, "gpt2-tiny"), func(s []float64) bool { return s == nil }},
	} {
		cfg := finetune.Defaults()
		cfg.Model, cfg.Tokenizer = tc.model, "bytes"
		cfg.Data, cfg.Glob, cfg.Out = goText(), "*.go", filepath.Join(t.TempDir(), "out")
		cfg.Steps, cfg.BatchSize, cfg.SeqLen, cfg.EvalEvery = 1, 1, 32, 0
		if _, err := finetune.Run(context.Background(), cfg, finetune.Hooks{}); err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(filepath.Join(cfg.Out, "metrics.jsonl"))
		if recs := readMetrics(t, cfg.Out); len(recs) != 1 || !tc.want(recs[0].SMean) || (recs[0].SMean == nil) == strings.Contains(string(raw), "s_mean") {
			t.Errorf("%s: metrics %s", tc.model, raw)
		}
	}
}
