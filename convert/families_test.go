package convert_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/convert"
)

// attentionPrefixes is where each family's SSMax parameters live, as the
// fixtures' README states them (independently of arch's tables).
var attentionPrefixes = map[arch.Family]string{
	arch.GPT2:    "transformer.h.%d.attn",
	arch.GPTNeoX: "gpt_neox.layers.%d.attention",
}

func expectedPrefix(f arch.Family, layer int) string {
	p, ok := attentionPrefixes[f]
	if !ok {
		p = "model.layers.%d.self_attn"
	}
	return strings.Replace(p, "%d", itoa(layer), 1)
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestConvertEveryFamily converts one softmax fixture of every family with
// the bias variant: every original tensor stays byte-identical, s and b sit
// under the family's attention module right after its last tensor, and the
// result loads back with the SSMax state.
func TestConvertEveryFamily(t *testing.T) {
	entries, err := os.ReadDir(fixtures)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[arch.Family]bool{}
	for _, e := range entries {
		src := filepath.Join(fixtures, e.Name())
		c, err := checkpoint.Open(src, checkpoint.Options{})
		if err != nil {
			continue // not a checkpoint directory
		}
		spec, err := arch.Load(c)
		c.Close()
		if err != nil {
			t.Errorf("%s: %v", e.Name(), err)
			continue
		}
		if spec.SSMax != nil || seen[spec.Family] {
			continue
		}
		seen[spec.Family] = true
		t.Run(string(spec.Family), func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "out")
			res, err := convert.Run(context.Background(), convert.Options{Src: src, Dst: dst, Variant: attnscale.Bias, Init: convert.InitIdentity})
			if err != nil {
				t.Fatal(err)
			}
			before, _ := tensorHashes(t, src)
			after, _ := tensorHashes(t, dst)
			for name, h := range before {
				if after[name] != h {
					t.Errorf("%s changed", name)
				}
			}
			out, err := checkpoint.Open(dst, checkpoint.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			names := out.TensorNames()
			for l := 0; l < spec.Layers; l++ {
				prefix := expectedPrefix(spec.Family, l)
				si := slices.Index(names, prefix+".ssmax_s")
				bi := slices.Index(names, prefix+".ssmax_b")
				if si < 0 || bi != si+1 {
					t.Fatalf("layer %d: %s.ssmax_s at %d, .ssmax_b at %d", l, prefix, si, bi)
				}
				if !strings.HasPrefix(names[si-1], prefix+".") {
					t.Errorf("layer %d: ssmax_s follows %s, not the attention module %s", l, names[si-1], prefix)
				}
				if si+2 < len(names) && strings.HasPrefix(names[si+2], prefix+".") {
					t.Errorf("layer %d: attention tensor %s stored after the SSMax parameters", l, names[si+2])
				}
			}
			if len(res.Added) != 2*spec.Layers {
				t.Errorf("added %d tensors, want %d", len(res.Added), 2*spec.Layers)
			}
			back, err := arch.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			if back.SSMax == nil || back.SSMax.Variant != attnscale.Bias || len(back.SSMax.Layers) != spec.Layers {
				t.Errorf("reloaded SSMax state %+v", back.SSMax)
			}
		})
	}
	for _, f := range arch.Families {
		if !seen[f] {
			t.Errorf("no softmax fixture of family %s", f)
		}
	}
}
