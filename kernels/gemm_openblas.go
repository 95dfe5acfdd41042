//go:build openblas && cgo

package kernels

// With the build tag openblas (and cgo), gemm is backed by OpenBLAS's
// cblas_sgemm (Debian: apt-get install libopenblas-dev) through package
// kernels/internal/openblas. The default build does not use cgo.

import "github.com/ssmax/ssmax/kernels/internal/openblas"

// haveOpenBLAS reports whether gemm is backed by OpenBLAS.
const haveOpenBLAS = true

// openblasGemm is gemmBias on top of cblas_sgemm. The bias is written into
// (or added to) C first, then the product is accumulated into it.
func openblasGemm(transA, transB bool, m, n, k int, a, b, bias, c []float32, accumulate bool) {
	if k <= 0 {
		gemmNoDepth(m, n, bias, c, accumulate)
		return
	}
	var beta float32
	if accumulate {
		beta = 1
	}
	if bias != nil {
		gemmNoDepth(m, n, bias, c, accumulate)
		beta = 1
	}
	openblas.Sgemm(transA, transB, m, n, k, a, b, c, beta)
}
