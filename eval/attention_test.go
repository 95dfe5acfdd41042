package eval

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/data"
)

// TestNeedleAttention: with every query weight zeroed, all logits are 0
// whatever the SSMax scale, attention is uniform and the needle's mass is
// exactly needle tokens / keys (121: the byte model's query is the one
// after the answer's space) in every layer and head; with the fixture's
// own weights the masses are probabilities, the modes are reported per
// layer, and a length beyond learned positions is an error.
func TestNeedleAttention(t *testing.T) {
	hay, err := OpenHaystack(writeDocs(t, []int{500, 600}), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fixture string
		zeroQ   bool
		mode    string
	}{
		{"llama-tiny", true, "softmax"},
		{"llama-tiny-ssmax-bias", true, "bias"},
		{"llama-tiny-ssmax-bias", false, "bias"},
		{"gpt2-tiny-ssmax", false, "ssmax"},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			m := openFixture(t, tc.fixture)
			if tc.zeroQ {
				for l := 0; l < m.Spec.Layers; l++ {
					clear(m.Param(arch.RoleQ, l).Values())
				}
			}
			tok := data.NewByteTokenizer(m.Spec.EOS)
			calls := 0
			res, err := NeedleAttention(context.Background(), m, tok, hay, NeedleAttentionOptions{
				Length: 120, Depth: 0.5, Trials: 2, Seed: 3, Progress: func(int, int) { calls++ },
			})
			if err != nil {
				t.Fatal(err)
			}
			if calls != 2 {
				t.Errorf("%d progress calls, want 2", calls)
			}
			if len(res.Mass) != m.Spec.Layers || len(res.Modes) != m.Spec.Layers {
				t.Fatalf("%d layers of mass, %d modes", len(res.Mass), len(res.Modes))
			}
			// The default needle is 34 bytes with a 5-digit number; the
			// query predicting the first digit follows the answer's space.
			if res.NeedleTokens != 34 || math.Abs(res.Uniform-34.0/121) > 1e-12 {
				t.Errorf("needle %v tokens, uniform %v", res.NeedleTokens, res.Uniform)
			}
			for l, row := range res.Mass {
				if res.Modes[l] != tc.mode {
					t.Errorf("layer %d mode %s, want %s", l, res.Modes[l], tc.mode)
				}
				if len(row) != m.Spec.Heads {
					t.Fatalf("layer %d: %d heads", l, len(row))
				}
				for h, x := range row {
					if tc.zeroQ && math.Abs(x-res.Uniform) > 1e-12 {
						t.Errorf("layer %d head %d: mass %v, uniform attention gives %v", l, h, x, res.Uniform)
					}
					if !(x >= 0 && x <= 1) {
						t.Errorf("layer %d head %d: mass %v", l, h, x)
					}
				}
			}
			_, err = NeedleAttention(context.Background(), m, tok, hay, NeedleAttentionOptions{Length: 129})
			if learned := MaxLength(m) > 0; learned != (err != nil) {
				t.Errorf("length 129 beyond %d positions: error %v", m.Spec.Context, err)
			} else if err != nil && !strings.Contains(err.Error(), "learned positions") {
				t.Errorf("error %q does not say why", err)
			}
		})
	}
}
