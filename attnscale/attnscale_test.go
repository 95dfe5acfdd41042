package attnscale

import (
	"math"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Variant
		wantErr bool
	}{
		{"softmax", Softmax, false},
		{"ssmax", SSMax, false},
		{" Fixed ", Fixed, false},
		{"BIAS", Bias, false},
		{"magic", "", true},
		{"", "", true},
	}
	for _, tc := range tests {
		got, err := Parse(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("Parse(%q) = %q, %v; want %q (error %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	if _, err := ParseSSMax("softmax"); err == nil {
		t.Error("ParseSSMax accepted softmax")
	}
	if v, err := ParseSSMax("bias"); err != nil || v != Bias {
		t.Errorf("ParseSSMax(bias) = %q, %v", v, err)
	}
}

func TestVariantParameters(t *testing.T) {
	tests := []struct {
		v                 Variant
		ssmax, hasS, hasB bool
	}{
		{Softmax, false, false, false},
		{SSMax, true, true, false},
		{Fixed, true, false, false},
		{Bias, true, true, true},
	}
	for _, tc := range tests {
		if tc.v.IsSSMax() != tc.ssmax || tc.v.HasS() != tc.hasS || tc.v.HasB() != tc.hasB || !tc.v.Valid() {
			t.Errorf("%s: IsSSMax %v HasS %v HasB %v", tc.v, tc.v.IsSSMax(), tc.v.HasS(), tc.v.HasB())
		}
	}
	if Variant("x").Valid() {
		t.Error(`Variant("x") is valid`)
	}
}

func TestFactor(t *testing.T) {
	const s, b = 0.7, 0.3
	for _, n := range []int{0, 1, 2, 3, 17, 1024, 1 << 20} {
		ln := 0.0
		if n > 1 {
			ln = math.Log(float64(n))
		}
		want := map[Variant]float64{Softmax: 1, SSMax: s * ln, Fixed: ln, Bias: s*ln + b}
		for v, w := range want {
			got := float64(Factor(v, s, b, n))
			if math.Abs(got-w) > 1e-6*math.Max(1, math.Abs(w)) {
				t.Errorf("Factor(%s, n=%d) = %g, want %g", v, n, got, w)
			}
		}
	}
}

func TestMatchSEqualsSoftmaxAtL(t *testing.T) {
	for _, L := range []int{2, 64, 1024, 131072} {
		s := MatchS(L)
		if f := float64(s) * LogN(L); math.Abs(f-1) > 1e-12 {
			t.Errorf("L=%d: s·ln L = %g, want 1", L, f)
		}
	}
	x := PerHead(3, MatchS(1024))
	if len(x) != 3 || x[0] != float32(1/math.Log(1024)) || x[2] != x[0] {
		t.Errorf("PerHead = %v", x)
	}
}
