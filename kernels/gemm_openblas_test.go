//go:build openblas && cgo

package kernels

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/ssmax/ssmax/internal/cputime"

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

// BenchmarkGemmPaired runs ours and OpenBLAS's cblas_sgemm alternately on
// the same operands, one call each per iteration (which goes first
// alternates), and reports the median over iterations of each one's GFLOP
// per CPU-second of the process times GOMAXPROCS and of their per-pair
// ratio ("ours/openblas"). Drift of the machine's speed (other tenants,
// frequency) then hits both alike, so differences of a few percent can be
// told apart, which separate benchmarks on a shared VM cannot. After every
// OpenBLAS call the benchmark sleeps (untimed) until OpenBLAS's idle
// threads have stopped spinning, so their spinning is not charged to the
// next call; the time to wake them is charged to OpenBLAS's own, which is
// why products under a GFLOP (where waking would weigh) are left to
// BenchmarkGemmOpenBLAS.
func BenchmarkGemmPaired(b *testing.B) {
	for _, s := range gemmBenchShapes {
		if 2*s.m*s.n*s.k < 1e9 {
			continue
		}
		for _, v := range gemmBenchVariants {
			b.Run(fmt.Sprintf("%dx%dx%d/%s", s.m, s.k, s.n, v.name), func(b *testing.B) {
				r := newRand(1)
				a, w := randn(r, s.m*s.k, 1), randn(r, s.k*s.n, 1)
				c := make([]float32, s.m*s.n)
				impls := [2]func(){
					func() { gemmWith(gemmActive, v.transA, v.transB, s.m, s.n, s.k, a, w, nil, c, false) },
					func() { openblas.Sgemm(v.transA, v.transB, s.m, s.n, s.k, a, w, c, 0) },
				}
				flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(runtime.GOMAXPROCS(0))
				var rates [2][]float64
				var ratios []float64
				call := func(i int) float64 {
					cpu0 := cputime.Process()
					impls[i]()
					cpu := cputime.Process() - cpu0
					if i == 1 {
						time.Sleep(openblasParkDelay)
					}
					return flops / cpu.Seconds() / 1e9
				}
				for i := range impls { // warm up both (page faults, thread start)
					call(i)
				}
				b.ResetTimer()
				for it := 0; it < b.N; it++ {
					var g [2]float64
					first := it % 2
					g[first] = call(first)
					g[1-first] = call(1 - first)
					rates[0], rates[1] = append(rates[0], g[0]), append(rates[1], g[1])
					ratios = append(ratios, g[0]/g[1])
				}
				if !cputime.Measured {
					return
				}
				b.ReportMetric(median(rates[0]), "ours-GFLOP/cpu-s*P")
				b.ReportMetric(median(rates[1]), "openblas-GFLOP/cpu-s*P")
				b.ReportMetric(median(ratios), "ours/openblas")
			})
		}
	}
}

// openblasParkDelay is how long OpenBLAS's worker threads keep spinning
// after a call before they sleep (about 2^28 cycles by default), with a
// margin.
const openblasParkDelay = 300 * time.Millisecond

// median returns the median of xs (which it sorts).
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
