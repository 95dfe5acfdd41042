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
// of a batch — or, MatMul and Linear aside, none at all when no operand
// requires a gradient (see Memory). A spago node costs microseconds, so operations are never
// expressed per element or per row.
//
// The arithmetic of each operation lives in an unexported function over plain
// []float32 slices (gemm, attentionForward, rmsNormForward, ...). Those
// functions are the seam where optimised kernels (assembly GEMM, fused
// attention) are swapped in without touching the exported API.
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
// Compute is float32. Matrix products (gemm) accumulate in float32, and so
// do the products inside Attention (logits Q·Kᵀ, P·V and the backward
// products). Statistics whose cost is negligible next to the surrounding
// work accumulate in float64: norm statistics, softmax and log-sum-exp sums
// (attention, cross-entropy), bias/gain gradients, the s/b gradients of
// Attention. Exponentials (softmax, the sigmoid of SiLU and the tanh GELUs)
// use fexp, a table-driven exponential with a relative error below 1e-10;
// the exact GELU uses math.Erfc. Element-wise activations compute in
// float64 and round their results to float32.
//
// # Fused operations
//
// Besides the one-operation-per-function kernels, some operations fuse what
// a model would otherwise build from several nodes: AttentionQKV takes a
// fused q/k/v projection (GPT-2's c_attn, Phi-3's qkv_proj with
// grouped-query widths) and AttentionConfig.RoPE applies rotary positions
// (RoPEWith: partial rotation, given frequencies, attention factor) inside
// the attention (no Columns, RoPE nodes or copies); AttentionConfig also
// carries the sliding window, the logit scale and the logit soft cap;
// LinearCrossEntropy is the LM head and the mean cross-entropy together,
// computing the logits a block of rows at a time and their gradient during
// the forward pass, so the [tokens, vocab] logits are never held
// (LinearCrossEntropySoftcap caps the logits on the way);
// LinearNLL (LinearNLLSoftcap) is its per-token form for evaluation. Each
// gives the same values as the composition it replaces (up to float32
// rounding; for AttentionQKV with RoPE, bit for bit).
//
// # Parallelism and determinism
//
// Every kernel is parallel over the available cores with a fixed work
// partition and a fixed order of every floating-point sum, so results are
// bit-identical from run to run and do not depend on how goroutines are
// scheduled. Attention's forward pass splits work over (head, block of 64
// query rows); its backward pass over (segment, kv head), which is the only
// writer of its rows of dk and dv, with key blocks and query blocks visited
// in a fixed order.
//
// # Memory
//
// Attention is blockwise (flash-attention style, with an online softmax
// across key chunks): memory O(T·HeadDim), no [T,T] matrix; with a sliding
// window W it visits only the key blocks within the window, so its cost is
// O(T·W·HeadDim) rather than O(T²·HeadDim). Temporary
// buffers come from free lists shared by the kernels (getF32/putF32) and
// are reused from step to step. Gradients are handed to spago without the
// copy its AccGrad makes of a first gradient (ownedDense), and a node's
// gradient is dropped, and its buffer reused, once its Backward has used
// it (output.releaseGrad).
//
// Frozen weights may be kept in their stored dtype (Weight: BF16, F16 or
// F32 values, not copied): Linear, LinearCrossEntropy, HeadNLL and
// Embedding accept one where they take a weight. The GEMM converts a 16-bit
// B operand to float32 as it packs B's panels (the products with few rows
// that read B in place take the packed path for it), so the micro-kernels,
// the accumulation and the results are those of the decoded float32
// matrix; the float32 path is unchanged.
//
// When no operand of an operation requires a gradient (inference with
// frozen weights, see model.Model.SetRequiresGrad), the operation does not
// become a graph node: it computes its result directly and keeps no
// reference to its operands, so a forward pass holds a few activations at a
// time rather than all of them.
//
// # Errors
//
// The exported operations return no error: an operand of the wrong type or
// shape panics, with a message naming the operation and the shapes
// involved ("kernels.Attention: q is [3,7], ..."), whether or not the
// operation becomes a graph node (each Forward runs before spago sees the
// node, so spago v1.1.0's log.Fatalf on a Forward error is never reached).
// Callers that handle untrusted shapes (for example checkpoint configs)
// should validate them first, for instance with AttentionConfig.Validate.
// A Backward error (an output gradient of the wrong size, which spago does
// not produce) is still turned into log.Fatalf by spago's backward pass.
// AttendCached and LinearNLL, which work on plain slices, panic likewise.
package kernels
