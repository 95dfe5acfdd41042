package kernels

import (
	"fmt"
	"testing"

	"github.com/nlpodyssey/spago/mat"
)

func TestRoPE(t *testing.T) {
	cases := []struct {
		rows, heads, hd int
		pos             string // "nil", "random", "large"
		theta           float64
	}{
		{1, 1, 2, "nil", 10000},
		{7, 3, 8, "random", 10000},
		{33, 4, 34, "random", 500000},
		{33, 1, 64, "large", 10000},
		{7, 2, 6, "nil", 1e6},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("T%d_h%d_d%d_%s", c.rows, c.heads, c.hd, c.pos), func(t *testing.T) {
			r := newRand(uint64(900 + i))
			var pos []int
			switch c.pos {
			case "random":
				pos = make([]int, c.rows)
				for j := range pos {
					pos[j] = r.IntN(100)
				}
			case "large":
				pos = make([]int, c.rows)
				for j := range pos {
					pos[j] = 100000 + 997*j
				}
			}
			ins := []input{{name: "x", data: randn(r, c.rows*c.heads*c.hd, 1), rows: c.rows, cols: c.heads * c.hd}}
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor { return RoPE(x[0], c.heads, c.hd, pos, c.theta) },
				func(x [][]float64) []float64 { return ropeRef(x[0], c.rows, c.heads, c.hd, pos, c.theta) })
		})
	}
}
