package kernels

import (
	"fmt"
	"testing"

	"github.com/nlpodyssey/spago/mat"
)

func TestEmbedding(t *testing.T) {
	cases := []struct {
		vocab, d int
		ids      []int
	}{
		{1, 1, []int{0}},
		{7, 7, []int{3, 3, 0, 6, 3}}, // repeated ids accumulate
		{33, 33, []int{1, 32, 5, 5, 9, 0, 31}},
		{50, 1, []int{49, 49, 49}},
		{10, 9, nil}, // no rows
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("V%d_d%d_n%d", c.vocab, c.d, len(c.ids)), func(t *testing.T) {
			r := newRand(uint64(1000 + i))
			ins := []input{{name: "table", data: randn(r, c.vocab*c.d, 1), rows: c.vocab, cols: c.d}}
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor { return Embedding(x[0], c.ids) },
				func(x [][]float64) []float64 { return embeddingRef(x[0], c.ids, c.d) })
		})
	}
}
