package kernels

// The previous pure-Go gemm, kept as the baseline of the benchmarks
// (BenchmarkGemm's "legacy", bench/gemm.sh).

// gemmLegacy is the previous pure-Go gemm (dot-product and axpy loops over
// panels transposed as needed), kept as the baseline of the benchmarks.
func gemmLegacy(transA, transB bool, m, n, k int, a, b, c []float32, accumulate bool) {
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
