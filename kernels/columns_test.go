package kernels

import (
	"fmt"
	"testing"

	"github.com/nlpodyssey/spago/mat"
)

func columnsRef(x []float64, rows, cols, from, to int) []float64 {
	var y []float64
	for r := 0; r < rows; r++ {
		y = append(y, x[r*cols+from:r*cols+to]...)
	}
	return y
}

func TestColumns(t *testing.T) {
	for i, c := range []struct{ rows, cols, from, to int }{{1, 1, 0, 1}, {7, 33, 11, 22}, {33, 7, 0, 7}, {5, 9, 8, 9}} {
		t.Run(fmt.Sprintf("%dx%d_%d_%d", c.rows, c.cols, c.from, c.to), func(t *testing.T) {
			r := newRand(uint64(1700 + i))
			ins := []input{{name: "x", data: randn(r, c.rows*c.cols, 1), rows: c.rows, cols: c.cols}}
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor { return Columns(x[0], c.from, c.to) },
				func(x [][]float64) []float64 { return columnsRef(x[0], c.rows, c.cols, c.from, c.to) })
		})
	}
}

// TestColumnsSplit splits a fused projection into three parts, as GPT-2's
// c_attn is, and recombines them: every part sends a gradient to x.
func TestColumnsSplit(t *testing.T) {
	const rows, w = 7, 5
	r := newRand(1750)
	ins := []input{{name: "qkv", data: randn(r, rows*3*w, 1), rows: rows, cols: 3 * w}}
	checkOp(t, 1750, ins,
		func(x []mat.Tensor) mat.Tensor {
			q, k, v := Columns(x[0], 0, w), Columns(x[0], w, 2*w), Columns(x[0], 2*w, 3*w)
			return Add(GLU(q, k, SiLU), v)
		},
		func(x [][]float64) []float64 {
			q, k, v := columnsRef(x[0], rows, 3*w, 0, w), columnsRef(x[0], rows, 3*w, w, 2*w), columnsRef(x[0], rows, 3*w, 2*w, 3*w)
			return addRef(siluGateRef(q, k), v)
		})
}
