package kernels_test

import (
	"fmt"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"

	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/kernels"
)

// Example shows the spago workflow around the kernels: parameters are
// nn.Params (they require gradients), every kernel call adds one node, the
// scalar loss is back-propagated with ag.Backward (its dL/dL = 1 seed is
// implicit), gradients are read with HasGrad/Grad and cleared with ZeroGrad
// (optimizers do it after each step; gradients otherwise accumulate).
func Example() {
	const T, H, d = 4, 2, 4
	fill := func(n int, v float32) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = v * float32(i%5-2)
		}
		return x
	}
	param := func(rows, cols int, v float32) *nn.Param {
		return nn.NewParam(mat.NewDense[float32](mat.WithShape(rows, cols), mat.WithBacking(fill(rows*cols, v))))
	}
	emb := param(10, H*d, 0.1) // [vocab, features], tied with the output layer
	wq, wk, wv := param(H*d, H*d, 0.2), param(H*d, H*d, 0.3), param(H*d, H*d, 0.1)
	s := nn.NewParam(mat.NewDense[float32](mat.WithShape(1, H), mat.WithBacking([]float32{0.4, 0.6})))

	x := kernels.Embedding(emb, []int{1, 2, 3, 4})
	cfg := kernels.AttentionConfig{Heads: H, KVHeads: H, HeadDim: d, Variant: attnscale.SSMax}
	a := kernels.Attention(kernels.Linear(x, wq, nil, false), kernels.Linear(x, wk, nil, false), kernels.Linear(x, wv, nil, false), s, nil, cfg)
	logits := kernels.Linear(kernels.Add(x, a), emb, nil, false)
	loss := kernels.CrossEntropy(logits, []int{2, 3, 4, -1})

	if err := ag.Backward(loss); err != nil {
		panic(err)
	}
	fmt.Println("loss shape:", loss.Shape())
	fmt.Println("s has gradient:", s.HasGrad(), "of shape", s.Grad().Shape())
	for _, p := range []*nn.Param{emb, wq, wk, wv, s} {
		p.ZeroGrad() // what optimizers do after updating a parameter
	}
	fmt.Println("after ZeroGrad:", s.HasGrad())
	// Output:
	// loss shape: [1 1]
	// s has gradient: true of shape [1 2]
	// after ZeroGrad: false
}
