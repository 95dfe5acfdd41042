package kernels

import "github.com/nlpodyssey/spago/mat"

// MatMul returns op(a)·op(b), where op transposes its argument when the
// corresponding flag is set. a is [m,k] ([k,m] when transA); b is [k,n]
// ([n,k] when transB). The result is [m,n].
func MatMul(a, b mat.Tensor, transA, transB bool) mat.Tensor {
	return node(&matMulFn{a: a, b: b, transA: transA, transB: transB})
}

type matMulFn struct {
	a, b           mat.Tensor
	transA, transB bool
	m, n, k        int
}

func (f *matMulFn) Operands() []mat.Tensor { return []mat.Tensor{f.a, f.b} }

func (f *matMulFn) Forward() (mat.Tensor, error) {
	a, ar, ac, err := dense("MatMul", "a", f.a)
	if err != nil {
		return nil, err
	}
	b, br, bc, err := dense("MatMul", "b", f.b)
	if err != nil {
		return nil, err
	}
	m, ka := ar, ac
	if f.transA {
		m, ka = ac, ar
	}
	kb, n := br, bc
	if f.transB {
		kb, n = bc, br
	}
	if ka != kb {
		return nil, opError("MatMul", "inner dimensions differ: a is [%d,%d] (transA=%v), b is [%d,%d] (transB=%v)", ar, ac, f.transA, br, bc, f.transB)
	}
	f.m, f.n, f.k = m, n, ka
	out := newMatrix(m, n)
	gemm(f.transA, f.transB, m, n, ka, a, b, out.Data().F32(), false)
	return out, nil
}

func (f *matMulFn) Backward(gy mat.Tensor) error {
	g := gradData(gy)
	a, _, _, _ := dense("MatMul", "a", f.a)
	b, _, _, _ := dense("MatMul", "b", f.b)
	m, n, k := f.m, f.n, f.k
	if len(g) != m*n {
		return opError("MatMul", "output gradient has %d values, want %d", len(g), m*n)
	}
	if f.a.RequiresGrad() {
		da := make([]float32, m*k)
		if !f.transA {
			gemm(false, !f.transB, m, k, n, g, b, da, false) // dA = dC·op(B)ᵀ
		} else {
			gemm(f.transB, true, k, m, n, b, g, da, false) // dA = op(B)·dCᵀ
		}
		accGrad(f.a, da)
	}
	if f.b.RequiresGrad() {
		db := make([]float32, k*n)
		if !f.transB {
			gemm(!f.transA, false, k, n, m, a, g, db, false) // dB = op(A)ᵀ·dC
		} else {
			gemm(true, f.transA, n, k, m, g, a, db, false) // dB = dCᵀ·op(A)
		}
		accGrad(f.b, db)
	}
	return nil
}

// Linear returns x·Wᵀ + bias for w stored [out, in] (Hugging Face
// nn.Linear), or x·W + bias for w stored [in, out] when inOut is true
// (GPT-2 Conv1D). x is [T, in]; the result is [T, out]. bias may be nil;
// otherwise it holds out values (a 1×out or out×1 matrix). w may be a
// frozen *Weight in its stored dtype (converted as the GEMM packs it).
func Linear(x, w, bias mat.Tensor, inOut bool) mat.Tensor {
	return node(&linearFn{x: x, w: w, bias: bias, inOut: inOut})
}

type linearFn struct {
	x, w, bias    mat.Tensor
	inOut         bool
	rows, in, out int
}

func (f *linearFn) Operands() []mat.Tensor {
	if f.bias == nil {
		return []mat.Tensor{f.x, f.w}
	}
	return []mat.Tensor{f.x, f.w, f.bias}
}

func (f *linearFn) Forward() (mat.Tensor, error) {
	x, rows, in, err := dense("Linear", "x", f.x)
	if err != nil {
		return nil, err
	}
	w, wr, wc, err := weightOperand("Linear", "w", f.w)
	if err != nil {
		return nil, err
	}
	win, wout := wc, wr
	if f.inOut {
		win, wout = wr, wc
	}
	if win != in {
		layout := "[out,in]"
		if f.inOut {
			layout = "[in,out]"
		}
		return nil, opError("Linear", "x is [%d,%d] but w is [%d,%d] stored %s (in=%d)", rows, in, wr, wc, layout, win)
	}
	f.rows, f.in, f.out = rows, in, wout
	var bias []float32
	if f.bias != nil {
		if bias, err = vector("Linear", "bias", f.bias, wout); err != nil {
			return nil, err
		}
	}
	y := newMatrix(rows, wout)
	// The bias is added by the GEMM micro-kernel as it writes y.
	gemmBiasOp(false, !f.inOut, rows, wout, in, x, w, bias, y.Data().F32(), false)
	return y, nil
}

func (f *linearFn) Backward(gy mat.Tensor) error {
	g := gradData(gy)
	rows, in, out := f.rows, f.in, f.out
	if len(g) != rows*out {
		return opError("Linear", "output gradient has %d values, want %d", len(g), rows*out)
	}
	x, _, _, _ := dense("Linear", "x", f.x)
	if f.x.RequiresGrad() {
		w, _, _, _ := weightOperand("Linear", "w", f.w)
		// From the free lists, not zeroed: the product overwrites it, and
		// the node that receives it gives it back once used (releaseGrad).
		dx := getF32(rows * in)
		// dx = gy·W for W [out,in]; gy·Wᵀ for W [in,out].
		gemmOp(false, f.inOut, rows, in, out, g, w, dx, false)
		accGrad(f.x, dx)
	}
	if f.w.RequiresGrad() {
		dw := make([]float32, in*out)
		if f.inOut {
			gemm(true, false, in, out, rows, x, g, dw, false) // xᵀ·gy
		} else {
			gemm(true, false, out, in, rows, g, x, dw, false) // gyᵀ·x
		}
		accGrad(f.w, dw)
	}
	if f.bias != nil && f.bias.RequiresGrad() {
		accGrad(f.bias, columnSums(g, rows, out))
	}
	return nil
}

// columnSums returns the float64-accumulated column sums of g [rows, cols]
// (a bias gradient). Blocks of columns are summed concurrently, each column
// over the rows in order, so the result does not depend on the number of
// workers.
func columnSums(g []float32, rows, cols int) []float32 {
	out := make([]float32, cols)
	minCols := max(64, (1<<16)/max(rows, 1)) // at least 64K values per worker
	parallelFor(cols, minCols, func(_, lo, hi int) {
		acc := make([]float64, hi-lo)
		for t := 0; t < rows; t++ {
			r := g[t*cols+lo : t*cols+hi]
			for j, v := range r {
				acc[j] += float64(v)
			}
		}
		for j, v := range acc {
			out[lo+j] = float32(v)
		}
	})
	return out
}

// gemm computes C = op(A)·op(B), or C += op(A)·op(B) when accumulate is set.
// C is [m,n] row-major and contiguous. A is stored [m,k] ([k,m] if transA),
// B is stored [k,n] ([n,k] if transB), both contiguous row-major.
// Accumulation is in float32. This is the single entry point for matrix
// products in the package (gemmBias adds a bias row on the way).
//
// The work is done by the blocked algorithm of gemm.go: packed panels and an
// assembly micro-kernel (AVX-512 or AVX2+FMA, chosen at run time), or a
// portable Go micro-kernel on other CPUs and when SSMAX_NOASM=1.
func gemm(transA, transB bool, m, n, k int, a, b, c []float32, accumulate bool) {
	gemmBias(transA, transB, m, n, k, a, b, nil, c, accumulate)
}
