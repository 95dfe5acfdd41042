package finetune_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/finetune"
	"github.com/ssmax/ssmax/model"
	"github.com/ssmax/ssmax/safetensors"
)

// TestTrainAttentionOnBF16: --train attention on a BF16 checkpoint trains
// float32 masters of the attention weights only (the other matrices stay in
// their stored dtype, byte-identical in every checkpoint), the trainer
// state holds masters for the trained weights only, and a run interrupted
// and resumed gives the losses of the uninterrupted run.
func TestTrainAttentionOnBF16(t *testing.T) {
	if testing.Short() {
		t.Skip("trains three small runs")
	}
	base := t.TempDir()
	src := filepath.Join(base, "bf16")
	m, err := model.Open(filepath.Join(fixtures, "llama-tiny-ssmax-bias"), "", model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Save(src, model.SaveOptions{DType: safetensors.BF16}); err != nil {
		t.Fatal(err)
	}
	cfg := func(out string) finetune.Config {
		c := finetune.Defaults()
		c.Model, c.Tokenizer = src, "bytes"
		c.Data, c.Glob, c.Out = goText(), "*.go", out
		c.Steps, c.BatchSize, c.SeqLen, c.EvalEvery, c.LR = 6, 2, 32, 0, 1e-2
		c.SaveEvery, c.Keep = 3, 5
		c.Train = "attention"
		return c
	}
	a, b := filepath.Join(base, "a"), filepath.Join(base, "b")
	if _, err := finetune.Run(context.Background(), cfg(a), finetune.Hooks{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hooks := finetune.Hooks{Step: func(m finetune.Metrics, total int) {
		if m.Step == 4 {
			cancel()
		}
	}}
	if _, err := finetune.Run(ctx, cfg(b), hooks); err == nil {
		t.Fatal("interrupted run reported success")
	}
	rc := cfg(b)
	rc.Resume = true
	if _, err := finetune.Run(context.Background(), rc, finetune.Hooks{}); err != nil {
		t.Fatal(err)
	}
	sameLosses(t, readMetrics(t, a), readMetrics(t, b))

	orig, err := safetensors.Open(filepath.Join(src, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	final, err := safetensors.Open(filepath.Join(a, "final", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer final.Close()
	state, err := safetensors.Open(filepath.Join(a, "step_000003", "trainer_state", "optimizer.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer state.Close()
	for _, ti := range orig.Tensors() {
		x, _ := orig.Bytes(ti.Name)
		y, err := final.Bytes(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		attn := strings.Contains(ti.Name, ".self_attn.")
		_, master := state.Tensor("master." + ti.Name)
		if changed := string(x) != string(y); changed != attn && ti.DType == safetensors.BF16 {
			t.Errorf("%s: changed %v under --train attention", ti.Name, changed)
		}
		if master != (attn && ti.DType == safetensors.BF16) {
			t.Errorf("%s: master copy %v", ti.Name, master)
		}
	}
}

// TestActivationCheckpointingSameRun: --activation-checkpointing gives the
// losses and gradient norms of the plain run, to the bit.
func TestActivationCheckpointingSameRun(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two small runs")
	}
	base := t.TempDir()
	var outs []string
	for _, ckpt := range []bool{false, true} {
		out := filepath.Join(base, map[bool]string{false: "plain", true: "ckpt"}[ckpt])
		c := tinyPretrain(out)
		c.Steps, c.EvalEvery, c.SaveEvery = 4, 2, 0
		c.ActivationCheckpointing = ckpt
		if _, err := finetune.Run(context.Background(), c, finetune.Hooks{}); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, out)
	}
	sameLosses(t, readMetrics(t, outs[0]), readMetrics(t, outs[1]))
}
