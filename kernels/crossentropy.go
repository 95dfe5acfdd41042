package kernels

import (
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/mat"
)

// CrossEntropy returns the mean, over the rows t whose target is >= 0, of
// −log softmax(logits[t])[targets[t]]; rows with target −1 (any negative
// value) are ignored. logits is [T, V] and targets has T entries. The result
// is a 1×1 matrix; it is 0 when every target is ignored. The backward pass
// gives (softmax − onehot)/count · gy for counted rows and 0 elsewhere.
//
// When the logits require a gradient, the forward pass already writes
// (softmax − onehot)/count into the gradient buffer (the exponentials are
// computed once), and the backward pass scales it by gy and hands it over.
func CrossEntropy(logits mat.Tensor, targets []int) mat.Tensor {
	return run(&crossEntropyFn{logits: logits, targets: cloneInts(targets)})
}

type crossEntropyFn struct {
	logits        mat.Tensor
	targets       []int
	rows, classes int
	dx            []float32 // gradient for gy = 1, computed by Forward
}

func (f *crossEntropyFn) Operands() []mat.Tensor { return []mat.Tensor{f.logits} }

func (f *crossEntropyFn) Forward() (mat.Tensor, error) {
	x, rows, classes, err := dense("CrossEntropy", "logits", f.logits)
	if err != nil {
		return nil, err
	}
	if len(f.targets) != rows {
		return nil, opError("CrossEntropy", "logits has %d rows but %d targets were given", rows, len(f.targets))
	}
	for i, t := range f.targets {
		if t >= classes {
			return nil, opError("CrossEntropy", "targets[%d] = %d out of range for %d classes", i, t, classes)
		}
	}
	f.rows, f.classes = rows, classes
	count := countTargets(f.targets)
	if f.logits.RequiresGrad() {
		f.dx = getF32(len(x))
	}
	losses := getF64Zero(rows)
	softmaxRows(losses, f.dx, x, f.targets, 0, rows, classes, count)
	loss := meanLoss(losses, count)
	putF64(losses)
	return mat.NewDense[float32](mat.WithShape(1, 1), mat.WithBacking([]float32{float32(loss)})), nil
}

func (f *crossEntropyFn) Backward(gy mat.Tensor) error {
	if !f.logits.RequiresGrad() || f.dx == nil {
		return nil
	}
	g := gradData(gy)
	if len(g) != 1 {
		return opError("CrossEntropy", "output gradient has %d values, want 1", len(g))
	}
	dx := f.dx
	f.dx = nil
	scaleInPlace(dx, g[0])
	accGrad(f.logits, dx)
	return nil
}

// countTargets returns the number of targets >= 0.
func countTargets(targets []int) int {
	n := 0
	for _, t := range targets {
		if t >= 0 {
			n++
		}
	}
	return n
}

// meanLoss returns Σ losses / count (0 when count is 0), summed in order.
func meanLoss(losses []float64, count int) float64 {
	if count == 0 {
		return 0
	}
	var sum float64
	for _, l := range losses {
		sum += l
	}
	return sum / float64(count)
}

// scaleInPlace multiplies x by g (nothing to do when g is 1).
func scaleInPlace(x []float32, g float32) {
	if g == 1 {
		return
	}
	parallelFor(len(x), 1<<16, func(_, lo, hi int) {
		for i := range x[lo:hi] {
			x[lo+i] *= g
		}
	})
}

// softmaxRows processes rows [r0, r1) of the logits x [*, classes] (x holds
// those rows only, from row r0): losses[t] = logsumexp(x_t) − x_t[target]
// for counted rows (targets[t] >= 0), 0 for the others. When grad is not
// nil (laid out like x), it receives (softmax(x_t) − onehot)/count, zero
// for ignored rows; grad may be x itself (the logits are then consumed).
func softmaxRows(losses []float64, grad, x []float32, targets []int, r0, r1, classes, count int) {
	inv := float32(0)
	if count > 0 {
		inv = float32(1 / float64(count))
	}
	parallelFor(r1-r0, max(1, (1<<15)/max(classes, 1)), func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			var gr []float32
			if grad != nil {
				gr = grad[i*classes : (i+1)*classes]
			}
			losses[r0+i] = softmaxRow(gr, x[i*classes:(i+1)*classes], targets[r0+i], inv)
		}
	})
}

// softmaxRow is softmaxRows for one row of logits x: it returns the loss
// (0 for an ignored row, tg < 0) and, when g is not nil, sets it to
// (softmax(x) − onehot(tg))·inv (zero for an ignored row).
func softmaxRow(g, x []float32, tg int, inv float32) float64 {
	if tg < 0 {
		clear(g)
		return 0
	}
	m := x[0]
	for _, v := range x[1:] {
		if v > m {
			m = v
		}
	}
	xt := x[tg]
	if g == nil {
		return float64(m) + math.Log(expScaledSub(nil, x, 1, m)) - float64(xt)
	}
	g = g[:len(x)]
	sum := expScaledSub(g, x, 1, m)
	c := float32(1/sum) * inv
	for j := range g {
		g[j] *= c
	}
	g[tg] -= inv
	return float64(m) + math.Log(sum) - float64(xt)
}

// LinearCrossEntropy returns CrossEntropy(Linear(x, w, nil, false),
// targets) — the mean loss of the logits x·wᵀ, x [T, D] the hidden states
// and w [V, D] the output projection (the LM head, or the tied embedding
// table) — without ever holding the [T, V] logits: they are computed a
// block of rows at a time (at most logitBlockBytes), and when a
// gradient is required the block's logit gradient (softmax − onehot)/count
// is turned into the gradients of x and w during the forward pass
// (dx_blk = dL·w, dw += dLᵀ·x_blk, by gemm). The backward pass then only
// scales them by the incoming gradient (1 for a loss) and hands them over,
// w's first.
func LinearCrossEntropy(x, w mat.Tensor, targets []int) mat.Tensor {
	return run(&linearCrossEntropyFn{x: x, w: w, targets: cloneInts(targets)})
}

// LinearCrossEntropySoftcap is LinearCrossEntropy with the logits soft
// capped before the softmax, cap·tanh(x·wᵀ/cap) (Gemma 2's
// final_logit_softcapping); cap 0 means none (LinearCrossEntropy). Like
// LinearCrossEntropy it never holds the [T, V] logits; the cap costs one
// tanh per logit (ftanh) and the gradient is multiplied by 1 − tanh². cap
// must not be negative.
func LinearCrossEntropySoftcap(x, w mat.Tensor, targets []int, cap float32) mat.Tensor {
	return run(&linearCrossEntropyFn{x: x, w: w, targets: cloneInts(targets), cap: cap})
}

// logitBlockBytes bounds the logits block of LinearCrossEntropy and
// LinearNLL, unless that would make blocks thinner than logitBlockMinRows
// (variables for the tests).
var (
	logitBlockBytes   = 32 << 20
	logitBlockMinRows = 256
)

// logitBlockRows returns the rows of each logits block of a head of vocab
// outputs over rows hidden states of dim values: blocks of at most
// logitBlockBytes, or, when the head's weight is trained (dw, vocab·dim
// float32 values, is held anyway), at most as large as dw; at least
// logitBlockMinRows (each block adds its dLᵀ·x into the whole dw and
// packs the whole w, so thin blocks cost time); rows split evenly between
// the blocks. Larger blocks amortise the packing of w over more rows.
func logitBlockRows(rows, vocab, dim int, wTrains bool) int {
	budget := logitBlockBytes
	if wTrains {
		budget = max(budget, 4*vocab*dim)
	}
	most := max(logitBlockMinRows, budget/4/max(vocab, 1), 1)
	if rows <= most {
		return max(rows, 1)
	}
	blocks := (rows + most - 1) / most
	return (rows + blocks - 1) / blocks
}

type linearCrossEntropyFn struct {
	x, w    mat.Tensor
	targets []int
	cap     float32   // logit soft cap (0: none)
	grad    bool      // Forward computed gradients
	dx, dw  []float32 // gradients for gy = 1, computed by Forward (nil for an operand without one)
}

func (f *linearCrossEntropyFn) Operands() []mat.Tensor { return []mat.Tensor{f.x, f.w} }

func (f *linearCrossEntropyFn) Forward() (mat.Tensor, error) {
	x, rows, dim, err := dense("LinearCrossEntropy", "x", f.x)
	if err != nil {
		return nil, err
	}
	w, vocab, wdim, err := weightOperand("LinearCrossEntropy", "w", f.w)
	if err != nil {
		return nil, err
	}
	if !(f.cap >= 0) || math.IsInf(float64(f.cap), 0) {
		return nil, opError("LinearCrossEntropy", "the soft cap must be finite and >= 0, got %v", f.cap)
	}
	if wdim != dim {
		return nil, opError("LinearCrossEntropy", "x is [%d,%d] but w is [%d,%d]; want w [vocab,%d]", rows, dim, vocab, wdim, dim)
	}
	if len(f.targets) != rows {
		return nil, opError("LinearCrossEntropy", "x has %d rows but %d targets were given", rows, len(f.targets))
	}
	for i, t := range f.targets {
		if t >= vocab {
			return nil, opError("LinearCrossEntropy", "targets[%d] = %d out of range for %d classes", i, t, vocab)
		}
	}
	count := countTargets(f.targets)
	needX, needW := f.x.RequiresGrad(), f.w.RequiresGrad()
	grad := needX || needW
	if needX {
		f.dx = getF32(rows * dim)
	}
	if needW {
		f.dw = getF32(vocab * dim) // the first block's product overwrites it
		if rows == 0 {
			clear(f.dw)
		}
	}
	f.grad = grad
	block := logitBlockRows(rows, vocab, dim, needW)
	logits := getF32(min(block, rows) * vocab)
	losses := getF64Zero(rows)
	for r0 := 0; r0 < rows; r0 += block {
		r1 := min(r0+block, rows)
		n := r1 - r0
		lb := logits[:n*vocab]
		xb := x[r0*dim : r1*dim]
		gemmOp(false, true, n, vocab, dim, xb, w, lb, false)
		if !grad {
			capLogits(lb, f.cap)
			softmaxRows(losses, nil, lb, f.targets, r0, r1, vocab, count)
			continue
		}
		if f.cap > 0 {
			softcapSoftmaxRows(losses, lb, f.targets, r0, r1, vocab, count, f.cap)
		} else {
			softmaxRows(losses, lb, lb, f.targets, r0, r1, vocab, count)
		}
		if needX {
			gemmOp(false, false, n, dim, vocab, lb, w, f.dx[r0*dim:r1*dim], false) // dx = dL·w
		}
		if needW {
			gemm(true, false, vocab, dim, n, lb, xb, f.dw, r0 > 0) // dw += dLᵀ·x
		}
	}
	putF32(logits)
	loss := meanLoss(losses, count)
	putF64(losses)
	return mat.NewDense[float32](mat.WithShape(1, 1), mat.WithBacking([]float32{float32(loss)})), nil
}

func (f *linearCrossEntropyFn) Backward(gy mat.Tensor) error {
	if !f.grad {
		return nil
	}
	f.grad = false
	g := gradData(gy)
	if len(g) != 1 {
		return opError("LinearCrossEntropy", "output gradient has %d values, want 1", len(g))
	}
	dx, dw := f.dx, f.dw
	f.dx, f.dw = nil, nil
	// w first: a tied embedding table then has its gradient before the
	// backward pass reaches the embedding lookup (see Embedding).
	if dw != nil {
		scaleInPlace(dw, g[0])
		accGrad(f.w, dw)
	}
	if dx != nil {
		scaleInPlace(dx, g[0])
		accGrad(f.x, dx)
	}
	return nil
}

// LinearNLL returns, for every row t of x [rows, dim], the negative
// log-likelihood −log softmax(x_t·wᵀ)[targets[t]] of its target under the
// logits of w [vocab, dim] (the LM head), NaN where targets[t] < 0: the
// per-token losses of LinearCrossEntropy, without autograd (for scoring and
// evaluation). The logits are computed a block of rows at a time, so the
// [rows, vocab] matrix is never held.
//
// LinearNLL panics with a descriptive message if a slice is too short or a
// target is >= vocab: the caller validates its inputs.
func LinearNLL(x, w []float32, rows, dim, vocab int, targets []int) []float64 {
	return LinearNLLSoftcap(x, w, rows, dim, vocab, targets, 0)
}

// LinearNLLSoftcap is LinearNLL with the logits soft capped,
// cap·tanh(x·wᵀ/cap), as LinearCrossEntropySoftcap does; cap 0 means
// none. It panics if cap is negative.
func LinearNLLSoftcap(x, w []float32, rows, dim, vocab int, targets []int, cap float32) []float64 {
	return linearNLL(x, f32Operand(w), rows, dim, vocab, targets, cap)
}

// HeadNLL is LinearNLLSoftcap on tensors: x [rows, dim] the hidden states
// (a *mat.Dense[float32]) and w [vocab, dim] the LM head, a
// *mat.Dense[float32] or a stored *Weight. It panics on operands of the
// wrong type or shape, as LinearNLL does.
func HeadNLL(x, w mat.Tensor, targets []int, cap float32) []float64 {
	xv, rows, dim, err := dense("HeadNLL", "x", x)
	if err != nil {
		panic(err.Error())
	}
	wv, vocab, wdim, err := weightOperand("HeadNLL", "w", w)
	if err != nil {
		panic(err.Error())
	}
	if wdim != dim {
		panic(opError("HeadNLL", "x is [%d,%d] but w is [%d,%d]; want w [vocab,%d]", rows, dim, vocab, wdim, dim).Error())
	}
	return linearNLL(xv, wv, rows, dim, vocab, targets, cap)
}

func linearNLL(x []float32, w gemmOperand, rows, dim, vocab int, targets []int, cap float32) []float64 {
	switch {
	case !(cap >= 0) || math.IsInf(float64(cap), 0):
		panic(fmt.Sprintf("kernels.LinearNLL: the soft cap must be finite and >= 0, got %v", cap))
	case rows < 0 || dim <= 0 || vocab <= 0:
		panic(fmt.Sprintf("kernels.LinearNLL: bad sizes rows %d, dim %d, vocab %d", rows, dim, vocab))
	case len(x) < rows*dim || w.len() < vocab*dim:
		panic(fmt.Sprintf("kernels.LinearNLL: x has %d values, w %d; want %d×%d and %d×%d", len(x), w.len(), rows, dim, vocab, dim))
	case len(targets) != rows:
		panic(fmt.Sprintf("kernels.LinearNLL: %d targets for %d rows", len(targets), rows))
	}
	for i, t := range targets {
		if t >= vocab {
			panic(fmt.Sprintf("kernels.LinearNLL: targets[%d] = %d out of range for %d classes", i, t, vocab))
		}
	}
	out := make([]float64, rows)
	block := logitBlockRows(rows, vocab, dim, false)
	logits := getF32(max(block, 1) * vocab)
	for r0 := 0; r0 < rows; r0 += block {
		r1 := min(r0+block, rows)
		lb := logits[:(r1-r0)*vocab]
		gemmOp(false, true, r1-r0, vocab, dim, x[r0*dim:r1*dim], w, lb, false)
		capLogits(lb, cap)
		softmaxRows(out, nil, lb, targets, r0, r1, vocab, 0)
	}
	putF32(logits)
	for i, t := range targets {
		if t < 0 {
			out[i] = math.NaN()
		}
	}
	return out
}

// capLogits replaces every logit z of x by cap·tanh(z/cap) (nothing when
// cap is 0).
func capLogits(x []float32, cap float32) {
	if cap == 0 {
		return
	}
	c := float64(cap)
	parallelFor(len(x), 1<<14, func(_, lo, hi int) {
		for i, z := range x[lo:hi] {
			x[lo+i] = float32(c * ftanh(float64(z)/c))
		}
	})
}

// softcapSoftmaxRows is softmaxRows for soft-capped logits, computing the
// gradient in place: for rows [r0, r1) of the raw logits x, losses[t] is
// the loss of the capped logits l = cap·tanh(x_t/cap), and x_t is replaced
// by the gradient of the raw logits, (softmax(l) − onehot)/count·(1 −
// tanh²) (zero for ignored rows).
func softcapSoftmaxRows(losses []float64, x []float32, targets []int, r0, r1, classes, count int, cap float32) {
	inv := float32(0)
	if count > 0 {
		inv = float32(1 / float64(count))
	}
	c := float64(cap)
	parallelFor(r1-r0, max(1, (1<<15)/max(classes, 1)), func(_, lo, hi int) {
		l, dl := getF32(classes), getF32(classes) // capped logits; 1 − tanh²
		for i := lo; i < hi; i++ {
			xr := x[i*classes : (i+1)*classes]
			tg := targets[r0+i]
			if tg < 0 {
				clear(xr)
				losses[r0+i] = 0
				continue
			}
			for j, z := range xr {
				th := ftanh(float64(z) / c)
				l[j] = float32(c * th)
				dl[j] = float32(1 - th*th)
			}
			losses[r0+i] = softmaxRow(xr, l, tg, inv)
			for j := range xr {
				xr[j] *= dl[j]
			}
		}
		putF32(l)
		putF32(dl)
	})
}
