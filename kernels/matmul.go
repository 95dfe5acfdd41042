package kernels

import (
	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
)

// MatMul returns op(a)·op(b), where op transposes its argument when the
// corresponding flag is set. a is [m,k] ([k,m] when transA); b is [k,n]
// ([n,k] when transB). The result is [m,n].
func MatMul(a, b mat.Tensor, transA, transB bool) mat.Tensor {
	return ag.NewOperator(&matMulFn{a: a, b: b, transA: transA, transB: transB}).Run()
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
		return nil, shapeError("MatMul", "inner dimensions differ: a is [%d,%d] (transA=%v), b is [%d,%d] (transB=%v)", ar, ac, f.transA, br, bc, f.transB)
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
		return shapeError("MatMul", "output gradient has %d values, want %d", len(g), m*n)
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
// otherwise it holds out values (a 1×out or out×1 matrix).
func Linear(x, w, bias mat.Tensor, inOut bool) mat.Tensor {
	return ag.NewOperator(&linearFn{x: x, w: w, bias: bias, inOut: inOut}).Run()
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
	w, wr, wc, err := dense("Linear", "w", f.w)
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
		return nil, shapeError("Linear", "x is [%d,%d] but w is [%d,%d] stored %s (in=%d)", rows, in, wr, wc, layout, win)
	}
	f.rows, f.in, f.out = rows, in, wout
	y := newMatrix(rows, wout)
	yd := y.Data().F32()
	acc := false
	if f.bias != nil {
		bias, err := vector("Linear", "bias", f.bias, wout)
		if err != nil {
			return nil, err
		}
		for t := 0; t < rows; t++ {
			copy(yd[t*wout:(t+1)*wout], bias)
		}
		acc = true
	}
	gemm(false, !f.inOut, rows, wout, in, x, w, yd, acc)
	return y, nil
}

func (f *linearFn) Backward(gy mat.Tensor) error {
	g := gradData(gy)
	rows, in, out := f.rows, f.in, f.out
	if len(g) != rows*out {
		return shapeError("Linear", "output gradient has %d values, want %d", len(g), rows*out)
	}
	x, _, _, _ := dense("Linear", "x", f.x)
	w, _, _, _ := dense("Linear", "w", f.w)
	if f.x.RequiresGrad() {
		dx := make([]float32, rows*in)
		// dx = gy·W for W [out,in]; gy·Wᵀ for W [in,out].
		gemm(false, f.inOut, rows, in, out, g, w, dx, false)
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

// columnSums returns the float64-accumulated column sums of g [rows, cols].
func columnSums(g []float32, rows, cols int) []float32 {
	acc := make([]float64, cols)
	for t := 0; t < rows; t++ {
		r := g[t*cols : (t+1)*cols]
		for j, v := range r {
			acc[j] += float64(v)
		}
	}
	out := make([]float32, cols)
	for j, v := range acc {
		out[j] = float32(v)
	}
	return out
}

// gemm computes C = op(A)·op(B), or C += op(A)·op(B) when accumulate is set.
// C is [m,n] row-major and contiguous. A is stored [m,k] ([k,m] if transA),
// B is stored [k,n] ([n,k] if transB), both contiguous row-major.
// Accumulation is in float32. This is the single entry point for matrix
// products in the package, to be replaced by an optimised kernel.
//
// Strategy: every element of C is a dot product of a row of op(A) and a
// column of op(B). When both are contiguous (transB without transA) the dot
// kernel runs directly on the operands. Otherwise blocks of kBlock columns
// of op(A) and op(B) are packed, transposed as needed, into contiguous
// panels first (O((m+n)·k) copies against O(m·n·k) work). With few rows
// and no transB, an axpy kernel avoids packing a large B for tiny outputs
// (decoding).
func gemm(transA, transB bool, m, n, k int, a, b, c []float32, accumulate bool) {
	if m == 0 || n == 0 {
		return
	}
	c = c[:m*n]
	if !accumulate {
		clear(c)
	}
	if k == 0 {
		return
	}
	a = a[:m*k]
	b = b[:k*n]
	if !transA && transB {
		gemmParallel(m, n, k, func(i0, i1, j0, j1 int) { gemmNT(i0, i1, j0, j1, k, a, k, b, k, c, n) })
		return
	}
	if !transB && m < packMinRows {
		sai, sap := k, 1
		if transA {
			sai, sap = 1, m
		}
		gemmParallel(m, n, k, func(i0, i1, j0, j1 int) { gemmNN(i0, i1, j0, j1, k, a, sai, sap, b, c, n) })
		return
	}
	var at, bt []float32
	if transA {
		at = make([]float32, m*min(k, kBlock))
	}
	if !transB {
		bt = make([]float32, n*min(k, kBlock))
	}
	for p0 := 0; p0 < k; p0 += kBlock {
		kb := min(kBlock, k-p0)
		ap, lda := a[p0:], k
		if transA { // at[i, q] = A[p0+q, i]
			ap, lda = at, kb
			packTranspose(at, a, m, p0, kb)
		}
		bp, ldb := b[p0:], k
		if !transB { // bt[j, q] = B[p0+q, j]
			bp, ldb = bt, kb
			packTranspose(bt, b, n, p0, kb)
		}
		gemmParallel(m, n, kb, func(i0, i1, j0, j1 int) { gemmNT(i0, i1, j0, j1, kb, ap, lda, bp, ldb, c, n) })
	}
}

const (
	kBlock      = 512 // depth of a packed panel
	packMinRows = 16  // below this many rows, !transB products use the axpy kernel
)

// packTranspose sets dst[i*kb+q] = src[(p0+q)*width+i] for i < width, q < kb.
func packTranspose(dst, src []float32, width, p0, kb int) {
	parallelFor(width, max(1, (1<<14)/kb), func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			d := dst[i*kb : (i+1)*kb]
			for q := range d {
				d[q] = src[(p0+q)*width+i]
			}
		}
	})
}

// gemmParallel runs kernel(i0, i1, j0, j1) over a partition of the [m,n]
// output: by rows when there are enough, by columns otherwise (decoding),
// serially for small products.
func gemmParallel(m, n, k int, kernel func(i0, i1, j0, j1 int)) {
	const minWork = 1 << 16 // multiply-adds per goroutine
	if m*n*k < 2*minWork {
		kernel(0, m, 0, n)
		return
	}
	if w := numWorkers(m, 4); w > 1 {
		parallelFor(m, (m+w-1)/w, func(_, lo, hi int) { kernel(lo, hi, 0, n) })
		return
	}
	parallelFor(n, 16, func(_, lo, hi int) { kernel(0, m, lo, hi) })
}

// gemmNN accumulates C[i0:i1, j0:j1] += Ã[i0:i1, :]·B[:, j0:j1] where
// Ã[i,p] = a[i*sai+p*sap] and B is row-major [k, ldc] (same width as C).
func gemmNN(i0, i1, j0, j1, k int, a []float32, sai, sap int, b, c []float32, ldc int) {
	ldb := ldc
	for i := i0; i < i1; i++ {
		cr := c[i*ldc+j0 : i*ldc+j1]
		for p := 0; p < k; p++ {
			av := a[i*sai+p*sap]
			br := b[p*ldb+j0 : p*ldb+j1][:len(cr)]
			for j, bv := range br {
				cr[j] += av * bv
			}
		}
	}
}

// gemmNT accumulates C[i0:i1, j0:j1] += Σ_{p<k} a[i*lda+p]·b[j*ldb+p]:
// every element is a dot product of two contiguous rows.
func gemmNT(i0, i1, j0, j1, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	const jc = 64 // rows of b per block, to keep them cache resident
	for jb := j0; jb < j1; jb += jc {
		je := min(jb+jc, j1)
		for i := i0; i < i1; i++ {
			ar := a[i*lda : i*lda+k]
			cr := c[i*ldc : i*ldc+ldc]
			j := jb
			for ; j+4 <= je; j += 4 {
				b0 := b[j*ldb : j*ldb+k][:len(ar)]
				b1 := b[(j+1)*ldb : (j+1)*ldb+k][:len(ar)]
				b2 := b[(j+2)*ldb : (j+2)*ldb+k][:len(ar)]
				b3 := b[(j+3)*ldb : (j+3)*ldb+k][:len(ar)]
				var s0, s1, s2, s3 float32
				for p, av := range ar {
					s0 += av * b0[p]
					s1 += av * b1[p]
					s2 += av * b2[p]
					s3 += av * b3[p]
				}
				cr[j] += s0
				cr[j+1] += s1
				cr[j+2] += s2
				cr[j+3] += s3
			}
			for ; j < je; j++ {
				br := b[j*ldb : j*ldb+k][:len(ar)]
				var s float32
				for p, av := range ar {
					s += av * br[p]
				}
				cr[j] += s
			}
		}
	}
}
