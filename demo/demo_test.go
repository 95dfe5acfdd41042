package demo_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/demo"
	"github.com/ssmax/ssmax/inspect"
)

// TestDemoRuns runs the whole demo briefly on a small corpus and checks
// that every stage wrote a loadable checkpoint with the expected state.
func TestDemoRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	o := demo.Defaults()
	o.Out = filepath.Join(t.TempDir(), "demo")
	o.Data = filepath.Join(runtime.GOROOT(), "src", "strings")
	o.Steps, o.Lengths, o.Samples = 2, []int{64, 512}, 2
	r, err := demo.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if r.ValBefore == nil || r.ValAfter == nil || *r.ValBefore <= 0 || *r.ValBefore > 5 {
		t.Errorf("validation losses %v %v", r.ValBefore, r.ValAfter)
	}
	base, err := inspect.Run(r.Base, inspect.Options{})
	if err != nil || base.SSMax != nil || base.Family != "gpt2" {
		t.Fatalf("base: %+v %v", base, err)
	}
	tuned, err := inspect.Run(r.Finetuned, inspect.Options{})
	if err != nil || tuned.SSMax == nil || tuned.SSMax.Variant != "ssmax" {
		t.Fatalf("fine-tuned: %+v %v", tuned, err)
	}
	soft, err := inspect.Run(r.SoftmaxFinetuned, inspect.Options{})
	if err != nil || soft.SSMax != nil {
		t.Fatalf("softmax fine-tuned: %+v %v", soft, err)
	}
	if r.SoftmaxValBefore == nil || r.SoftmaxValAfter == nil || *r.SoftmaxValBefore == *r.ValBefore {
		t.Errorf("softmax validation losses %v %v (SSMax before %v)", r.SoftmaxValBefore, r.SoftmaxValAfter, r.ValBefore)
	}
	if l := r.Length; l == nil || len(l.Softmax) != 2 || l.Softmax[0] <= 0 || l.SSMax[1] <= 0 || len(l.Diff) != 2 || !(l.SE[0] > 0) {
		t.Errorf("length table %+v", r.Length)
	} else if d := l.SSMax[1] - l.Softmax[1]; d-l.Diff[1] > 1e-9 || l.Diff[1]-d > 1e-9 {
		t.Errorf("paired difference %v, difference of the means %v", l.Diff[1], d)
	}
	// A second run replaces the first; a foreign directory is refused.
	if _, err := demo.Run(context.Background(), o); err != nil {
		t.Fatalf("second run: %v", err)
	}
	foreign := t.TempDir()
	os.WriteFile(filepath.Join(foreign, "keep"), []byte("x"), 0o644)
	o.Out = foreign
	if _, err := demo.Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "not written by ssmax demo") {
		t.Errorf("foreign --out: %v", err)
	}
}
