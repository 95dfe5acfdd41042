package kernels

import (
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
)

// How an operation runs: as a spago graph node or directly (run), and how
// it hands its results and gradients to spago (output, accGrad,
// ownedDense) so that gradient buffers are recycled during the backward
// pass.

// run executes the operation fn: its Forward runs at once, and a Forward
// error (a bad operand: the exported operations return no error) panics
// with its message, which names the operation and the shapes. When one of
// fn's operands requires a gradient the result becomes a spago graph node
// (ag.Operator), as usual. Otherwise — inference, with frozen weights —
// the plain result is returned: no node is created, so the result does not
// keep its operands (and through them the whole forward pass) alive, and
// long inputs need memory for a few activations only.
func run(fn ag.AutoGradFunction) mat.Tensor {
	y := forward(fn)
	for _, op := range fn.Operands() {
		if op != nil && op.RequiresGrad() {
			return ag.NewOperator(forwardDone{fn, y}).Run()
		}
	}
	return y
}

// node executes the operation fn as run does, but always as a graph node
// (MatMul and Linear).
func node(fn ag.AutoGradFunction) mat.Tensor {
	return ag.NewOperator(forwardDone{fn, forward(fn)}).Run()
}

// forward runs fn's Forward and returns its result, or panics with its
// error.
func forward(fn ag.AutoGradFunction) mat.Tensor {
	y, err := fn.Forward()
	if err != nil {
		panic(err.Error())
	}
	return y
}

// forwardDone is an operation whose Forward has run already, with result
// y: spago's Operator.Run calls Forward, which now returns y (spago would
// turn a Forward error into log.Fatalf; forward has dealt with it).
// Operands and Backward are the operation's own.
type forwardDone struct {
	ag.AutoGradFunction
	y mat.Tensor
}

// Forward returns the result computed before.
func (f forwardDone) Forward() (mat.Tensor, error) { return f.y, nil }

// output remembers an operation's result, so that its Backward can drop
// the result's gradient once it has used it (releaseGrad). spago keeps
// every node's gradient until the whole graph is garbage; dropping them as
// the backward pass goes, and recycling their buffers for the gradients
// still to come, lowers the peak memory of a training step. (By the time a
// node's Backward runs, every consumer of its result has delivered its
// gradient, so nothing reads it any more. The result's value itself is
// kept: consumers may still be reading it, and callers may read it after
// the backward pass.)
type output struct {
	y *mat.Dense[float32]
	// passedOn is set when Backward handed the gradient buffer itself on
	// to an operand (Add): it then belongs to that operand.
	passedOn bool
}

// keep records y as the result and returns it.
func (o *output) keep(y *mat.Dense[float32]) *mat.Dense[float32] {
	o.y = y
	return y
}

// releaseGrad drops the result's gradient and recycles its buffer, unless
// it was passed on. Every gradient buffer is exclusively its node's: spago
// clones the first gradient it receives, and kernels hand over buffers
// they allocated for the purpose (ownedDense).
func (o *output) releaseGrad() {
	switch {
	case o.y == nil:
	case o.passedOn:
		o.y.ZeroGrad()
	default:
		ReleaseGrad(o.y)
	}
}

// ReleaseGrad drops t's gradient, as t.ZeroGrad does, and gives its buffer
// back to the free lists when it came from them: the LM head's weight
// gradient (vocabulary × hidden values, 154 MB for GPT-2) is such a
// buffer. The next training step then takes the same buffer again instead
// of allocating a new one, which Go would zero and the kernel would fault
// in page by page on one core. Any other buffer is kept only as the free
// lists keep every returned one (of a size class, and no more of its class
// than were ever out at once; see freeClass), else left to the garbage
// collector as before. The caller must not use the gradient afterwards.
func ReleaseGrad(t mat.Tensor) {
	g, _ := t.Grad().(*mat.Dense[float32])
	t.ZeroGrad()
	if g != nil {
		putF32(g.Data().F32())
	}
}

// accGrad accumulates data, shaped like t, into t's gradient. The buffer is
// handed over to spago (see ownedDense): when t has no gradient yet, data
// becomes it without a copy; otherwise it is added to t's gradient and,
// no longer referenced, goes back to the free lists. data must be a buffer
// the caller allocated for this gradient (with make or getF32) and never
// uses again.
func accGrad(t mat.Tensor, data []float32) {
	t.AccGrad(ownedDense{wrap(data, t.Shape())})
	if len(data) == 0 {
		return
	}
	// Dense.Grad does not wait for a pending backward pass (Operator.Grad
	// would): t's gradient is either data or the earlier buffer it was
	// added to, and no later AccGrad can change which.
	if g, ok := t.Value().(*mat.Dense[float32]); ok {
		if gd, ok := g.Grad().(*mat.Dense[float32]); ok && gd != nil {
			if cur := gd.Data().F32(); len(cur) > 0 && &cur[0] != &data[0] {
				putF32(data)
			}
		}
	}
}

// ownedDense is a gradient whose buffer is handed over to spago: spago's
// AccGrad clones the first gradient it receives (an allocation and a copy
// of the whole matrix); Clone here returns the matrix itself, so the buffer
// becomes the operand's gradient as is. Only buffers the kernel allocated
// for this purpose and never touches again may be handed over.
type ownedDense struct{ *mat.Dense[float32] }

// Clone returns the wrapped matrix without copying.
func (o ownedDense) Clone() mat.Matrix { return o.Dense }
