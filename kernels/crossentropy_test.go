package kernels

import (
	"fmt"
	"testing"

	"github.com/nlpodyssey/spago/mat"
)

func TestCrossEntropy(t *testing.T) {
	cases := []struct {
		rows, classes int
		ignore        []int // rows whose target is -1
	}{
		{1, 1, nil},
		{1, 7, nil},
		{7, 33, []int{0, 4}},
		{33, 7, []int{1, 2, 3, 32}},
		{5, 3, []int{0, 1, 2, 3, 4}}, // everything ignored: loss 0, zero gradient
		{64, 1000, []int{7}},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("T%d_V%d_ign%d", c.rows, c.classes, len(c.ignore)), func(t *testing.T) {
			r := newRand(uint64(1100 + i))
			targets := make([]int, c.rows)
			for j := range targets {
				targets[j] = r.IntN(c.classes)
			}
			for _, j := range c.ignore {
				targets[j] = -1
			}
			ins := []input{{name: "logits", data: randn(r, c.rows*c.classes, 3), rows: c.rows, cols: c.classes}}
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor { return CrossEntropy(x[0], targets) },
				func(x [][]float64) []float64 { return crossEntropyRef(x[0], targets, c.classes) })
		})
	}
}
