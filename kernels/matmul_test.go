package kernels

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/nlpodyssey/spago/mat"
)

func TestMatMul(t *testing.T) {
	dims := []struct{ m, n, k int }{
		{1, 1, 1}, {7, 33, 1}, {33, 7, 33}, {5, 1, 9}, {1, 7, 7},
		{70, 64, 33},  // large enough to split rows over goroutines
		{1, 300, 500}, // one row: splits columns
		{17, 9, 600},  // several packed k-blocks
	}
	for i, d := range dims {
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			tA, tB := tr[0], tr[1]
			t.Run(fmt.Sprintf("m%d_n%d_k%d_tA%v_tB%v", d.m, d.n, d.k, tA, tB), func(t *testing.T) {
				r := newRand(uint64(100 + i))
				ar, ac := d.m, d.k
				if tA {
					ar, ac = d.k, d.m
				}
				br, bc := d.k, d.n
				if tB {
					br, bc = d.n, d.k
				}
				ins := []input{
					{name: "a", data: randn(r, ar*ac, 1), rows: ar, cols: ac},
					{name: "b", data: randn(r, br*bc, 1), rows: br, cols: bc},
				}
				// Finite differences cost O(m·n·k) per element: sample fewer on big products.
				o := checkOpts{}
				if d.m*d.n*d.k > 50000 {
					o.fdElems = 40
				}
				checkOpWith(t, uint64(i), ins,
					func(x []mat.Tensor) mat.Tensor { return MatMul(x[0], x[1], tA, tB) },
					func(x [][]float64) []float64 { return matmulRef(x[0], x[1], d.m, d.n, d.k, tA, tB) }, o)
			})
		}
	}
}

// TestMatMulSameOperand checks x·xᵀ: the operand appears twice, so it must
// receive two gradient contributions (spago counts one per operand slot).
func TestMatMulSameOperand(t *testing.T) {
	r := newRand(7)
	const m, k = 7, 5
	ins := []input{{name: "x", data: randn(r, m*k, 1), rows: m, cols: k}}
	checkOp(t, 7, ins,
		func(x []mat.Tensor) mat.Tensor { return MatMul(x[0], x[0], false, true) },
		func(x [][]float64) []float64 { return matmulRef(x[0], x[0], m, m, k, false, true) })
}

func TestLinear(t *testing.T) {
	cases := []struct {
		rows, in, out int
		inOut         bool
		bias          string // "", "row" (1×out), "col" (out×1)
		constX        bool
	}{
		{1, 1, 1, false, "", false},
		{7, 33, 1, false, "row", false},
		{33, 7, 33, true, "col", false},
		{7, 7, 7, true, "", true},
		{33, 33, 7, false, "col", true},
		{64, 48, 96, false, "row", false}, // parallel path
		{64, 48, 96, true, "row", false},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("T%d_in%d_out%d_inOut%v_bias%s_constX%v", c.rows, c.in, c.out, c.inOut, c.bias, c.constX), func(t *testing.T) {
			r := newRand(uint64(200 + i))
			wr, wc := c.out, c.in
			if c.inOut {
				wr, wc = c.in, c.out
			}
			ins := []input{
				{name: "x", data: randn(r, c.rows*c.in, 1), rows: c.rows, cols: c.in, noGrad: c.constX},
				{name: "w", data: randn(r, c.in*c.out, 0.5), rows: wr, cols: wc},
			}
			switch c.bias {
			case "row":
				ins = append(ins, input{name: "bias", data: randn(r, c.out, 1), rows: 1, cols: c.out})
			case "col":
				ins = append(ins, input{name: "bias", data: randn(r, c.out, 1), rows: c.out, cols: 1})
			}
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor {
					var b mat.Tensor
					if len(x) == 3 {
						b = x[2]
					}
					return Linear(x[0], x[1], b, c.inOut)
				},
				func(x [][]float64) []float64 {
					var b []float64
					if len(x) == 3 {
						b = x[2]
					}
					return linearRef(x[0], x[1], b, c.rows, c.in, c.out, c.inOut)
				})
		})
	}
}

func TestAdd(t *testing.T) {
	for i, d := range [][2]int{{1, 1}, {7, 33}, {33, 7}, {300, 257}} {
		t.Run(fmt.Sprintf("%dx%d", d[0], d[1]), func(t *testing.T) {
			r := newRand(uint64(300 + i))
			ins := []input{
				{name: "a", data: randn(r, d[0]*d[1], 1), rows: d[0], cols: d[1]},
				{name: "b", data: randn(r, d[0]*d[1], 1), rows: d[0], cols: d[1]},
			}
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor { return Add(x[0], x[1]) },
				func(x [][]float64) []float64 { return addRef(x[0], x[1]) })
		})
	}
}

func BenchmarkMatMul(b *testing.B) {
	for _, d := range []struct{ m, k, n int }{{256, 256, 256}, {2048, 768, 768}} {
		for _, tB := range []bool{false, true} {
			b.Run(fmt.Sprintf("%dx%dx%d_transB%v", d.m, d.k, d.n, tB), func(b *testing.B) {
				r := newRand(1)
				a := randn(r, d.m*d.k, 1)
				w := randn(r, d.k*d.n, 1)
				c := make([]float32, d.m*d.n)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					gemm(false, tB, d.m, d.n, d.k, a, w, c, false)
				}
				flops := 2 * float64(d.m) * float64(d.n) * float64(d.k) * float64(b.N)
				b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// TestColumnSums: the bias gradient's column sums, split over workers by
// columns, are bit for bit the serial float64 sums, whatever the split.
func TestColumnSums(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	r := newRand(31)
	for _, c := range []struct{ rows, cols int }{{1, 1}, {3, 7}, {2048, 384}, {300, 1000}, {64, 4096}} {
		g := randn(r, c.rows*c.cols, 1)
		got := columnSums(g, c.rows, c.cols)
		for j := 0; j < c.cols; j++ {
			var want float64
			for i := 0; i < c.rows; i++ {
				want += float64(g[i*c.cols+j])
			}
			if got[j] != float32(want) {
				t.Fatalf("%dx%d: column %d: %v, want %v", c.rows, c.cols, j, got[j], float32(want))
			}
		}
	}
}
