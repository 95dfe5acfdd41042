package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
)

// randomTargets returns n targets drawn uniformly from [0, classes), with
// -1 (no target) at the rows ignore lists.
func randomTargets(r *rand.Rand, n, classes int, ignore ...int) []int {
	targets := make([]int, n)
	for j := range targets {
		targets[j] = r.IntN(classes)
	}
	for _, j := range ignore {
		targets[j] = -1
	}
	return targets
}

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
			targets := randomTargets(r, c.rows, c.classes, c.ignore...)
			ins := []input{{name: "logits", data: randn(r, c.rows*c.classes, 3), rows: c.rows, cols: c.classes}}
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor { return CrossEntropy(x[0], targets) },
				func(x [][]float64) []float64 { return crossEntropyRef(x[0], targets, c.classes) })
		})
	}
}

func TestLinearCrossEntropy(t *testing.T) {
	cases := []struct {
		rows, dim, vocab int
		ignore           []int
	}{
		{1, 1, 1, nil},
		{7, 5, 33, []int{0, 4}},
		{33, 16, 7, []int{1, 2, 3, 32}},
		{5, 3, 3, []int{0, 1, 2, 3, 4}},
		{64, 8, 1000, []int{7}},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("T%d_D%d_V%d_ign%d", c.rows, c.dim, c.vocab, len(c.ignore)), func(t *testing.T) {
			r := newRand(uint64(1150 + i))
			targets := randomTargets(r, c.rows, c.vocab, c.ignore...)
			ins := []input{
				{name: "x", data: randn(r, c.rows*c.dim, 1), rows: c.rows, cols: c.dim},
				{name: "w", data: randn(r, c.vocab*c.dim, 1), rows: c.vocab, cols: c.dim},
			}
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor { return LinearCrossEntropy(x[0], x[1], targets) },
				func(x [][]float64) []float64 {
					return crossEntropyRef(linearRef(x[0], x[1], nil, c.rows, c.dim, c.vocab, false), targets, c.vocab)
				})
		})
	}
}

// TestLinearCrossEntropyBlocks: a vocabulary large enough to split the rows
// into several logits blocks gives the unfused composition's loss and
// gradients.
func TestLinearCrossEntropyBlocks(t *testing.T) {
	const T, D, V = 40, 8, 300
	defer func(b, r int) { logitBlockBytes, logitBlockMinRows = b, r }(logitBlockBytes, logitBlockMinRows)
	logitBlockBytes, logitBlockMinRows = 16*V*4, 1 // blocks of 16 rows
	r := newRand(1190)
	targets := randomTargets(r, T, V, 3)
	xv, wv := randn(r, T*D, 1), randn(r, V*D, 0.5)
	run := func(fused bool) (float32, []float32, []float32) {
		x, w := nn.NewParam(newDense32(xv, T, D)), nn.NewParam(newDense32(wv, V, D))
		var loss mat.Tensor
		if fused {
			loss = LinearCrossEntropy(x, w, targets)
		} else {
			loss = CrossEntropy(Linear(x, w, nil, false), targets)
		}
		if err := ag.Backward(loss); err != nil {
			t.Fatal(err)
		}
		return loss.Value().Item().F32(), grad32(x), grad32(w)
	}
	l1, dx1, dw1 := run(false)
	l2, dx2, dw2 := run(true)
	if math.Abs(float64(l1-l2)) > 1e-6*math.Abs(float64(l1)) {
		t.Errorf("loss %v, unfused %v", l2, l1)
	}
	for name, pair := range map[string][2][]float32{"x": {dx1, dx2}, "w": {dw1, dw2}} {
		scale, worst := 0.0, 0.0
		for i := range pair[0] {
			scale = math.Max(scale, math.Abs(float64(pair[0][i])))
			worst = math.Max(worst, math.Abs(float64(pair[0][i]-pair[1][i])))
		}
		if worst > 1e-5*scale {
			t.Errorf("gradient of %s differs by %g (scale %g)", name, worst, scale)
		}
	}
}

func TestLinearNLL(t *testing.T) {
	const T, D, V = 37, 6, 300
	r := newRand(1195)
	x, w := randn(r, T*D, 1), randn(r, V*D, 1)
	targets := randomTargets(r, T, V, 5, T-1)
	defer func(b, m int) { logitBlockBytes, logitBlockMinRows = b, m }(logitBlockBytes, logitBlockMinRows)
	logitBlockBytes, logitBlockMinRows = 8*V*4, 1 // several blocks
	got := LinearNLL(x, w, T, D, V, targets)
	logits := linearRef(f64(x), f64(w), nil, T, D, V, false)
	for i, tg := range targets {
		if tg < 0 {
			if !math.IsNaN(got[i]) {
				t.Errorf("row %d: ignored target gives %v, want NaN", i, got[i])
			}
			continue
		}
		want := crossEntropyRef(logits[i*V:(i+1)*V], []int{tg}, V)[0]
		if math.Abs(got[i]-want) > 1e-5*math.Max(1, math.Abs(want)) {
			t.Errorf("row %d: nll %v, want %v", i, got[i], want)
		}
	}
}

// TestLinearCrossEntropySoftcap: the loss of the soft-capped logits
// cap·tanh(x·wᵀ/cap) against the reference, with gradients, in one block
// and in several (small logitBlockBytes); LinearNLLSoftcap gives the
// per-token losses; cap 0 is LinearCrossEntropy bit for bit.
func TestLinearCrossEntropySoftcap(t *testing.T) {
	cases := []struct {
		rows, dim, vocab int
		ignore           []int
		cap              float32
		blocks           bool
	}{
		{1, 1, 1, nil, 1, false},
		{7, 5, 33, []int{0, 4}, 2, false},
		{33, 16, 7, []int{1, 2, 3, 32}, 30, false},
		{5, 3, 3, []int{0, 1, 2, 3, 4}, 5, false},
		{40, 8, 500, []int{7}, 3, false},
		{250, 4, 60, []int{7, 200}, 2, true},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("T%d_D%d_V%d_ign%d_cap%v_blocks%v", c.rows, c.dim, c.vocab, len(c.ignore), c.cap, c.blocks), func(t *testing.T) {
			if c.blocks {
				defer func(b, m int) { logitBlockBytes, logitBlockMinRows = b, m }(logitBlockBytes, logitBlockMinRows)
				logitBlockBytes, logitBlockMinRows = 4*c.vocab*100, 1 // blocks of 100 rows: three blocks
			}
			r := newRand(uint64(1180 + i))
			targets := make([]int, c.rows)
			for j := range targets {
				targets[j] = r.IntN(c.vocab)
			}
			for _, j := range c.ignore {
				targets[j] = -1
			}
			ins := []input{
				{name: "x", data: randn(r, c.rows*c.dim, 1), rows: c.rows, cols: c.dim},
				{name: "w", data: randn(r, c.vocab*c.dim, 1), rows: c.vocab, cols: c.dim},
			}
			capped := func(x [][]float64) []float64 {
				return softcapRef(linearRef(x[0], x[1], nil, c.rows, c.dim, c.vocab, false), float64(c.cap))
			}
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor { return LinearCrossEntropySoftcap(x[0], x[1], targets, c.cap) },
				func(x [][]float64) []float64 { return crossEntropyRef(capped(x), targets, c.vocab) })
			// Per token.
			logits := capped([][]float64{f64(ins[0].data), f64(ins[1].data)})
			nll := LinearNLLSoftcap(ins[0].data, ins[1].data, c.rows, c.dim, c.vocab, targets, c.cap)
			for j, tg := range targets {
				if tg < 0 {
					if !math.IsNaN(nll[j]) {
						t.Errorf("ignored row %d: %v, want NaN", j, nll[j])
					}
					continue
				}
				want := crossEntropyRef(logits[j*c.vocab:(j+1)*c.vocab], []int{tg}, c.vocab)[0]
				if math.Abs(nll[j]-want) > 1e-5*math.Max(1, math.Abs(want)) {
					t.Errorf("row %d: LinearNLLSoftcap %v, reference %v", j, nll[j], want)
				}
			}
		})
	}
}

// TestLinearCrossEntropySoftcapNone: cap 0 is LinearCrossEntropy (and
// LinearNLL) bit for bit, loss and gradients.
func TestLinearCrossEntropySoftcapNone(t *testing.T) {
	const rows, dim, vocab = 40, 8, 50
	r := newRand(1190)
	x, w := randn(r, rows*dim, 1), randn(r, vocab*dim, 1)
	targets := make([]int, rows)
	for j := range targets {
		targets[j] = r.IntN(vocab)
	}
	run := func(f func(x, w mat.Tensor) mat.Tensor) [][]float32 {
		xp, wp := nn.NewParam(newDense32(x, rows, dim)), nn.NewParam(newDense32(w, vocab, dim))
		y := f(xp, wp)
		if err := ag.Backward(y); err != nil {
			t.Fatal(err)
		}
		return [][]float32{y.Value().Data().F32(), grad32(xp), grad32(wp)}
	}
	a := run(func(x, w mat.Tensor) mat.Tensor { return LinearCrossEntropy(x, w, targets) })
	b := run(func(x, w mat.Tensor) mat.Tensor { return LinearCrossEntropySoftcap(x, w, targets, 0) })
	for i := range a {
		for j := range a[i] {
			if a[i][j] != b[i][j] {
				t.Fatalf("result %d differs at %d: %v vs %v", i, j, a[i][j], b[i][j])
			}
		}
	}
	n1 := LinearNLL(x, w, rows, dim, vocab, targets)
	n2 := LinearNLLSoftcap(x, w, rows, dim, vocab, targets, 0)
	for j := range n1 {
		if n1[j] != n2[j] {
			t.Fatalf("LinearNLL row %d: %v vs %v", j, n1[j], n2[j])
		}
	}
}

// TestLogitBlockRows: blocks are bounded by logitBlockBytes, or by the size
// of dw when the head trains, never thinner than logitBlockMinRows, and
// split the rows evenly.
func TestLogitBlockRows(t *testing.T) {
	for _, c := range []struct {
		rows, vocab, dim int
		wTrains          bool
		want             int
	}{
		{0, 50257, 768, true, 1},
		{100, 50257, 768, true, 100},
		{1024, 50257, 768, false, 256},  // 32 MB holds 166 rows: the 256-row floor
		{1024, 50257, 768, true, 512},   // dw holds 768 rows: two even blocks
		{2048, 8192, 384, true, 1024},   // 32 MB: 1024 rows
		{65536, 8192, 384, false, 1024}, // inference at long context: 32 MB blocks
		{1000, 8192, 384, false, 1000},
		{1100, 8192, 384, false, 550},
		{8192, 128256, 4096, true, 4096}, // Llama 3 head, trained: blocks as large as dw (4096 rows)
	} {
		if got := logitBlockRows(c.rows, c.vocab, c.dim, c.wTrains); got != c.want {
			t.Errorf("logitBlockRows(%d, %d, %d, %v) = %d, want %d", c.rows, c.vocab, c.dim, c.wTrains, got, c.want)
		}
	}
}
