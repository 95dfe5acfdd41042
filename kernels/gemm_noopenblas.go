//go:build !openblas || !cgo

package kernels

// haveOpenBLAS reports whether gemm is backed by OpenBLAS (build tag
// openblas with cgo; see gemm_openblas.go).
const haveOpenBLAS = false

func openblasGemm(transA, transB bool, m, n, k int, a, b, bias, c []float32, accumulate bool) {
	panic("kernels: built without OpenBLAS")
}
