package kernels

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/internal/cputime"
)

var gemmSlow = flag.Bool("gemm.slow", false, "benchmark the slow GEMM implementations on the LM-head shape too")

// gemmSizes are the dimensions around tile and block boundaries that the
// tests sample from.
var gemmSizes = []int{1, 2, 13, 14, 15, 31, 32, 33, 191, 192, 193, 257}

// gemmCase is one product to check.
type gemmCase struct {
	m, n, k        int
	transA, transB bool
	accumulate     bool
	bias           bool
}

func (c gemmCase) String() string {
	return fmt.Sprintf("m%d_n%d_k%d_tA%v_tB%v_acc%v_bias%v", c.m, c.n, c.k, c.transA, c.transB, c.accumulate, c.bias)
}

// gemmCases samples (m, n, k) from gemmSizes (every size appears in every
// position), adding shapes that cross the kc block and the parallel
// thresholds, and walks transpositions, accumulate and bias over them.
func gemmCases(r *rand.Rand, count int) []gemmCase {
	var dims [][3]int
	for i := 0; i < count; i++ {
		dims = append(dims, [3]int{
			gemmSizes[i%len(gemmSizes)],
			gemmSizes[r.IntN(len(gemmSizes))],
			gemmSizes[(i*7+r.IntN(3))%len(gemmSizes)],
		})
	}
	dims = append(dims,
		[3]int{0, 5, 3}, [3]int{5, 0, 3}, [3]int{7, 9, 0}, // empty
		[3]int{29, 65, 255}, [3]int{29, 65, 256}, [3]int{30, 66, 257}, [3]int{15, 33, 513}, // kc boundaries
		[3]int{1, 300, 4000}, [3]int{3, 1000, 400}, // few rows, parallel
		[3]int{300, 100, 40}, // parallel: several row blocks
		// Few rows (dot and axpy kernels): widths around 4 and 64 columns.
		[3]int{1, 1, 5}, [3]int{2, 3, 17}, [3]int{3, 5, 16}, [3]int{4, 63, 40}, [3]int{4, 65, 33},
		[3]int{1, 130, 1}, [3]int{2, 257, 31}, [3]int{1, 64, 15}, [3]int{3, 128, 200}, [3]int{5, 70, 20}, [3]int{40, 37, 600}, [3]int{64, 5, 512},
	)
	var cs []gemmCase
	for i, d := range dims {
		v := i % 4
		cs = append(cs, gemmCase{m: d[0], n: d[1], k: d[2], transA: v&1 != 0, transB: v&2 != 0,
			accumulate: i%3 == 1, bias: i%5 >= 3})
		// A second variant with the other transpositions and flags.
		v = (i + 2) % 4
		cs = append(cs, gemmCase{m: d[0], n: d[1], k: d[2], transA: v&1 != 0, transB: v&2 != 0,
			accumulate: i%3 != 1, bias: i%5 < 3})
	}
	return cs
}

// checkGemm runs one case through kern and compares it with a float64
// reference. Values past C and, when not accumulating, the initial contents
// of C (NaN) must not leak into the result.
func checkGemm(t *testing.T, kern *gemmKernel, c gemmCase, seed uint64) {
	t.Helper()
	r := newRand(seed)
	a := randn(r, c.m*c.k, 1)
	b := randn(r, c.k*c.n, 1)
	var bias []float32
	if c.bias {
		bias = randn(r, c.n, 1)
	}
	const guard = 37
	out := make([]float32, c.m*c.n+guard)
	init := randn(r, c.m*c.n, 1)
	if c.accumulate {
		copy(out, init)
	} else {
		for i := range c.m * c.n {
			out[i] = float32(math.NaN())
		}
	}
	for i := c.m * c.n; i < len(out); i++ {
		out[i] = 12345
	}
	gemmWith(kern, c.transA, c.transB, c.m, c.n, c.k, a, b, bias, out[:c.m*c.n], c.accumulate)

	tol := 1e-5 * math.Sqrt(float64(max(c.k, 1)))
	bad := 0
	for i := 0; i < c.m; i++ {
		for j := 0; j < c.n; j++ {
			want, scale := 0.0, 0.0
			for p := 0; p < c.k; p++ {
				av := a[i*c.k+p]
				if c.transA {
					av = a[p*c.m+i]
				}
				bv := b[p*c.n+j]
				if c.transB {
					bv = b[j*c.k+p]
				}
				x := float64(av) * float64(bv)
				want += x
				scale += math.Abs(x)
			}
			if c.accumulate {
				want += float64(init[i*c.n+j])
				scale += math.Abs(float64(init[i*c.n+j]))
			}
			if c.bias {
				want += float64(bias[j])
				scale += math.Abs(float64(bias[j]))
			}
			got := float64(out[i*c.n+j])
			if !(math.Abs(got-want) <= tol*math.Max(scale, 1e-30)) {
				if bad++; bad <= 5 {
					t.Errorf("%s %v: C[%d,%d] = %g, want %g (scale %g)", kern.name, c, i, j, got, want, scale)
				}
			}
		}
	}
	for i := c.m * c.n; i < len(out); i++ {
		if out[i] != 12345 {
			t.Fatalf("%s %v: wrote past C at %d", kern.name, c, i)
		}
	}
	if bad > 5 {
		t.Errorf("%s %v: %d wrong elements", kern.name, c, bad)
	}
}

// smallBlocks returns a copy of kern with tiny cache blocks, so that
// products of a few hundred elements cross every block boundary (several
// jc, pc and ic blocks, partial last blocks), and without the dot and axpy
// kernels, so that products with few rows take the packed path too.
func smallBlocks(kern *gemmKernel) *gemmKernel {
	k := *kern
	k.name += "-smallblocks"
	k.mc, k.kc, k.nc = 2*k.mr, 24, 3*k.nr
	k.dot, k.axpy = nil, nil
	return &k
}

// TestGemmKernels checks every micro-kernel available here (AVX-512,
// AVX2+FMA, Go), with its own blocking and with tiny blocks.
func TestGemmKernels(t *testing.T) {
	kernels := gemmKernels
	if goKernel != goKernel4x4 {
		kernels = append(kernels[:len(kernels):len(kernels)], goKernel4x4)
	}
	for _, kern := range kernels {
		for _, kk := range []*gemmKernel{kern, smallBlocks(kern)} {
			t.Run(kk.name, func(t *testing.T) {
				t.Parallel()
				r := newRand(uint64(len(kk.name)))
				for i, c := range gemmCases(r, 24) {
					checkGemm(t, kk, c, uint64(i))
				}
			})
		}
	}
}

// TestGemmKernelsAvailable makes sure the assembly kernels are exercised on
// the machines that have them.
func TestGemmKernelsAvailable(t *testing.T) {
	var names []string
	for _, k := range gemmKernels {
		names = append(names, k.name)
	}
	t.Logf("kernels: %v, active: %s", names, gemmActive.name)
	if runtime.GOARCH == "amd64" && cpuHasAVX2FMA() && len(gemmKernels) < 2 {
		t.Errorf("AVX2+FMA CPU but no assembly kernel registered")
	}
	if gemmKernels[len(gemmKernels)-1] != goKernel {
		t.Errorf("the Go kernel must be last")
	}
}

// TestGemmSelect checks the SSMAX_NOASM switch.
func TestGemmSelect(t *testing.T) {
	if k := selectGemmKernel(true); k != goKernel {
		t.Errorf("SSMAX_NOASM=1 selects %s", k.name)
	}
	if k := selectGemmKernel(false); k != gemmKernels[0] {
		t.Errorf("default selects %s, want %s", k.name, gemmKernels[0].name)
	}
}

// TestGemmWorkers checks products split over more workers than this
// machine's cores (row split and column split), by raising GOMAXPROCS.
func TestGemmWorkers(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(5))
	before := gemmParallelCalls.Load()
	defer func() {
		if gemmParallelCalls.Load() == before {
			t.Errorf("no product ran on several workers")
		}
	}()
	for _, kern := range gemmKernels {
		for i, c := range []gemmCase{
			{m: 150, n: 70, k: 200, transA: true, bias: true},       // 11 row panels over 5 workers
			{m: 3, n: 2000, k: 200, transB: true, accumulate: true}, // few rows
			{m: 2, n: 90, k: 6000},                                  // fewer column panels than workers
		} {
			checkGemm(t, smallBlocks(kern), c, uint64(i))
			checkGemm(t, kern, c, uint64(i))
		}
	}
}

// TestGemmConcurrent runs products from several goroutines at once: they
// compete for the helper goroutines and must fall back to fewer workers.
func TestGemmConcurrent(t *testing.T) {
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func(g int) {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 3; i++ {
				checkGemm(t, gemmActive, gemmCase{m: 60 + g, n: 130, k: 70, transB: g%2 == 0}, uint64(g))
			}
		}(g)
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}

// TestGemmNoGarbage checks that a warmed-up product allocates nothing.
func TestGemmNoGarbage(t *testing.T) {
	if gemmRace {
		t.Skip("sync.Pool drops objects under -race")
	}
	const m, n, k = 200, 300, 100
	r := newRand(3)
	a, b, bias := randn(r, m*k, 1), randn(r, k*n, 1), randn(r, n, 1)
	c := make([]float32, m*n)
	gemmBias(false, true, m, n, k, a, b, bias, c, false)
	allocs := testing.AllocsPerRun(20, func() { gemmBias(false, true, m, n, k, a, b, bias, c, false) })
	if allocs > 0 {
		t.Errorf("gemm allocates %.1f objects per call", allocs)
	}
}

// TestGemmLegacy keeps the benchmark baseline honest.
func TestGemmLegacy(t *testing.T) {
	r := newRand(9)
	for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
		const m, n, k = 20, 33, 600
		a, b := randn(r, m*k, 1), randn(r, k*n, 1)
		got, want := make([]float32, m*n), make([]float32, m*n)
		gemmLegacy(tr[0], tr[1], m, n, k, a, b, got, false)
		gemmWith(goKernel, tr[0], tr[1], m, n, k, a, b, nil, want, false)
		ref := make([]float64, m*n)
		for i, v := range want {
			ref[i] = float64(v)
		}
		if e := relErr(got, ref, 1e-6); e > 1e-5 {
			t.Errorf("transA=%v transB=%v: relative error %g", tr[0], tr[1], e)
		}
	}
}

// gemmBenchShapes are the products of a GPT-2-small training step
// (m×k×n: 2048 tokens; qkv, attention output, MLP down, tied LM head) and
// one attention-sized product.
var gemmBenchShapes = []struct{ m, k, n int }{
	{2048, 768, 2304}, {2048, 768, 768}, {2048, 3072, 768}, {2048, 768, 50257}, {256, 64, 256},
}

// gemmBenchVariants are the transpositions benchmarked: NN (Conv1D
// forward), NT (nn.Linear forward, x·Wᵀ) and TN (weight gradient, xᵀ·dy).
var gemmBenchVariants = []struct {
	name           string
	transA, transB bool
}{{"NN", false, false}, {"NT", false, true}, {"TN", true, false}}

// benchGemm runs f on fresh operands of shape m×k×n and reports GFLOP/s,
// and GFLOP per CPU-second of the process (all threads) times GOMAXPROCS:
// on a machine shared with other work, what the wall-clock figure would be
// if the cores were all ours (spinning and idle workers count as busy).
func benchGemm(b *testing.B, m, k, n int, f func(a, w, c []float32)) {
	r := newRand(1)
	a := randn(r, m*k, 1)
	w := randn(r, k*n, 1)
	c := make([]float32, m*n)
	f(a, w, c)
	b.ResetTimer()
	cpu0 := cputime.Process()
	for i := 0; i < b.N; i++ {
		f(a, w, c)
	}
	cpu := cputime.Process() - cpu0
	flops := 2 * float64(m) * float64(n) * float64(k) * float64(b.N)
	b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu > 0 {
		b.ReportMetric(flops/cpu.Seconds()/1e9*float64(runtime.GOMAXPROCS(0)), "GFLOP/cpu-s*P")
	}
}

// BenchmarkGemm measures gemm's native path ("ours"), every micro-kernel
// available here through the blocked driver, and the previous pure-Go gemm
// ("legacy"). Select with -bench 'Gemm/impl=ours/' for instance. The legacy
// and Go kernels are skipped on the LM-head shape unless -gemm.slow is set
// (tens of seconds per product). bench/gemm.sh tabulates the results next
// to OpenBLAS.
func BenchmarkGemm(b *testing.B) {
	type impl struct {
		name string
		f    func(tA, tB bool, m, n, k int, a, w, c []float32)
	}
	// "ours" is what gemm runs in the default build (the fastest kernel
	// here, or the Go kernel under SSMAX_NOASM=1).
	impls := []impl{{"ours", func(tA, tB bool, m, n, k int, a, w, c []float32) {
		gemmWith(gemmActive, tA, tB, m, n, k, a, w, nil, c, false)
	}}}
	for _, kern := range gemmKernels {
		impls = append(impls, impl{kern.name, func(tA, tB bool, m, n, k int, a, w, c []float32) {
			gemmWith(kern, tA, tB, m, n, k, a, w, nil, c, false)
		}})
	}
	impls = append(impls, impl{"legacy", func(tA, tB bool, m, n, k int, a, w, c []float32) {
		gemmLegacy(tA, tB, m, n, k, a, w, c, false)
	}})
	for _, im := range impls {
		for _, s := range gemmBenchShapes {
			for _, v := range gemmBenchVariants {
				b.Run(fmt.Sprintf("impl=%s/%dx%dx%d/%s", im.name, s.m, s.k, s.n, v.name), func(b *testing.B) {
					if (im.name == "legacy" || strings.HasPrefix(im.name, "go")) && s.n > 10000 && !*gemmSlow {
						b.Skip("slow; set -gemm.slow")
					}
					benchGemm(b, s.m, s.k, s.n, func(a, w, c []float32) { im.f(v.transA, v.transB, s.m, s.n, s.k, a, w, c) })
				})
			}
		}
	}
}

// BenchmarkGemmMicroKernel measures each micro-kernel alone on cache-resident
// panels (one mr×nr tile, kc steps): the ceiling of the blocked algorithm on
// one core.
func BenchmarkGemmMicroKernel(b *testing.B) {
	for _, kern := range gemmKernels {
		b.Run(kern.name, func(b *testing.B) {
			kc := kern.kc
			r := newRand(1)
			ap := alignedBuf(nil, kern.mr*kc)
			copy(ap, randn(r, len(ap), 1))
			bp := alignedBuf(nil, kern.nr*kc)
			copy(bp, randn(r, len(bp), 1))
			c := alignedBuf(nil, kern.mr*kern.nr)
			for i := 0; i < b.N; i++ {
				kern.fn(kc, &ap[0], &bp[0], &c[0], kern.nr, nil, kernAcc)
			}
			flops := 2 * float64(kern.mr*kern.nr*kc) * float64(b.N)
			b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// TestDepthBlock: k up to kc (kcWide for a C of gemmWideC values or more)
// is one block; larger k is split evenly into the fewest blocks of at most
// that depth, in multiples of 16.
func TestDepthBlock(t *testing.T) {
	kern := &gemmKernel{kc: 256, kcWide: 384}
	for _, c := range []struct{ k, size, want int }{
		{1, 1, 1}, {64, 1, 64}, {256, 1, 256}, {384, 1, 192}, {385, 1, 208}, {1376, 1, 240}, {3072, 1, 256},
		{384, gemmWideC, 384}, {768, 2048 * 50257, 384}, {1024, gemmWideC - 1, 256}, {50257, 512 * 768, 256},
	} {
		got := kern.depthBlock(c.k, c.size)
		if got != c.want {
			t.Errorf("depthBlock(%d, %d) = %d, want %d", c.k, c.size, got, c.want)
		}
		most := kern.kc
		if c.size >= gemmWideC {
			most = kern.kcWide
		}
		if blocks := (c.k + got - 1) / got; blocks != (c.k+most-1)/most {
			t.Errorf("depthBlock(%d, %d) = %d: %d blocks, want the fewest", c.k, c.size, got, blocks)
		}
	}
}

// TestGemmLateJoin: a product that starts while every helper is busy runs
// on its own goroutine, and a helper that becomes free joins it
// (gemmJoinOpen, called here by the test as a helper would); the product
// is the same, bit for bit, as when it runs with every worker from the
// start.
func TestGemmLateJoin(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	const m, k, n = 768, 1024, 1024
	r := newRand(77)
	a, b := randn(r, m*k, 1), randn(r, k*n, 1)
	want := make([]float32, m*n)
	gemm(false, true, m, n, k, a, b, want, false)

	// Every idle helper taken (earlier tests may have started more than
	// GOMAXPROCS-1): the product starts alone.
	busy := gemmAcquireHelpers(runtime.GOMAXPROCS(0) - 1)
	for drained := false; !drained; {
		select {
		case <-gemmIdle:
			busy++
		default:
			drained = true
		}
	}
	defer func() {
		for range busy {
			gemmIdle <- struct{}{}
		}
	}()
	for attempt := 0; ; attempt++ {
		got := make([]float32, m*n)
		done := make(chan struct{})
		go func() {
			gemm(false, true, m, n, k, a, b, got, false)
			close(done)
		}()
		joins := gemmLateJoins.Load()
	wait:
		for {
			gemmHelpersMu.Lock()
			open := len(gemmOpenJobs)
			gemmHelpersMu.Unlock()
			select {
			case <-done:
				break wait
			default:
			}
			if open > 0 {
				gemmJoinOpen()
				<-done
				break
			}
			runtime.Gosched()
		}
		if gemmLateJoins.Load() == joins {
			if attempt < 3 {
				continue // the product finished before the join: try again
			}
			t.Fatal("no worker joined the running product")
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("c[%d] = %v with a late worker, %v with both from the start", i, got[i], want[i])
			}
		}
		return
	}
}
