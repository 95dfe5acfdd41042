package finetune_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/convert"
	"github.com/ssmax/ssmax/eval"
	"github.com/ssmax/ssmax/finetune"
)

// familyFixtures returns one softmax fixture directory per family.
func familyFixtures(t *testing.T) map[arch.Family]string {
	t.Helper()
	entries, err := os.ReadDir(fixtures)
	if err != nil {
		t.Fatal(err)
	}
	out := map[arch.Family]string{}
	for _, e := range entries {
		dir := filepath.Join(fixtures, e.Name())
		c, err := checkpoint.Open(dir, checkpoint.Options{})
		if err != nil {
			continue
		}
		spec, err := arch.Load(c)
		c.Close()
		if err != nil || spec.SSMax != nil {
			continue
		}
		if _, ok := out[spec.Family]; !ok {
			out[spec.Family] = dir
		}
	}
	for _, f := range arch.Families {
		if out[f] == "" {
			t.Errorf("no softmax fixture of family %s", f)
		}
	}
	return out
}

// TestEveryFamilyConvertsTrainsAndEvaluates runs the retrofit end to end on
// one fixture of each family: convert to SSMax, fine-tune a few steps of
// every weight on sequences longer than the fixtures' sliding windows,
// then evaluate loss against context length on the result.
func TestEveryFamilyConvertsTrainsAndEvaluates(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model of every family")
	}
	for fam, src := range familyFixtures(t) {
		t.Run(string(fam), func(t *testing.T) {
			base := t.TempDir()
			conv := filepath.Join(base, "ssmax")
			if _, err := convert.Run(context.Background(), convert.Options{Src: src, Dst: conv, Variant: attnscale.SSMax, Init: convert.InitMatch, TrainLen: 32}); err != nil {
				t.Fatal(err)
			}
			cfg := finetune.Defaults()
			cfg.Model, cfg.Tokenizer = conv, "bytes"
			cfg.Data, cfg.Glob, cfg.Out = goText(), "*.go", filepath.Join(base, "run")
			cfg.Steps, cfg.BatchSize, cfg.SeqLen, cfg.EvalEvery, cfg.LR, cfg.Warmup = 3, 2, 32, 0, 1e-3, 1
			res, err := finetune.Run(context.Background(), cfg, finetune.Hooks{})
			if err != nil {
				t.Fatal(err)
			}
			if math.IsNaN(res.LastLoss) || math.IsInf(res.LastLoss, 0) || res.LastLoss <= 0 {
				t.Fatalf("last loss %v", res.LastLoss)
			}
			rep, err := eval.Length(context.Background(), eval.LengthOptions{
				Checkpoints: eval.Checkpoints{Models: []string{res.Final}, Tokenizer: "bytes"},
				Data:        goText(), Glob: "*.go", Lengths: []int{16, 32}, Samples: 2,
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Models) != 1 || len(rep.Models[0].Points) != 2 {
				t.Fatalf("length report %+v", rep)
			}
			for _, p := range rep.Models[0].Points {
				if p.NA != "" || p.LengthStats == nil || math.IsNaN(p.MeanLoss) || p.MeanLoss <= 0 {
					t.Errorf("length %d: %+v", p.Length, p)
				}
			}
		})
	}
}
