package model

import (
	"math"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/checkpoint"
)

// TestLayerwiseMatchesForward: the layer-by-layer pass of long inputs gives
// the hidden states of the full forward pass (to float32 rounding), with
// chunks that do not divide the length, windows and learned positions.
func TestLayerwiseMatchesForward(t *testing.T) {
	defer func(c, n int) { layerwiseChunk, layerwiseMin = c, n }(layerwiseChunk, layerwiseMin)
	for _, name := range []string{"llama-tiny", "llama-tiny-bf16", "gpt2-tiny", "mistral-tiny-window", "gemma2-tiny", "pythia-tiny", "qwen2-tiny-window-ssmax-bias", "phi3-tiny-longrope"} {
		t.Run(name, func(t *testing.T) {
			c, err := checkpoint.Open(filepath.Join("../testdata/fixtures", name), checkpoint.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			spec, err := arch.Load(c)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Load(c, spec, Options{Inference: true})
			if err != nil {
				t.Fatal(err)
			}
			T := min(100, spec.Context)
			if spec.Position != arch.LearnedPositions {
				T = 100
			}
			ids := make([]int, T)
			for i := range ids {
				ids[i] = (i*31 + 7) % spec.Vocab
			}
			in := Input{IDs: ids}
			layerwiseMin = 1 << 30
			want, err := m.Hidden(in)
			if err != nil {
				t.Fatal(err)
			}
			layerwiseChunk, layerwiseMin = 7, 2
			if !m.useLayerwise(in) {
				t.Fatal("layer-by-layer path not taken")
			}
			got, err := m.Hidden(in)
			if err != nil {
				t.Fatal(err)
			}
			g, w := values(got), values(want)
			worst := 0.0
			for i := range w {
				worst = math.Max(worst, math.Abs(float64(g[i]-w[i]))/math.Max(1, math.Abs(float64(w[i]))))
			}
			if worst > 1e-5 {
				t.Errorf("hidden states differ by %.3g relative", worst)
			}
		})
	}
}

// TestDecoderReserve: a decoder whose cache was reserved (outside the
// heap) gives the logits of one that grows its cache, past the reserve
// too, across garbage collections.
func TestDecoderReserve(t *testing.T) {
	for _, name := range []string{"llama-tiny", "mistral-tiny-window", "gpt2-tiny"} {
		c, err := checkpoint.Open(filepath.Join("../testdata/fixtures", name), checkpoint.Options{})
		if err != nil {
			t.Fatal(err)
		}
		spec, err := arch.Load(c)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Load(c, spec, Options{Inference: true})
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		a, b := m.NewDecoder(), m.NewDecoder()
		a.Feed([]int{3})
		if err := a.Reserve(20); err != nil {
			t.Fatal(err)
		}
		b.Feed([]int{3})
		for i := 0; i < 30; i++ {
			runtime.GC()
			x, err := a.Feed([]int{i % spec.Vocab, (i * 7) % spec.Vocab})
			if err != nil {
				t.Fatal(err)
			}
			y, _ := b.Feed([]int{i % spec.Vocab, (i * 7) % spec.Vocab})
			for j := range y {
				if x[j] != y[j] {
					t.Fatalf("%s: step %d logit %d: %v reserved, %v not", name, i, j, x[j], y[j])
				}
			}
			if a.Len() >= spec.Context-2 {
				break
			}
		}
	}
}
