package model

import (
	"fmt"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
)

// Activation checkpointing: with it on (SetActivationCheckpointing), a
// forward pass that builds a graph keeps only each block's input, not the
// activations inside the block; the block's backward pass runs its forward
// again, from a copy of that input, with a graph, and back-propagates
// through it. A training step then holds the activations of one block at a
// time (plus one [T, hidden] matrix per layer) at the price of a second
// forward pass of every block.
//
// The gradients are those of the plain graph, to the bit: the recomputed
// forward pass is the same deterministic computation, every weight of a
// block is used once inside it, and the block input's gradient is the same
// two-term sum (the residual and the sub-layer) handed on as one.

// SetActivationCheckpointing turns activation checkpointing on or off for
// the forward passes that follow (training; inference builds no graph and
// is unaffected).
func (m *Model) SetActivationCheckpointing(on bool) { m.checkpointing = on }

// ActivationCheckpointing reports whether activation checkpointing is on.
func (m *Model) ActivationCheckpointing() bool { return m.checkpointing }

// checkpointed returns f(x), a block of layer l, as one graph node that
// recomputes f in its backward pass (see above), or f(x) itself when
// checkpointing is off or nothing in it needs a gradient.
func (m *Model) checkpointed(l int, x mat.Tensor, f func(mat.Tensor) mat.Tensor) mat.Tensor {
	if !m.checkpointing {
		return f(x)
	}
	fn := &checkpointFn{x: x, f: f}
	for _, p := range m.params {
		if p.Layer == l && p.RequiresGrad() {
			fn.params = append(fn.params, p.Param)
		}
	}
	if len(fn.params) == 0 && !x.RequiresGrad() {
		return f(x)
	}
	return ag.NewOperator(fn).Run()
}

// checkpointFn is a block computed without keeping its activations.
type checkpointFn struct {
	x      mat.Tensor
	params []mat.Tensor // the block's weights that require a gradient
	f      func(mat.Tensor) mat.Tensor
}

// Operands are the input and the block's trainable weights, so the node
// requires a gradient when any of them does.
func (c *checkpointFn) Operands() []mat.Tensor { return append([]mat.Tensor{c.x}, c.params...) }

// Forward computes the block from a detached copy of the input: the graph
// it builds is dropped with it.
func (c *checkpointFn) Forward() (mat.Tensor, error) {
	// The result's matrix becomes this node's value: the graph that made
	// it is garbage once Forward returns.
	return c.f(detach(c.x, false)).Value(), nil
}

// Backward recomputes the block with a graph and back-propagates gy
// through it: the weights get their gradients, and the input its own.
func (c *checkpointFn) Backward(gy mat.Tensor) error {
	in := detach(c.x, c.x.RequiresGrad())
	y := c.f(in)
	if _, ok := y.(*ag.Operator); !ok {
		return nil
	}
	y.AccGrad(gy)
	if err := ag.Backward(y); err != nil {
		return fmt.Errorf("activation checkpointing: %w", err)
	}
	if c.x.RequiresGrad() && in.HasGrad() {
		c.x.AccGrad(in.Grad())
	}
	return nil
}

// detach returns a new leaf holding x's values (shared, read-only).
func detach(x mat.Tensor, grad bool) *mat.Dense[float32] {
	v := x.Value().(*mat.Dense[float32])
	s := v.Shape()
	d := mat.NewDense[float32](mat.WithShape(s[0], s[1]), mat.WithBacking(v.Data().F32()))
	d.SetRequiresGrad(grad)
	return d
}
