package model_test

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/model"
	"github.com/ssmax/ssmax/safetensors"
)

// storedCheckpoints returns the 16-bit checkpoints the stored-weight tests
// run on: the bf16 fixture, and F16 and BF16 copies of fixtures saved here
// (a Llama and a GPT-NeoX, whose fused query_key_value the engine reorders).
func storedCheckpoints(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{"llama-tiny-bf16": filepath.Join(fixtures, "llama-tiny-bf16")}
	for _, c := range []struct {
		name string
		dt   safetensors.DType
	}{{"llama-tiny", safetensors.F16}, {"pythia-tiny", safetensors.F16}, {"gpt2-tiny", safetensors.BF16}} {
		m, _ := load(t, filepath.Join(fixtures, c.name), model.Options{})
		dir := filepath.Join(t.TempDir(), c.name+"-"+string(c.dt))
		if err := m.Save(dir, model.SaveOptions{DType: c.dt}); err != nil {
			t.Fatal(err)
		}
		out[c.name+"-"+string(c.dt)] = dir
	}
	return out
}

// relClose reports the largest |a-b| / max(1, |b|).
func relWorst(a, b []float32) float64 {
	worst := 0.0
	for i := range b {
		d := math.Abs(float64(a[i])-float64(b[i])) / math.Max(1, math.Abs(float64(b[i])))
		worst = math.Max(worst, d)
	}
	return worst
}

// TestStoredWeights: a 16-bit checkpoint loads with its matrices in their
// stored dtype (frozen) and gives the logits, loss, per-token NLL of the
// decoder and the gradients of the trainable parameters (SSMax s, norms)
// of the same checkpoint with every weight converted to float32, within
// 1e-5 relative (the products see the same float32 values, so they agree
// to the bit in practice).
func TestStoredWeights(t *testing.T) {
	for name, dir := range storedCheckpoints(t) {
		t.Run(name, func(t *testing.T) {
			stored, _ := load(t, dir, model.Options{})
			full, _ := load(t, dir, model.Options{})
			full.SetRequiresGrad(true) // every weight float32 and trainable: the float32 path
			nStored := 0
			for _, p := range stored.Params() {
				if p.Stored() {
					nStored++
					if p.RequiresGrad() {
						t.Errorf("%s: stored weight requires a gradient", p.Name)
					}
					if p.DType == safetensors.F32 {
						t.Errorf("%s: F32 tensor held as a stored weight", p.Name)
					}
				}
			}
			for _, p := range full.Params() {
				if p.Stored() {
					t.Errorf("%s: still stored after SetRequiresGrad(true)", p.Name)
				}
			}
			if nStored == 0 {
				t.Fatal("no weight kept in its stored dtype")
			}
			tokens := make([]int, 40)
			for i := range tokens {
				tokens[i] = (i*37 + 11) % stored.Spec.Vocab
			}
			for _, m := range []*model.Model{stored, full} {
				for l := 0; l < m.Spec.Layers; l++ {
					if err := m.SetAttention(l, attnscale.SSMax, attnscale.PerHead(m.Spec.Heads, 0.3+0.1*float64(l)), nil); err != nil {
						t.Fatal(err)
					}
				}
				// Train what --train ssmax trains, plus the norms.
				for _, p := range m.Params() {
					p.SetRequiresGrad(p.Role.IsSSMax() || len(p.StoredShape) == 1)
				}
			}
			in := model.Input{IDs: tokens}
			la, err := stored.Forward(in)
			if err != nil {
				t.Fatal(err)
			}
			lb, _ := full.Forward(in)
			if e := relWorst(la.Value().Data().F32(), lb.Value().Data().F32()); e > 1e-5 {
				t.Errorf("logits differ by %.3g relative", e)
			}
			var grads [2]map[string][]float32
			var losses [2]float64
			for i, m := range []*model.Model{stored, full} {
				loss, err := m.Loss(in, targetsOf(tokens))
				if err != nil {
					t.Fatal(err)
				}
				if err := ag.Backward(loss); err != nil {
					t.Fatal(err)
				}
				losses[i] = loss.Value().Item().F64()
				grads[i] = map[string][]float32{}
				for _, p := range m.Params() {
					if p.RequiresGrad() && p.HasGrad() {
						grads[i][p.Name] = append([]float32(nil), p.Grad().(*mat.Dense[float32]).Data().F32()...)
					}
				}
			}
			if math.Abs(losses[0]-losses[1]) > 1e-5*math.Abs(losses[1]) {
				t.Errorf("loss %v, float32 path %v", losses[0], losses[1])
			}
			if len(grads[0]) == 0 || len(grads[0]) != len(grads[1]) {
				t.Fatalf("%d gradients, float32 path %d", len(grads[0]), len(grads[1]))
			}
			for n, g := range grads[1] {
				scale := 0.0
				for _, v := range g {
					scale = math.Max(scale, math.Abs(float64(v)))
				}
				worst := 0.0
				for i, v := range grads[0][n] {
					worst = math.Max(worst, math.Abs(float64(v)-float64(g[i])))
				}
				if worst > 1e-5*math.Max(scale, 1e-30) {
					t.Errorf("gradient of %s differs by %.3g (scale %.3g)", n, worst, scale)
				}
			}
			// Decoding with a KV cache through stored weights.
			d := stored.NewDecoder()
			step, err := d.Feed(tokens[:5])
			if err != nil {
				t.Fatal(err)
			}
			if e := relWorst(step, lb.Value().Data().F32()[:5*stored.Spec.Vocab]); e > 1e-4 {
				t.Errorf("decoder logits differ by %.3g relative", e)
			}
		})
	}
}

// TestStoredSave: a model with stored weights saves them byte for byte
// (GPT-NeoX's reordered rows back in the stored order), and a weight that
// trained is saved from its float32 values.
func TestStoredSave(t *testing.T) {
	for name, dir := range storedCheckpoints(t) {
		t.Run(name, func(t *testing.T) {
			m, _ := load(t, dir, model.Options{Inference: true})
			out := filepath.Join(t.TempDir(), "saved")
			if err := m.Save(out, model.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
			for _, f := range files {
				if filepath.Base(f) == "golden.safetensors" {
					continue
				}
				a, _ := os.ReadFile(f)
				b, err := os.ReadFile(filepath.Join(out, filepath.Base(f)))
				if err != nil || !bytes.Equal(a, b) {
					t.Errorf("saved %s differs from the source", filepath.Base(f))
				}
			}
			// Train (materialise) one matrix, change it, save, reload.
			var p *model.Param
			for _, q := range m.Params() {
				if q.Stored() && q.Role != arch.RoleEmbed {
					p = q
					break
				}
			}
			p.SetRequiresGrad(true)
			if p.Stored() {
				t.Fatal("weight still stored after SetRequiresGrad(true)")
			}
			p.Values()[0] = 0.5
			if err := m.Save(out, model.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			back, _ := load(t, out, model.Options{})
			bp := back.Param(p.Role, p.Layer)
			if got := bp.Values()[0]; got != 0.5 {
				t.Errorf("%s[0] saved as %v, want 0.5", p.Name, got)
			}
		})
	}
}

// TestOpenViewsWeights: Open holds frozen weights as views of the mapped
// checkpoint (16-bit matrices; F32 ones too for inference) with the logits
// of the float32 path, and the model outlives garbage collections (the
// checkpoint stays open while the model is in use).
func TestOpenViewsWeights(t *testing.T) {
	for _, c := range []struct {
		name string
		opts model.Options
	}{{"llama-tiny-bf16", model.Options{}}, {"llama-tiny", model.Options{Inference: true}}, {"pythia-tiny", model.Options{Inference: true}}} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(fixtures, c.name)
			ref, _ := load(t, dir, model.Options{})
			ref.SetRequiresGrad(true)
			m, err := model.Open(dir, "", c.opts)
			if err != nil {
				t.Fatal(err)
			}
			stored := 0
			for _, p := range m.Params() {
				if p.Stored() {
					stored++
				}
			}
			if stored == 0 {
				t.Fatal("no stored weight")
			}
			tokens := []int{1, 5, 9, 200, 3, 77, 12}
			want, _ := ref.Forward(model.Input{IDs: tokens})
			for range 3 {
				runtime.GC()
				got, err := m.Forward(model.Input{IDs: tokens})
				if err != nil {
					t.Fatal(err)
				}
				if e := relWorst(got.Value().Data().F32(), want.Value().Data().F32()); e > 1e-5 {
					t.Fatalf("logits differ by %.3g relative", e)
				}
			}
		})
	}
}
