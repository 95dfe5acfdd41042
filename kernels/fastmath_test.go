package kernels

import (
	"math"
	"testing"
)

func TestFastExp(t *testing.T) {
	worst := 0.0
	for i := 0; i <= 400000; i++ {
		x := -float64(i) * 0.00177 // [-708, 0]
		if e, w := fexpNeg(x), math.Exp(x); w > 0 {
			worst = math.Max(worst, math.Abs(e-w)/w)
		}
	}
	if worst > 1e-10 {
		t.Errorf("fexpNeg relative error %g", worst)
	}
	if fexpNeg(-800) != 0 || fexpNeg(math.Inf(-1)) != 0 || fexpNeg(0) != 1 {
		t.Error("fexpNeg special values")
	}
	x := []float32{0.5, -2, 3, 1e-3, -40}
	y := append([]float32(nil), x...)
	const f, m = float32(1.5), float32(4.5)
	sum := expSubRow(y, f, m)
	var want float64
	for i, v := range x {
		e := math.Exp(float64(f*v - m))
		want += e
		if math.Abs(float64(y[i])-e) > 1e-7*e {
			t.Errorf("expSubRow[%d] = %v, want %v", i, y[i], e)
		}
	}
	if math.Abs(sum-want) > 1e-7*want {
		t.Errorf("expSubRow sum %v, want %v", sum, want)
	}
	if got := maxScaledRow(x, f); got != 4.5 {
		t.Errorf("maxScaledRow = %v", got)
	}
	t.Logf("fexpNeg relative error %.2g", worst)
}

var sinkF float64

func BenchmarkFastExp(b *testing.B) {
	x := make([]float64, 4096)
	for i := range x {
		x[i] = -float64(i) * 0.003
	}
	for _, c := range []struct {
		name string
		fn   func(float64) float64
	}{{"math.Exp", math.Exp}, {"fexpNeg", fexpNeg}} {
		b.Run(c.name, func(b *testing.B) {
			var cm cpuMeter
			cm.start()
			defer cm.stop(b)
			for i := 0; i < b.N; i++ {
				s := 0.0
				for _, v := range x {
					s += c.fn(v)
				}
				sinkF = s
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/value")
		})
	}
}

func BenchmarkGELUForward(b *testing.B) {
	r := newRand(3)
	x := randn(r, 1<<21, 2)
	y := make([]float32, len(x))
	th := make([]float32, len(x))
	var cm cpuMeter
	cm.start()
	defer cm.stop(b)
	for i := 0; i < b.N; i++ {
		activationForward(GELUTanh, y, th, x, nil)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(x)), "ns/value")
}

func TestSizeClass(t *testing.T) {
	prevClass, prevSize := -1, 0
	for n := 1; n < 1<<22; n += 1 + n/37 {
		c, size := sizeClass(n)
		if size < n || (n > 8 && float64(size) > 1.125*float64(n)+1) {
			t.Fatalf("sizeClass(%d) = %d, %d", n, c, size)
		}
		if c2, s2 := sizeClass(size); c2 != c || s2 != size {
			t.Fatalf("sizeClass(%d) = %d, %d; of its size %d, %d", n, c, size, c2, s2)
		}
		if c < prevClass || (c == prevClass) != (size == prevSize) {
			t.Fatalf("classes not monotone at %d", n)
		}
		prevClass, prevSize = c, size
	}
	if c, _ := sizeClass(1 << 40); c >= len(f32Free.classes) {
		t.Fatalf("class %d of 2^40 past the lists", c)
	}
}
