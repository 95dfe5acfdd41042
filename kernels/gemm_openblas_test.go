//go:build openblas && cgo

package kernels

import (
	"fmt"
	"testing"

	"github.com/ssmax/ssmax/kernels/internal/openblas"
)

// BenchmarkGemmOpenBLAS runs cblas_sgemm on the shapes of BenchmarkGemm,
// for comparison in the same run (go test -tags openblas -bench Gemm).
func BenchmarkGemmOpenBLAS(b *testing.B) {
	for _, s := range gemmBenchShapes {
		for _, v := range gemmBenchVariants {
			b.Run(fmt.Sprintf("impl=openblas/%dx%dx%d/%s", s.m, s.k, s.n, v.name), func(b *testing.B) {
				benchGemm(b, s.m, s.k, s.n, func(a, w, c []float32) {
					openblas.Sgemm(v.transA, v.transB, s.m, s.n, s.k, a, w, c, 0)
				})
			})
		}
	}
}

// TestGemmOpenBLAS checks the OpenBLAS backend against the native kernel.
func TestGemmOpenBLAS(t *testing.T) {
	r := newRand(5)
	for i, c := range gemmCases(r, 12) {
		if c.m == 0 || c.n == 0 {
			continue
		}
		a, b := randn(r, c.m*c.k, 1), randn(r, c.k*c.n, 1)
		var bias []float32
		if c.bias {
			bias = randn(r, c.n, 1)
		}
		init := randn(r, c.m*c.n, 1)
		got := append([]float32(nil), init...)
		want := append([]float32(nil), init...)
		gemmBias(c.transA, c.transB, c.m, c.n, c.k, a, b, bias, got, c.accumulate)
		gemmWith(goKernel, c.transA, c.transB, c.m, c.n, c.k, a, b, bias, want, c.accumulate)
		ref := make([]float64, len(want))
		for j, v := range want {
			ref[j] = float64(v)
		}
		if e := relErr(got, ref, 1e-6); e > 1e-4 {
			t.Errorf("case %d %v: relative error %g", i, c, e)
		}
	}
}
