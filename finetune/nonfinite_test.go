package finetune_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/finetune"
	"github.com/ssmax/ssmax/safetensors"
)

// TestNonFiniteStopsBeforeSaving: learning rates that blow the weights up
// stop the run with one line naming the step, and no checkpoint holding a
// non-finite value is ever written. 1e39 overflows float32 at the first
// update (the loss of step 1 is still finite, so only the weight check
// can catch it before step 1's checkpoint); 1e30 leaves finite but huge
// weights whose loss or gradient is no longer finite a step later. Every
// checkpoint a run saves before stopping must be finite.
func TestNonFiniteStopsBeforeSaving(t *testing.T) {
	for _, lr := range []float64{1e39, 1e30} {
		out := t.TempDir()
		c := tinyPretrain(out)
		c.LR, c.MinLR, c.Warmup, c.Steps, c.SaveEvery, c.EvalEvery, c.Keep = lr, 0, 0, 4, 1, 1, 10
		_, err := finetune.Run(context.Background(), c, finetune.Hooks{})
		if err == nil {
			t.Fatalf("lr %g: the run finished", lr)
		}
		if strings.Contains(err.Error(), "\n") || !regexp.MustCompile(`^step [1-4]: .*(non-finite|NaN|Inf).*lower --lr`).MatchString(err.Error()) {
			t.Errorf("lr %g: error %q", lr, err)
		}
		t.Logf("lr %g: %v", lr, err)
		if _, err := os.Stat(filepath.Join(out, "final")); err == nil {
			t.Errorf("lr %g: final/ written", lr)
		}
		dirs, _ := filepath.Glob(filepath.Join(out, "step_*"))
		for _, d := range dirs {
			files, _ := filepath.Glob(filepath.Join(d, "*.safetensors"))
			files2, _ := filepath.Glob(filepath.Join(d, "trainer_state", "*.safetensors"))
			for _, p := range append(files, files2...) {
				allFinite(t, p)
			}
		}
	}
	for _, lr := range []float64{math.NaN(), math.Inf(1)} {
		c := tinyPretrain(t.TempDir())
		c.LR = lr
		if _, err := finetune.Run(context.Background(), c, finetune.Hooks{}); err == nil || !strings.Contains(err.Error(), "learning rates") {
			t.Errorf("lr %v: %v", lr, err)
		}
	}
}

// allFinite fails the test if a float tensor of the safetensors file at
// path holds a NaN or an infinity.
func allFinite(t *testing.T, path string) {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, ti := range f.Tensors() {
		if !ti.DType.IsFloat() {
			continue
		}
		vals, err := f.Float32s(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Errorf("%s: tensor %s holds %v", path, ti.Name, v)
				break
			}
		}
	}
}
