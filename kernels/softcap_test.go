package kernels

import (
	"fmt"
	"math"
	"testing"

	"github.com/nlpodyssey/spago/mat"
)

func softcapRef(x []float64, c float64) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = c * math.Tanh(v/c)
	}
	return y
}

// TestFtanh: ftanh agrees with math.Tanh to a relative error of 1e-9, on
// both sides of its branch and in saturation.
func TestFtanh(t *testing.T) {
	worst := 0.0
	check := func(x float64) {
		got, want := ftanh(x), math.Tanh(x)
		e := math.Abs(got-want) / math.Max(math.Abs(want), 1e-300)
		if want == 0 {
			e = math.Abs(got)
		}
		worst = math.Max(worst, e)
		if e > 1e-9 {
			t.Fatalf("ftanh(%v) = %v, math.Tanh %v (relative error %.3g)", x, got, want, e)
		}
	}
	for _, x := range []float64{0, 1e-300, 1e-8, 0.1249999, 0.125, 0.1250001, 0.5, 1, 5, 19, 20, 40, 400, 1e300, math.Inf(1)} {
		check(x)
		check(-x)
	}
	r := newRand(800)
	for i := 0; i < 200000; i++ {
		check(r.NormFloat64() * math.Pow(10, float64(r.IntN(6))-3))
	}
	if v := ftanh(math.NaN()); !math.IsNaN(v) {
		t.Errorf("ftanh(NaN) = %v", v)
	}
	t.Logf("worst relative error %.3g", worst)
}

func TestSoftcap(t *testing.T) {
	for i, c := range []struct {
		rows, cols int
		cap        float32
		scale      float64 // of x: from the linear regime to saturation
	}{
		{1, 1, 1, 1},
		{7, 33, 30, 20},
		{33, 7, 2.5, 3},
		{64, 300, 50, 0.01},
	} {
		t.Run(fmt.Sprintf("%dx%d_cap%v", c.rows, c.cols, c.cap), func(t *testing.T) {
			r := newRand(uint64(810 + i))
			ins := []input{{name: "x", data: randn(r, c.rows*c.cols, c.scale), rows: c.rows, cols: c.cols}}
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor { return Softcap(x[0], c.cap) },
				func(x [][]float64) []float64 { return softcapRef(x[0], float64(c.cap)) })
		})
	}
}

// TestSoftcapNone: a cap of 0 returns x itself.
func TestSoftcapNone(t *testing.T) {
	x := newDense32([]float32{1, 2, 3}, 1, 3)
	if Softcap(x, 0) != mat.Tensor(x) {
		t.Error("Softcap(x, 0) is not x")
	}
	if _, err := (&softcapFn{x: x, cap: -1}).Forward(); err == nil {
		t.Error("a negative cap was accepted")
	}
}

func TestScale(t *testing.T) {
	for i, c := range []struct {
		rows, cols int
		c          float32
	}{{1, 1, 2}, {7, 33, 48}, {300, 130, -0.125}} {
		t.Run(fmt.Sprintf("%dx%d_c%v", c.rows, c.cols, c.c), func(t *testing.T) {
			r := newRand(uint64(830 + i))
			ins := []input{{name: "x", data: randn(r, c.rows*c.cols, 1), rows: c.rows, cols: c.cols}}
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor { return Scale(x[0], c.c) },
				func(x [][]float64) []float64 {
					y := make([]float64, len(x[0]))
					for j, v := range x[0] {
						y[j] = float64(c.c) * v
					}
					return y
				})
		})
	}
}
