package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime/trace"
	"testing"
	"time"

	"github.com/nlpodyssey/spago/ag"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/eval"
	"github.com/ssmax/ssmax/finetune"
	"github.com/ssmax/ssmax/internal/cputime"
	"github.com/ssmax/ssmax/kernels"
	"github.com/ssmax/ssmax/model"
)

// benchBatch is a packed batch of random token ids: batch sequences of
// seqLen tokens, each its own segment, with next-token targets (-1 at the
// end of each sequence).
func benchBatch(vocab, batch, seqLen int) (model.Input, []int) {
	r := rand.New(rand.NewPCG(1, 2))
	n := batch * seqLen
	ids := make([]int, n)
	for i := range ids {
		ids[i] = r.IntN(vocab)
	}
	segs := make([]int, batch)
	targets := make([]int, n)
	for b := range segs {
		segs[b] = b * seqLen
		for t := 0; t < seqLen; t++ {
			i := b*seqLen + t
			targets[i] = -1
			if t+1 < seqLen {
				targets[i] = ids[i+1]
			}
		}
	}
	return model.Input{IDs: ids, Segments: segs}, targets
}

// BenchmarkTrainStep is one forward and backward pass (no optimizer) of
// the bench/train.sh shapes at batch 8 × 256 tokens (4 for s3 and l1), in
// tokens/s and CPU seconds per step (see the package doc for profiling).
func BenchmarkTrainStep(b *testing.B) {
	for _, c := range []struct {
		name         string
		batch, seq   int
		attention    attnscale.Variant
		attentionTag string
	}{
		{"s1", 8, 256, attnscale.Softmax, "softmax"},
		{"s2", 8, 256, attnscale.Softmax, "softmax"},
		{"s1", 8, 256, attnscale.SSMax, "ssmax"},
		{"s3", 4, 256, attnscale.Softmax, "softmax"},
		{"l1", 4, 256, attnscale.Softmax, "softmax"},
	} {
		b.Run(fmt.Sprintf("%s_%s", c.name, c.attentionTag), func(b *testing.B) {
			cfg, err := finetune.LoadPreset("models/" + c.name + ".yaml")
			if err != nil {
				b.Fatal(err)
			}
			m, err := model.New(cfg, 1)
			if err != nil {
				b.Fatal(err)
			}
			if c.attention == attnscale.SSMax {
				s := make([]float32, m.Spec.Heads)
				for i := range s {
					s[i] = float32(attnscale.MatchS(c.seq))
				}
				for l := 0; l < m.Spec.Layers; l++ {
					if err := m.SetAttention(l, attnscale.SSMax, s, nil); err != nil {
						b.Fatal(err)
					}
				}
			}
			in, targets := benchBatch(m.Spec.Vocab, c.batch, c.seq)
			ps := m.Params()
			step := func() {
				loss, err := m.Loss(in, targets)
				if err != nil {
					b.Fatal(err)
				}
				if err := ag.Backward(loss); err != nil {
					b.Fatal(err)
				}
				for _, p := range ps {
					kernels.ReleaseGrad(p) // as the optimizer step does
				}
			}
			step() // warm-up
			b.ResetTimer()
			t0 := cputime.Process()
			for i := 0; i < b.N; i++ {
				// A region per timed step, so that a -trace can be read
				// for the steps alone (not model building or warm-up).
				trace.WithRegion(context.Background(), "step", step)
			}
			b.ReportMetric(float64(len(in.IDs))*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
			reportCPU(b, t0)
		})
	}
}

// BenchmarkEvalForward is the inference forward pass (frozen weights, as
// ssmax score runs it) of the S2 shape over one sequence, with the loss
// projected 256 positions at a time, in tokens/s.
func BenchmarkEvalForward(b *testing.B) {
	for _, n := range []int{1024, 4096, 16384} {
		b.Run(fmt.Sprintf("s2_T%d", n), func(b *testing.B) {
			cfg, err := finetune.LoadPreset("models/s2.yaml")
			if err != nil {
				b.Fatal(err)
			}
			m, err := model.New(cfg, 1)
			if err != nil {
				b.Fatal(err)
			}
			m.SetRequiresGrad(false)
			in, _ := benchBatch(256, 1, n)
			b.ResetTimer()
			t0 := cputime.Process()
			for i := 0; i < b.N; i++ {
				if _, err := eval.TokenNLL(m, model.Input{IDs: in.IDs}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
			reportCPU(b, t0)
		})
	}
}

// reportCPU reports the process's CPU seconds per operation since t0 (the
// machine may be shared: CPU time per step is steadier than wall time),
// where CPU time is measured.
func reportCPU(b *testing.B, t0 time.Duration) {
	if cputime.Measured {
		b.ReportMetric((cputime.Process()-t0).Seconds()/float64(b.N), "cpu-s/op")
	}
}
