package arch_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/checkpoint"
)

func loadSpec(t *testing.T, name string) *arch.Spec {
	t.Helper()
	c, err := checkpoint.Open(filepath.Join(fixtures, name), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := arch.Load(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestResolveEveryFixture: the resolved spec lists the spec's tensors in
// order with their roles and stored layout, and each layer's window, RoPE
// and attention.
func TestResolveEveryFixture(t *testing.T) {
	entries, err := os.ReadDir(fixtures)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(fixtures, e.Name(), "config.json")); err != nil {
			continue
		}
		n++
		s := loadSpec(t, e.Name())
		r := s.Resolve(arch.ResolveOptions{SeqLen: 48})
		if r.Format != arch.ResolvedFormat || r.NumLayers != s.Layers || len(r.Layers) != s.Layers || r.SeqLen != 48 {
			t.Fatalf("%s: %+v", e.Name(), r)
		}
		want := s.Tensors()
		if len(r.Tensors) != len(want) {
			t.Fatalf("%s: %d tensors, spec has %d", e.Name(), len(r.Tensors), len(want))
		}
		for i, ts := range want {
			rt := r.Tensors[i]
			if rt.Name != ts.Name || rt.Role != ts.Role || rt.Layer != ts.Layer || !slices.Equal(rt.Shape, ts.Shape) ||
				rt.Transposed != s.InOut(ts.Role) || (rt.RowLayout != "") != (s.QKV == arch.FusedQKVPerHead && (ts.Role == arch.RoleQKV || ts.Role == arch.RoleQKVBias)) {
				t.Errorf("%s: tensor %d %+v, spec %+v", e.Name(), i, rt, ts)
			}
		}
		for l, rl := range r.Layers {
			if rl.Window != s.Window(l) {
				t.Errorf("%s: layer %d window %d, spec %d", e.Name(), l, rl.Window, s.Window(l))
			}
			variant := attnscale.Softmax
			if s.SSMax != nil && s.SSMax.Converts(l) {
				variant = s.SSMax.Variant
			}
			if rl.Variant != variant || (rl.S != "") != variant.HasS() || (rl.B != "") != variant.HasB() {
				t.Errorf("%s: layer %d attention %+v", e.Name(), l, rl)
			}
			if rl.S != "" && rl.S != s.SSMaxS(l) {
				t.Errorf("%s: layer %d s %q", e.Name(), l, rl.S)
			}
			if (rl.RoPE != "") != (s.Position == arch.RoPEPositions) {
				t.Errorf("%s: layer %d rope %q", e.Name(), l, rl.RoPE)
			}
			if rl.RoPE != "" {
				rp := r.RoPE[rl.RoPE]
				lr := s.LayerRoPE(l)
				if rp == nil || rp.Theta != lr.Theta || rp.Dim != lr.Dim {
					t.Errorf("%s: layer %d rope %q: %+v, spec %+v", e.Name(), l, rl.RoPE, rp, lr)
				}
			}
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	}
	if n < 29 {
		t.Fatalf("%d fixtures", n)
	}
}

// TestResolveRoPETables: the tables reproduce Frequencies at every length
// up to and past the run's: one table without length dependence, the
// short/long switch of longrope, dynamic NTK with its check values; local
// RoPE for Gemma 3's sliding layers; theta scaled.
func TestResolveRoPETables(t *testing.T) {
	for _, tc := range []struct {
		name         string
		seqLen       int
		tables       int
		firstMax, at int
		dynamic      bool
	}{
		{"llama-tiny", 64, 1, 0, 0, false},
		{"llama3-tiny-ropescaled", 64, 1, 0, 0, false},
		{"qwen2-tiny-yarn", 40, 1, 0, 0, false},
		{"llama-tiny-ropedynamic", 40, 2, 32, 40, true},
		{"llama-tiny-ropedynamic-short", 20, 2, 32, 33, true},
		{"phi3-tiny-longrope", 32, 2, 16, 0, false},
		{"phi3-tiny-longrope-short", 8, 2, 16, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := loadSpec(t, tc.name)
			r := s.Resolve(arch.ResolveOptions{SeqLen: tc.seqLen})
			g := r.RoPE["global"]
			if len(g.Tables) != tc.tables || g.Tables[0].MaxLen != tc.firstMax || g.Tables[len(g.Tables)-1].Dynamic != tc.dynamic ||
				g.Tables[len(g.Tables)-1].AtLen != tc.at {
				t.Fatalf("tables %+v", g.Tables)
			}
			for _, L := range []int{1, 2, tc.firstMax, tc.firstMax + 1, tc.seqLen, 2 * tc.seqLen} {
				if L < 1 {
					continue
				}
				f, a := s.RoPE.Frequencies(L)
				var tab *arch.RoPETable
				for i := range g.Tables {
					if g.Tables[i].MaxLen == 0 || L <= g.Tables[i].MaxLen {
						tab = &g.Tables[i]
						break
					}
				}
				if tab.AttnFactor != a {
					t.Errorf("length %d: attention factor %g, want %g", L, tab.AttnFactor, a)
				}
				if tab.Dynamic {
					if want, _ := s.RoPE.Frequencies(tab.AtLen); !slices.Equal(tab.InvFreq, want) {
						t.Errorf("dynamic check values at %d differ", tab.AtLen)
					}
					continue
				}
				if !slices.Equal(tab.InvFreq, f) {
					t.Errorf("length %d: frequencies %v, want %v", L, tab.InvFreq, f)
				}
			}
		})
	}
	s := loadSpec(t, "gemma3-tiny")
	r := s.Resolve(arch.ResolveOptions{SeqLen: 24, RoPEThetaScale: 2})
	for l, rl := range r.Layers {
		want := "global"
		if s.Window(l) > 0 {
			want = "local"
		}
		if rl.RoPE != want {
			t.Errorf("gemma3 layer %d uses %q, want %q", l, rl.RoPE, want)
		}
	}
	if r.RoPE["local"].Theta != 2*s.LocalRoPE.Theta || r.RoPE["global"].Theta != 2*s.RoPE.Theta || r.RoPEThetaScale != 2 {
		t.Errorf("theta not scaled: %g, %g", r.RoPE["local"].Theta, r.RoPE["global"].Theta)
	}
}
