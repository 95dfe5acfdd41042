package kernels

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
)

// f16FromF32 rounds f to the nearest half (ties to even) for finite values
// in the half range (tests only).
func f16FromF32(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	a := math.Abs(float64(f))
	if a == 0 {
		return sign
	}
	e := math.Floor(math.Log2(a))
	if e < -14 {
		e = -14 // subnormal: quantum 2^-24
	}
	q := math.RoundToEven(a / math.Pow(2, e-10))
	v := q * math.Pow(2, e-10)
	if v < math.Pow(2, -14) {
		return sign | uint16(math.Round(v/math.Pow(2, -24)))
	}
	ex := int(math.Floor(math.Log2(v)))
	man := uint16(math.Round(v/math.Pow(2, float64(ex))*1024)) - 1024
	return sign | uint16(ex+15)<<10 | man
}

// weights16 returns n random 16-bit values of dtype dt and their float32
// values.
func weights16(r *rand.Rand, n int, dt WeightDType) ([]uint16, []float32) {
	raw := make([]uint16, n)
	vals := make([]float32, n)
	for i := range raw {
		x := float32(r.NormFloat64())
		if dt == WeightBF16 {
			raw[i] = bf16FromF32(x)
		} else {
			raw[i] = f16FromF32(x)
		}
	}
	decode16(vals, raw, dt)
	return raw, vals
}

func TestF16Decode(t *testing.T) {
	for _, c := range []struct {
		h    uint16
		want float32
	}{
		{0x0000, 0}, {0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, float32(math.Pow(2, -24))},
		{0x03ff, float32(1023 * math.Pow(2, -24))}, {0x0400, float32(math.Pow(2, -14))}, {0x3555, 0.333251953125},
		{0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))},
	} {
		if got := f16ToF32(c.h); got != c.want {
			t.Errorf("f16 %#04x: %v, want %v", c.h, got, c.want)
		}
	}
	if v := f16ToF32(0x7e00); !math.IsNaN(float64(v)) {
		t.Errorf("f16 NaN decodes to %v", v)
	}
	if got := f16ToF32(0x8000); math.Float32bits(got) != 0x80000000 {
		t.Errorf("f16 -0 decodes to %#x", math.Float32bits(got))
	}
	for h := 0; h < 1<<16; h++ {
		x := f16ToF32(uint16(h))
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			continue
		}
		if back := f16FromF32(x); back != uint16(h) {
			t.Fatalf("f16 %#04x -> %v -> %#04x", h, x, back)
		}
	}
	var one [1]float32
	decodeBF16(one[:], []uint16{0x3f80})
	if one[0] != 1 {
		t.Errorf("bf16 1.0 decodes to %v", one[0])
	}
}

// TestGemm16: a product with a 16-bit B gives the product with the decoded
// float32 B bit for bit, with every micro-kernel, transposition, bias and
// accumulation.
func TestGemm16(t *testing.T) {
	r := newRand(16)
	cases := gemmCases(r, 40)
	for _, kern := range gemmKernels {
		for _, dt := range []WeightDType{WeightBF16, WeightF16} {
			for _, c := range cases {
				a := randn(r, c.m*c.k, 1)
				raw, bf := weights16(r, c.k*c.n, dt)
				var bias []float32
				if c.bias {
					bias = randn(r, c.n, 1)
				}
				init := randn(r, c.m*c.n, 1)
				want := slices.Clone(init)
				got := slices.Clone(init)
				gemmWith(kern, c.transA, c.transB, c.m, c.n, c.k, a, bf, bias, want, c.accumulate)
				gemmWithOp(kern, c.transA, c.transB, c.m, c.n, c.k, a, gemmOperand{u16: raw, dtype: dt}, bias, got, c.accumulate)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s %v %v: C[%d] = %v, float32 path %v", kern.name, dt, c, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// TestWeightOps: Linear (both layouts, with bias), LinearCrossEntropy (and
// its soft-capped form), HeadNLL and Embedding give, with a stored Weight,
// the values of the same operation on the decoded float32 matrix, and the
// same gradient of x; the Weight gets none.
func TestWeightOps(t *testing.T) {
	r := newRand(7)
	const rows, in, out = 37, 48, 70
	for _, dt := range []WeightDType{WeightBF16, WeightF16} {
		raw, vals := weights16(r, out*in, dt)
		x := randn(r, rows*in, 1)
		g := randn(r, rows*out, 1)
		bias := randn(r, out, 1)
		for _, inOut := range []bool{false, true} {
			wr, wc := out, in
			if inOut {
				wr, wc = in, out
			}
			stored := NewWeight16(wr, wc, dt, raw, nil)
			dense := nn.NewParam(newDense32(vals, wr, wc)).WithGrad(false)
			run := func(w mat.Tensor) ([]float32, []float32) {
				xp := nn.NewParam(newDense32(x, rows, in))
				bp := nn.NewParam(newDense32(bias, 1, out)).WithGrad(false)
				y := Linear(xp, w, bp, inOut)
				backwardWith(t, y, g)
				return slices.Clone(y.Value().Data().F32()), slices.Clone(grad32(xp))
			}
			y1, dx1 := run(&nn.Param{Matrix: stored})
			y2, dx2 := run(dense)
			if !slices.Equal(y1, y2) || !slices.Equal(dx1, dx2) {
				t.Errorf("%v Linear inOut=%v: stored weight differs from float32", dt, inOut)
			}
		}
		// Head: w [vocab=out, dim=in].
		stored := NewWeight16(out, in, dt, raw, nil)
		targets := make([]int, rows)
		for i := range targets {
			targets[i] = r.IntN(out)
		}
		targets[3] = -1
		for _, cap := range []float32{0, 3} {
			run := func(w mat.Tensor) (float32, []float32) {
				xp := nn.NewParam(newDense32(x, rows, in))
				loss := LinearCrossEntropySoftcap(xp, w, targets, cap)
				if err := ag.Backward(loss); err != nil {
					t.Fatal(err)
				}
				return loss.Value().Item().F32(), slices.Clone(grad32(xp))
			}
			l1, dx1 := run(stored)
			l2, dx2 := run(nn.NewParam(newDense32(vals, out, in)).WithGrad(false))
			if l1 != l2 || !slices.Equal(dx1, dx2) {
				t.Errorf("%v LinearCrossEntropy cap %v: loss %v vs %v, gradients equal %v", dt, cap, l1, l2, slices.Equal(dx1, dx2))
			}
			n1 := HeadNLL(newDense32(x, rows, in), stored, targets, cap)
			n2 := LinearNLLSoftcap(x, vals, rows, in, out, targets, cap)
			for i := range n1 {
				if n1[i] != n2[i] && !(math.IsNaN(n1[i]) && math.IsNaN(n2[i])) {
					t.Fatalf("%v HeadNLL cap %v: row %d %v, LinearNLL %v", dt, cap, i, n1[i], n2[i])
				}
			}
		}
		ids := []int{0, 5, 69, 5, 12}
		e1 := Embedding(stored, ids).Value().Data().F32()
		e2 := Embedding(newDense32(vals, out, in), ids).Value().Data().F32()
		if !slices.Equal(e1, e2) {
			t.Errorf("%v Embedding: stored weight differs from float32", dt)
		}
		if stored.RequiresGrad() || stored.HasGrad() {
			t.Errorf("a Weight requires or has a gradient")
		}
		if !slices.Equal(stored.Float32s(), vals) || !slices.Equal(stored.Data().F32(), vals) {
			t.Errorf("%v Float32s differs from the decoded values", dt)
		}
	}
}

func TestWeightFrozen(t *testing.T) {
	w := NewWeight16(1, 2, WeightBF16, []uint16{0x3f80, 0x4000}, nil)
	w.SetRequiresGrad(false)
	defer func() {
		if recover() == nil {
			t.Error("SetRequiresGrad(true) on a Weight did not panic")
		}
	}()
	w.SetRequiresGrad(true)
}

func TestFreeScratch(t *testing.T) {
	b := getF32(1000)
	putF32(b)
	if f32Free.bytes == 0 {
		t.Skip("the buffer was not kept")
	}
	FreeScratch()
	if f32Free.bytes != 0 {
		t.Errorf("%d bytes kept after FreeScratch", f32Free.bytes)
	}
	if c := getF32(1000); len(c) != 1000 {
		t.Errorf("getF32 after FreeScratch: %d values", len(c))
	}
}

// TestReleaseGrad: a gradient handed over from the free lists (as the LM
// head's weight gradient is) goes back to them on ReleaseGrad, so the next
// buffer of its size is the same memory; the parameter has no gradient
// afterwards; a gradient allocated with make and sized off the classes is
// not kept (and ReleaseGrad of a parameter without one does nothing).
func TestReleaseGrad(t *testing.T) {
	const rows, cols = 7, 1000 // an odd class, unused elsewhere in the tests
	for _, c := range []struct {
		name   string
		pooled bool
	}{{"getF32", true}, {"make", false}} {
		t.Run(c.name, func(t *testing.T) {
			FreeScratch()
			p := mat.NewDense[float32](mat.WithShape(rows, cols), mat.WithGrad(true))
			var g []float32
			if c.pooled {
				g = getF32(rows * cols)
			} else {
				g = make([]float32, rows*cols)
			}
			for i := range g {
				g[i] = float32(i)
			}
			accGrad(p, g)
			if got := p.Grad().(*mat.Dense[float32]).Data().F32(); &got[0] != &g[0] {
				t.Fatal("accGrad copied the gradient instead of taking the buffer")
			}
			ReleaseGrad(p)
			if p.HasGrad() {
				t.Error("the parameter still has a gradient")
			}
			next := getF32(rows * cols)
			if reused := &next[0] == &g[0]; reused != c.pooled {
				t.Errorf("next buffer of the size is the released gradient: %v, want %v", reused, c.pooled)
			}
			putF32(next)
			ReleaseGrad(p) // no gradient: nothing to do
		})
	}
}
