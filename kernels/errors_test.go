package kernels

import (
	"strings"
	"testing"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/ssmax/ssmax/attnscale"
)

// TestShapeErrors calls Forward directly: through ag.Operator.Run, spago
// v1.1.0 turns a Forward error into log.Fatalf.
func TestShapeErrors(t *testing.T) {
	m := func(r, c int) mat.Tensor { return newMatrix(r, c) }
	f64 := mat.NewDense[float64](mat.WithShape(2, 2))
	att := AttentionConfig{Heads: 2, KVHeads: 1, HeadDim: 4, Variant: attnscale.SSMax}
	cases := []struct {
		name string
		fn   ag.AutoGradFunction
		want string // substring of the error
	}{
		{"matmul inner", &matMulFn{a: m(2, 3), b: m(4, 5)}, "kernels.MatMul: inner dimensions differ"},
		{"matmul transB", &matMulFn{a: m(2, 3), b: m(3, 5), transB: true}, "kernels.MatMul"},
		{"matmul float64", &matMulFn{a: f64, b: m(2, 2)}, "*mat.Dense[float32]"},
		{"matmul nil", &matMulFn{a: nil, b: m(2, 2)}, "a is nil"},
		{"linear in", &linearFn{x: m(3, 4), w: m(5, 3)}, "kernels.Linear"},
		{"linear inOut", &linearFn{x: m(3, 4), w: m(5, 4), inOut: true}, "[in,out]"},
		{"linear bias", &linearFn{x: m(3, 4), w: m(5, 4), bias: m(1, 4)}, "bias must be a vector of 5"},
		{"linear bias matrix", &linearFn{x: m(3, 4), w: m(5, 4), bias: m(5, 5)}, "bias"},
		{"columns", &columnsFn{x: m(2, 3), from: 1, to: 4}, "kernels.Columns"},
		{"columns empty", &columnsFn{x: m(2, 3), from: 2, to: 2}, "kernels.Columns"},
		{"add", &addFn{a: m(2, 3), b: m(3, 2)}, "kernels.Add: shapes differ"},
		{"layernorm gamma", &layerNormFn{x: m(2, 3), gamma: m(1, 4), beta: m(1, 3)}, "kernels.LayerNorm: gamma"},
		{"layernorm beta", &layerNormFn{x: m(2, 3), gamma: m(1, 3), beta: m(3, 3)}, "kernels.LayerNorm: beta"},
		{"rmsnorm", &rmsNormFn{op: "RMSNorm", x: m(2, 3), gamma: m(1, 2)}, "kernels.RMSNorm: gamma"},
		{"headrmsnorm", &rmsNormFn{op: "HeadRMSNorm", perHead: true, x: m(2, 12), gamma: m(1, 4), heads: 2, headDim: 4}, "kernels.HeadRMSNorm: x is [2,12]"},
		{"headrmsnorm gamma", &rmsNormFn{op: "HeadRMSNorm", perHead: true, x: m(2, 8), gamma: m(1, 8), heads: 2, headDim: 4}, "gamma"},
		{"activate type", &activationFn{act: GELUTanh, x: f64}, "kernels.Activate"},
		{"glu", &activationFn{act: SiLU, x: m(2, 3), up: m(2, 4)}, "kernels.GLU: shapes differ"},
		{"glu up type", &activationFn{act: SiLU, x: m(2, 2), up: f64}, "kernels.GLU: up must be a *mat.Dense[float32]"},
		{"activation", &activationFn{x: m(2, 3)}, "kernels.Activate: invalid activation"},
		{"rope odd", &ropeFn{x: m(2, 6), heads: 2, headDim: 3, theta: 1e4}, "headDim even"},
		{"rope width", &ropeFn{x: m(2, 6), heads: 2, headDim: 4, theta: 1e4}, "kernels.RoPE"},
		{"rope positions", &ropeFn{x: m(2, 8), heads: 2, headDim: 4, positions: []int{0}, theta: 1e4}, "1 positions"},
		{"rope theta", &ropeFn{x: m(2, 8), heads: 2, headDim: 4}, "theta"},
		{"embedding id", &embeddingFn{table: m(5, 3), ids: []int{0, 5}}, "ids[1] = 5 out of range"},
		{"embedding negative", &embeddingFn{table: m(5, 3), ids: []int{-1}}, "out of range"},
		{"ce targets", &crossEntropyFn{logits: m(3, 4), targets: []int{0, 1}}, "3 rows but 2 targets"},
		{"ce class", &crossEntropyFn{logits: m(3, 4), targets: []int{0, 4, -1}}, "targets[1] = 4"},
		{"attention q", &attentionFn{q: m(3, 7), k: m(3, 4), v: m(3, 4), s: m(1, 2), cfg: att}, "kernels.Attention: q is [3,7]"},
		{"attention rows", &attentionFn{q: m(3, 8), k: m(4, 4), v: m(3, 4), s: m(1, 2), cfg: att}, "k is [4,4]"},
		{"attention s missing", &attentionFn{q: m(3, 8), k: m(3, 4), v: m(3, 4), cfg: att}, "s is nil"},
		{"attention s size", &attentionFn{q: m(3, 8), k: m(3, 4), v: m(3, 4), s: m(1, 3), cfg: att}, "s must be a vector of 2"},
		{"attention b missing", &attentionFn{q: m(3, 8), k: m(3, 4), v: m(3, 4), s: m(1, 2), cfg: AttentionConfig{Heads: 2, KVHeads: 1, HeadDim: 4, Variant: attnscale.Bias}}, "b is nil"},
		{"attention kv", &attentionFn{q: m(3, 8), k: m(3, 4), v: m(3, 4), cfg: AttentionConfig{Heads: 2, KVHeads: 3, HeadDim: 4}}, "must divide"},
		{"attention segments", &attentionFn{q: m(3, 8), k: m(3, 4), v: m(3, 4), cfg: AttentionConfig{Heads: 2, KVHeads: 1, HeadDim: 4, Segments: []int{0, 3}}}, "segment start 3"},
	}
	for _, c := range cases {
		_, err := c.fn.Forward()
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not contain %q", c.name, err, c.want)
		}
	}
}

// TestOperationsPanic: through the exported operations a Forward error is
// a panic with its message, whether the operation becomes a graph node
// (an operand requires a gradient) or not; spago's log.Fatalf is never
// reached.
func TestOperationsPanic(t *testing.T) {
	operand := func(r, c int, grad bool) mat.Tensor {
		p := nn.NewParam(newMatrix(r, c))
		p.SetRequiresGrad(grad)
		return p
	}
	for _, grad := range []bool{false, true} {
		cases := map[string]struct {
			f    func()
			want string
		}{
			"add":    {func() { Add(operand(2, 3, grad), operand(3, 2, grad)) }, "kernels.Add: shapes differ"},
			"glu":    {func() { GLU(operand(2, 3, grad), operand(2, 4, grad), SiLU) }, "kernels.GLU: shapes differ"},
			"linear": {func() { Linear(operand(3, 4, grad), operand(5, 3, grad), nil, false) }, "kernels.Linear"},
			"matmul": {func() { MatMul(operand(2, 3, grad), operand(4, 5, grad), false, false) }, "kernels.MatMul: inner dimensions differ"},
		}
		for name, c := range cases {
			func() {
				defer func() {
					msg, _ := recover().(string)
					if !strings.Contains(msg, c.want) {
						t.Errorf("%s (requires grad %v): panic %q, want %q", name, grad, msg, c.want)
					}
				}()
				c.f()
			}()
		}
	}
}

func TestAttendCachedPanics(t *testing.T) {
	cfg := AttentionConfig{Heads: 2, KVHeads: 1, HeadDim: 4, Variant: attnscale.SSMax}
	cases := map[string]func(){
		"short kv": func() {
			AttendCached(make([]float32, 8), make([]float32, 8), make([]float32, 4), make([]float32, 8), 0, 1, 1, []float32{1, 1}, nil, cfg)
		},
		"no s": func() {
			AttendCached(make([]float32, 8), make([]float32, 8), make([]float32, 8), make([]float32, 8), 0, 1, 1, nil, nil, cfg)
		},
		"bad cfg": func() { AttendCached(nil, nil, nil, nil, 0, 0, 0, nil, nil, AttentionConfig{}) },
	}
	for name, f := range cases {
		func() {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(r.(string), "kernels.AttendCached") {
					t.Errorf("%s: panic %v", name, r)
				}
			}()
			f()
		}()
	}
}
