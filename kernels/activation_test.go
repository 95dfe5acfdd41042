package kernels

import (
	"fmt"
	"testing"

	"github.com/nlpodyssey/spago/mat"
)

var elementwiseShapes = [][2]int{{1, 1}, {7, 33}, {33, 7}, {200, 97}}

func TestGELUTanh(t *testing.T) {
	for i, d := range elementwiseShapes {
		t.Run(fmt.Sprintf("%dx%d", d[0], d[1]), func(t *testing.T) {
			r := newRand(uint64(700 + i))
			ins := []input{{name: "x", data: randn(r, d[0]*d[1], 2), rows: d[0], cols: d[1]}}
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor { return GELUTanh(x[0]) },
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
				func(x []mat.Tensor) mat.Tensor { return SiLUGate(x[0], x[1]) },
				func(x [][]float64) []float64 { return siluGateRef(x[0], x[1]) })
		})
	}
}
