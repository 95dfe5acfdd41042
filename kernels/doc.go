// Package kernels implements the numerical operations of the ssmax
// transformer engine as coarse-grained spago autograd operations.
//
// # Role
//
// spago (github.com/nlpodyssey/spago) remains the autograd engine: it owns the
// graph, the backward pass, parameters and optimizers. Every exported
// operation of this package builds exactly one spago graph node
// (an ag.Operator wrapping a small ag.AutoGradFunction) that computes a whole
// matrix product, a whole normalisation, or the whole multi-head attention
// of a batch. A spago node costs microseconds, so operations are never
// expressed per element or per row.
//
// The arithmetic of each operation lives in an unexported function over plain
// []float32 slices (gemm, attentionForward, rmsNormForward, ...). Those
// functions are the seam where optimised kernels (assembly GEMM, fused
// attention) can be swapped in without touching the exported API.
//
// # Layouts
//
// All tensors are *mat.Dense[float32] values in row-major order. Activations
// are matrices [T, features] where T is the number of token rows. A batch of
// B sequences is packed as consecutive rows; sequence/document boundaries
// are given to Attention as segment start rows (AttentionConfig.Segments).
//
// Multi-head tensors keep the heads side by side inside a row: the query of
// token t for head h is row t, columns [h*HeadDim, (h+1)*HeadDim). Keys and
// values use KVHeads instead of Heads; query head h reads kv head
// h/(Heads/KVHeads) (grouped-query and multi-query attention).
//
// Weight matrices follow the checkpoint that provides them: Linear accepts
// Hugging Face nn.Linear weights stored [out, in] and GPT-2 Conv1D weights
// stored [in, out]. Vectors (biases, norm gains, per-head SSMax parameters)
// may be given as 1×n or n×1 matrices; gradients are accumulated with the
// operand's own shape.
//
// # Precision
//
// Compute is float32. Reductions whose cost is negligible next to the
// surrounding work accumulate in float64: norm statistics, attention
// dot products and softmax sums, cross-entropy sums, bias/gain gradients.
// Matrix products accumulate in float32.
//
// # Autograd conventions
//
// Operations run synchronously (Operator.Run without async): each one is
// already parallel over the available cores (goroutines over rows or heads),
// so overlapping independent operations would only oversubscribe the CPU.
//
// Backward accumulates gradients with AccGrad into every operand that
// RequiresGrad, exactly once per operand slot, which is what spago's
// pending-gradient counting requires (an operand passed twice receives two
// AccGrad calls). Optional operands that are nil, or unused by the selected
// attention mode, are not reported by Operands at all.
//
// Shape errors are returned from Forward with a message naming the operation
// and the shapes involved. Note that spago v1.1.0 turns any Forward or
// Backward error into log.Fatalf, so callers that handle untrusted shapes
// (for example checkpoint configs) should validate them first, for instance
// with AttentionConfig.Validate.
package kernels
