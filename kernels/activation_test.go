package kernels

import (
	"fmt"
	"math"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
)

var elementwiseShapes = [][2]int{{1, 1}, {7, 33}, {33, 7}, {200, 97}}

func TestGELUTanh(t *testing.T) {
	for i, d := range elementwiseShapes {
		t.Run(fmt.Sprintf("%dx%d", d[0], d[1]), func(t *testing.T) {
			r := newRand(uint64(700 + i))
			ins := []input{{name: "x", data: randn(r, d[0]*d[1], 2), rows: d[0], cols: d[1]}}
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor { return Activate(x[0], GELUTanh) },
				func(x [][]float64) []float64 { return geluRef(x[0]) })
		})
	}
}

func TestSiLUGate(t *testing.T) {
	for i, d := range elementwiseShapes {
		t.Run(fmt.Sprintf("%dx%d", d[0], d[1]), func(t *testing.T) {
			r := newRand(uint64(800 + i))
			g := randn(r, d[0]*d[1], 3)
			g[0] = 40 // far tails of the sigmoid
			if len(g) > 1 {
				g[1] = -40
			}
			ins := []input{
				{name: "gate", data: g, rows: d[0], cols: d[1]},
				{name: "up", data: randn(r, d[0]*d[1], 1), rows: d[0], cols: d[1]},
			}
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor { return GLU(x[0], x[1], SiLU) },
				func(x [][]float64) []float64 { return siluGateRef(x[0], x[1]) })
		})
	}
}

// TestActivations checks every activation, alone (Activate) and gated
// (GLU, with either operand constant too), against its float64 definition
// (activationRef) and its gradients against finite differences.
func TestActivations(t *testing.T) {
	// 130×130 is split between goroutines (elementwiseChunk).
	shapes := [][2]int{{1, 1}, {7, 33}, {130, 130}}
	fd := checkOpts{fdElems: 32}
	for a := SiLU; a.Valid(); a++ {
		for i, d := range shapes {
			r := newRand(uint64(900 + 10*int(a) + i))
			n := d[0] * d[1]
			x := randn(r, n, 3)
			x[0] = 30 // far tails
			if n > 1 {
				x[1] = -30
			}
			for j, v := range x {
				if math.Abs(float64(v)) < 1e-3 { // keep ReLU's kink out of the finite differences
					x[j] = 1e-3
				}
			}
			up := randn(r, n, 1)
			t.Run(fmt.Sprintf("%v/%dx%d", a, d[0], d[1]), func(t *testing.T) {
				checkOpWith(t, uint64(i), []input{{name: "x", data: x, rows: d[0], cols: d[1]}},
					func(p []mat.Tensor) mat.Tensor { return Activate(p[0], a) },
					func(p [][]float64) []float64 { return activationRef(a, p[0], nil) }, fd)
			})
			for _, c := range []struct {
				name               string
				gateConst, upConst bool
			}{{"glu", false, false}, {"glu-const-gate", true, false}, {"glu-const-up", false, true}} {
				t.Run(fmt.Sprintf("%v/%s/%dx%d", a, c.name, d[0], d[1]), func(t *testing.T) {
					ins := []input{
						{name: "gate", data: x, rows: d[0], cols: d[1], noGrad: c.gateConst},
						{name: "up", data: up, rows: d[0], cols: d[1], noGrad: c.upConst},
					}
					checkOpWith(t, uint64(i), ins,
						func(p []mat.Tensor) mat.Tensor { return GLU(p[0], p[1], a) },
						func(p [][]float64) []float64 { return activationRef(a, p[0], p[1]) }, fd)
				})
			}
		}
	}
}

// TestActivationInference: without gradients the operations build no
// graph node and give the values they give with gradients.
func TestActivationInference(t *testing.T) {
	r := newRand(990)
	x, up := randn(r, 300, 2), randn(r, 300, 1)
	for a := SiLU; a.Valid(); a++ {
		for _, gated := range []bool{false, true} {
			values := func(grad bool) []float32 {
				px := nn.NewParam(newDense32(x, 20, 15))
				pu := nn.NewParam(newDense32(up, 20, 15))
				px.SetRequiresGrad(grad)
				pu.SetRequiresGrad(grad)
				var y mat.Tensor
				if gated {
					y = GLU(px, pu, a)
				} else {
					y = Activate(px, a)
				}
				if _, plain := y.(*mat.Dense[float32]); plain == grad { // a graph node exactly when gradients are on
					t.Errorf("%v gated %v: requires grad %v, result %T", a, gated, grad, y)
				}
				return y.Value().Data().F32()
			}
			with, without := values(true), values(false)
			for i := range with {
				if math.Float32bits(with[i]) != math.Float32bits(without[i]) {
					t.Fatalf("%v gated %v: element %d is %v with gradients, %v without", a, gated, i, with[i], without[i])
				}
			}
		}
	}
}

func TestActivationNames(t *testing.T) {
	for _, name := range ActivationNames() {
		a, ok := ActivationNamed(name)
		if !ok || !a.Valid() {
			t.Errorf("%s: %v, %v", name, a, ok)
		}
		if b, _ := ActivationNamed(a.String()); b != a {
			t.Errorf("%s: canonical name %s names %v", name, a, b)
		}
	}
	for a := SiLU; a.Valid(); a++ {
		if b, ok := ActivationNamed(a.String()); !ok || b != a {
			t.Errorf("%v has no name", a)
		}
	}
	for _, bad := range []string{"", "gelu_10", "GELU", "tanh", "mish"} {
		if _, ok := ActivationNamed(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
	if Activation(0).Valid() || (ReLU + 1).Valid() {
		t.Error("Valid")
	}
}
