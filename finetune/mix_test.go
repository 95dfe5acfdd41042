package finetune

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/data"
)

func TestIsMixed(t *testing.T) {
	for _, f := range []float64{0, 0.25, 0.5, 1.0 / 3, 1} {
		n, last := 0, int64(-1)
		for g := int64(0); g < 1200; g++ {
			idx, ok := isMixed(g, f)
			if ok {
				n++
				if idx != last+1 {
					t.Fatalf("f %v: sequence %d is document %d after %d", f, g, idx, last)
				}
				last = idx
			}
		}
		if want := int(1200 * f); n != want {
			t.Errorf("f %v: %d of 1200 sequences mixed, want %d", f, n, want)
		}
	}
}

// TestMixedBatch checks the rows the mix replaces: whole retrieval
// documents with their boundaries as segments, no target across a
// boundary, the other rows untouched; and that a resumed run trains on the
// same batches.
func TestMixedBatch(t *testing.T) {
	ds, err := data.LoadDataset(context.Background(), data.DatasetOptions{Input: filepath.Join(runtime.GOROOT(), "src", "fmt"), Glob: "*.go", Tokenizer: data.NewByteTokenizer(256)})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	newTrainer := func() *trainer {
		l, err := data.NewLoader(ds.Stream(), 128, 4, 3)
		if err != nil {
			t.Fatal(err)
		}
		return &trainer{cfg: Config{MixRetrieval: 0.5, GradAccum: 1, Seed: 3}, train: l, tok: data.NewByteTokenizer(256)}
	}
	tr, plain := newTrainer(), newTrainer()
	plain.cfg.MixRetrieval = 0
	for step := 0; step < 3; step++ {
		tr.step, plain.step = step, step
		b, err := tr.nextBatch(0)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := plain.nextBatch(0)
		if !sort.IntsAreSorted(b.Segments) {
			t.Fatalf("segments %v not sorted", b.Segments)
		}
		for row := 0; row < 4; row++ {
			lo, hi := row*128, (row+1)*128
			text := string(func() []byte {
				var out []byte
				for _, id := range b.Inputs[lo:hi] {
					out = append(out, byte(id))
				}
				return out
			}())
			mixed := row%2 == 1
			if same := equal(b.Inputs[lo:hi], p.Inputs[lo:hi]); same == mixed {
				t.Fatalf("step %d row %d: mixed %v but same as the corpus %v", step, row, mixed, same)
			}
			if !mixed {
				continue
			}
			if !strings.Contains(text, "?") {
				t.Fatalf("mixed row is not a retrieval document: %q", text)
			}
			for i := lo; i < hi; i++ {
				if b.Inputs[i] == 256 {
					if b.Targets[i] != -1 {
						t.Fatalf("EOS at %d predicts %d", i, b.Targets[i])
					}
					if i+1 < hi && !contains(b.Segments, i+1) {
						t.Fatalf("no segment after the EOS at %d: %v", i, b.Segments)
					}
				} else if i+1 < hi && b.Targets[i] != b.Inputs[i+1] {
					t.Fatalf("target at %d is %d, next input %d", i, b.Targets[i], b.Inputs[i+1])
				}
			}
		}
	}
	// The same step gives the same batch.
	again := newTrainer()
	again.train.Restore(tr.train.State())
	tr2 := newTrainer()
	tr2.train.Restore(tr.train.State())
	again.step, tr2.step = 3, 3
	x, _ := again.nextBatch(0)
	y, _ := tr2.nextBatch(0)
	if !equal(x.Inputs, y.Inputs) || !equal(x.Targets, y.Targets) || !equal(x.Segments, y.Segments) {
		t.Error("the same position gave different batches")
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestMixLogsAnswerLoss: a run with the mix logs the retrieval answer loss
// at its validations, near chance for an untrained model.
func TestMixLogsAnswerLoss(t *testing.T) {
	cfg := Defaults()
	cfg.Arch = "../configs/models/gpt2-rope-tiny.yaml"
	cfg.Data, cfg.Glob, cfg.Out = filepath.Join(runtime.GOROOT(), "src", "fmt"), "*.go", t.TempDir()
	cfg.Steps, cfg.BatchSize, cfg.SeqLen, cfg.EvalEvery, cfg.EvalBatches = 2, 2, 64, 2, 1
	cfg.MixRetrieval = 0.5
	if _, err := Run(context.Background(), cfg, Hooks{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(cfg.Out, metricsFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var m Metrics
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatal(err)
	}
	if m.RetrievalLoss == nil || *m.RetrievalLoss < 2 || *m.RetrievalLoss > 8 {
		t.Errorf("retrieval answer loss %v", m.RetrievalLoss)
	}
	cfg.MixRetrieval = 1.5
	if err := cfg.Validate(); err == nil {
		t.Error("--mix-retrieval 1.5 accepted")
	}
}
