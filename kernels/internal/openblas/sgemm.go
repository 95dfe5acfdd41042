//go:build openblas && cgo

package openblas

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

// Sgemm computes C = op(A)·op(B) + beta·C with cblas_sgemm, all matrices
// row-major and contiguous: A is [m,k] ([k,m] if transA), B is [k,n] ([n,k]
// if transB), C is [m,n]. m, n and k must be positive.
func Sgemm(transA, transB bool, m, n, k int, a, b, c []float32, beta float32) {
	a, b, c = a[:m*k], b[:k*n], c[:m*n]
	ta, lda := uint32(C.CblasNoTrans), k
	if transA {
		ta, lda = C.CblasTrans, m
	}
	tb, ldb := uint32(C.CblasNoTrans), n
	if transB {
		tb, ldb = C.CblasTrans, k
	}
	C.cblas_sgemm(C.CblasRowMajor, ta, tb, C.blasint(m), C.blasint(n), C.blasint(k),
		1, (*C.float)(&a[0]), C.blasint(lda), (*C.float)(&b[0]), C.blasint(ldb),
		C.float(beta), (*C.float)(&c[0]), C.blasint(n))
}
