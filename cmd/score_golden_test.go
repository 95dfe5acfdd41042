package cmd

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/model"
)

// TestScoreEqualsGoldenLoss: `ssmax score` on every fixture, put in each
// golden attention mode (the golden s and b saved into a checkpoint),
// gives the independent implementation's mean loss within 1e-4 relative.
func TestScoreEqualsGoldenLoss(t *testing.T) {
	modes := map[string]attnscale.Variant{"softmax": attnscale.Softmax, "ssmax": attnscale.SSMax, "ssmax-bias": attnscale.Bias, "ssmax-fixed": attnscale.Fixed}
	entries, err := os.ReadDir(fixtures)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, e := range entries {
		dir := filepath.Join(fixtures, e.Name())
		raw, err := os.ReadFile(filepath.Join(dir, "golden.json"))
		if err != nil {
			continue
		}
		var g struct {
			Tokens []int `json:"tokens"`
			Modes  map[string]struct {
				S, B [][]float64
				Loss float64 `json:"loss"`
			} `json:"modes"`
		}
		if err := json.Unmarshal(raw, &g); err != nil {
			t.Fatal(err)
		}
		tokens := filepath.Join(t.TempDir(), "tokens.txt")
		os.WriteFile(tokens, []byte(strings.Trim(fmt.Sprint(g.Tokens), "[]")), 0o644)
		for mode, gm := range g.Modes {
			t.Run(e.Name()+"/"+mode, func(t *testing.T) {
				m, err := model.Open(dir, "", model.Options{})
				if err != nil {
					t.Fatal(err)
				}
				f32 := func(v []float64) []float32 {
					if v == nil {
						return nil
					}
					out := make([]float32, len(v))
					for i, x := range v {
						out[i] = float32(x)
					}
					return out
				}
				for l := 0; l < m.Spec.Layers; l++ {
					var s, b []float64
					if gm.S != nil {
						s = gm.S[l]
					}
					if gm.B != nil {
						b = gm.B[l]
					}
					if err := m.SetAttention(l, modes[mode], f32(s), f32(b)); err != nil {
						t.Fatal(err)
					}
				}
				ckpt := filepath.Join(t.TempDir(), "ckpt")
				if err := m.Save(ckpt, model.SaveOptions{}); err != nil {
					t.Fatal(err)
				}
				out, errs, code := run(t, "score", "--model", ckpt, "--tokens", tokens, "--json", "--no-window")
				if code != 0 {
					t.Fatalf("exit %d: %s", code, errs)
				}
				var r struct {
					MeanLoss float64 `json:"mean_loss"`
				}
				if err := json.Unmarshal([]byte(out), &r); err != nil {
					t.Fatal(err)
				}
				if math.Abs(r.MeanLoss-gm.Loss) > 1e-4*gm.Loss {
					t.Errorf("score %.8f, golden %.8f", r.MeanLoss, gm.Loss)
				}
			})
			checked++
		}
	}
	if checked < 100 {
		t.Errorf("checked %d fixture modes", checked)
	}
}
