package safetensors

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// refF16 decodes half-precision bits by the textbook formula, in float64.
func refF16(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e := int(h>>10) & 0x1f
	m := float64(h & 0x3ff)
	switch e {
	case 0x1f:
		if m != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	case 0:
		return sign * math.Ldexp(m, -24)
	}
	return sign * math.Ldexp(1+m/1024, e-15)
}

// refBF16 decodes bfloat16 bits by the textbook formula, in float64.
func refBF16(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e := int(h>>7) & 0xff
	m := float64(h & 0x7f)
	switch e {
	case 0xff:
		if m != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	case 0:
		return sign * math.Ldexp(m, -133)
	}
	return sign * math.Ldexp(1+m/128, e-127)
}

type halfFormat struct {
	name   string
	decode func(uint16) float32
	encode func(float32) uint16
	enc64  func(float64) uint16
	ref    func(uint16) float64
	inf    uint16
}

var halfFormats = []halfFormat{
	{"F16", F16ToFloat32, Float32ToF16, Float64ToF16, refF16, 0x7c00},
	{"BF16", BF16ToFloat32, Float32ToBF16, Float64ToBF16, refBF16, 0x7f80},
}

func isNaN16(h, inf uint16) bool { return h&0x7fff > inf }

// TestHalfExhaustive decodes every one of the 65536 bit patterns, compares
// with the textbook value, and checks that encoding gives the same bits back
// (NaN stays a NaN of the same sign).
func TestHalfExhaustive(t *testing.T) {
	for _, hf := range halfFormats {
		t.Run(hf.name, func(t *testing.T) {
			for i := range 1 << 16 {
				h := uint16(i)
				f := hf.decode(h)
				ref := hf.ref(h)
				if isNaN16(h, hf.inf) {
					if !math.IsNaN(float64(f)) {
						t.Fatalf("%#04x decodes to %v, want NaN", h, f)
					}
					for _, back := range []uint16{hf.encode(f), hf.enc64(float64(f))} {
						if !isNaN16(back, hf.inf) || back&0x8000 != h&0x8000 {
							t.Fatalf("NaN %#04x re-encodes to %#04x", h, back)
						}
					}
					continue
				}
				if float64(f) != ref || math.Signbit(float64(f)) != math.Signbit(ref) {
					t.Fatalf("%#04x decodes to %v, want %v", h, f, ref)
				}
				if back := hf.encode(f); back != h {
					t.Fatalf("%#04x -> %v -> %#04x", h, f, back)
				}
				if back := hf.enc64(ref); back != h {
					t.Fatalf("float64 %#04x -> %v -> %#04x", h, ref, back)
				}
			}
		})
	}
}

// TestHalfRoundingTies checks, for every pair of adjacent values of the same
// sign, that their exact midpoint (computed in float64, representable in
// float32) rounds to the one with an even mantissa, and that the float32
// values just below and above it round down and up. This covers subnormals,
// the boundary to the normals and the overflow to infinity.
func TestHalfRoundingTies(t *testing.T) {
	for _, hf := range halfFormats {
		t.Run(hf.name, func(t *testing.T) {
			ties := 0
			for i := range 0x7fff {
				for _, sign := range []uint16{0, 0x8000} {
					lo, hi := uint16(i)|sign, uint16(i+1)|sign
					if isNaN16(hi, hf.inf) || isNaN16(lo, hf.inf) || lo&0x7fff == hf.inf {
						continue
					}
					var mid float64
					if hi&0x7fff == hf.inf {
						// Midpoint between the largest finite value and the
						// next power of two beyond it.
						next := math.Ldexp(1, int(math.Logb(hf.ref(lo)))+1)
						if sign != 0 {
							next = -next
						}
						mid = (hf.ref(lo) + next) / 2
					} else {
						mid = (hf.ref(lo) + hf.ref(hi)) / 2
					}
					m32 := float32(mid)
					if float64(m32) != mid {
						t.Fatalf("midpoint %v of %#04x/%#04x not exact in float32", mid, lo, hi)
					}
					even := lo
					if lo&1 == 1 {
						even = hi
					}
					if got := hf.encode(m32); got != even {
						t.Fatalf("tie %v between %#04x and %#04x: got %#04x, want %#04x", mid, lo, hi, got, even)
					}
					if got := hf.enc64(mid); got != even {
						t.Fatalf("float64 tie %v between %#04x and %#04x: got %#04x, want %#04x", mid, lo, hi, got, even)
					}
					toZero := float32(math.Copysign(0, mid))
					toInf := float32(math.Copysign(math.Inf(1), mid))
					if got := hf.encode(math.Nextafter32(m32, toZero)); got != lo {
						t.Fatalf("just inside tie %v: got %#04x, want %#04x", mid, got, lo)
					}
					if got := hf.encode(math.Nextafter32(m32, toInf)); got != hi {
						t.Fatalf("just beyond tie %v: got %#04x, want %#04x", mid, got, hi)
					}
					ties++
				}
			}
			if ties < 60000 {
				t.Errorf("only %d ties checked", ties)
			}
		})
	}
}

// TestHalfRandomNearest checks on random float32 and float64 inputs that the
// encoding is the nearest representable value (ties to even), using only the
// textbook decoder: no neighbour is closer.
func TestHalfRandomNearest(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, hf := range halfFormats {
		check := func(x float64, got uint16) {
			t.Helper()
			if math.IsNaN(x) {
				if !isNaN16(got, hf.inf) {
					t.Fatalf("%s(NaN) = %#04x", hf.name, got)
				}
				return
			}
			if math.Signbit(x) != (got&0x8000 != 0) {
				t.Fatalf("%s(%v) = %#04x: wrong sign", hf.name, x, got)
			}
			v := hf.ref(got)
			if math.IsInf(v, 0) {
				// Overflow: x must be at or beyond the midpoint between the
				// largest finite value and the next binade.
				maxF := hf.ref(hf.inf - 1)
				limit := maxF + (math.Ldexp(1, int(math.Logb(maxF))+1)-maxF)/2
				if math.Abs(x) < limit {
					t.Fatalf("%s(%v) overflowed", hf.name, x)
				}
				return
			}
			d := math.Abs(x - v)
			for _, nb := range []uint16{got - 1, got + 1} {
				if nb&0x8000 != got&0x8000 || isNaN16(nb, hf.inf) {
					continue
				}
				w := hf.ref(nb)
				dn := math.Abs(x - w)
				if math.IsInf(w, 0) {
					continue
				}
				if dn < d || (dn == d && got&1 == 1) {
					t.Fatalf("%s(%v) = %#04x (%v), but %#04x (%v) is nearer or even", hf.name, x, got, v, nb, w)
				}
			}
			if got&0x7fff == 0 && x != 0 {
				// Rounded to zero: x must not exceed half the smallest value.
				if math.Abs(x) > hf.ref(1)/2 {
					t.Fatalf("%s(%v) rounded to zero", hf.name, x)
				}
			}
		}
		for range 300000 {
			x := math.Float32frombits(rng.Uint32())
			check(float64(x), hf.encode(x))
			y := math.Float64frombits(rng.Uint64())
			check(y, hf.enc64(y))
			// Values near the format's range, where the random bits rarely go.
			z := float32(rng.NormFloat64() * math.Ldexp(1, rng.IntN(40)-30))
			check(float64(z), hf.encode(z))
		}
	}
}

func TestHalfSpecialValues(t *testing.T) {
	tests := []struct {
		in        float32
		f16, bf16 uint16
	}{
		{0, 0, 0},
		{float32(math.Copysign(0, -1)), 0x8000, 0x8000},
		{1, 0x3c00, 0x3f80},
		{-2, 0xc000, 0xc000},
		{65504, 0x7bff, 0x4780},
		{65519.996, 0x7bff, 0x4780},
		{65520, 0x7c00, 0x4780},
		{1e10, 0x7c00, 0x5015},
		{math.MaxFloat32, 0x7c00, 0x7f80},
		{float32(math.Inf(1)), 0x7c00, 0x7f80},
		{float32(math.Inf(-1)), 0xfc00, 0xff80},
		{6.1035156e-05, 0x0400, 0x3880},                    // smallest normal F16
		{5.9604645e-08, 0x0001, 0x3380},                    // smallest subnormal F16
		{2.9802322e-08, 0x0000, 0x3300},                    // half of it: tie to even (0)
		{2.9802326e-08, 0x0001, 0x3300},                    // just above
		{8.940697e-08, 0x0002, 0x33c0},                     // 1.5 units: tie to even (2)
		{math.Float32frombits(0x00000001), 0x0000, 0x0000}, // F32 subnormal
		{math.Float32frombits(0x807fffff), 0x8000, 0x8080}, // largest negative F32 subnormal rounds up in BF16
		{math.Float32frombits(0x7f800001), 0x7e00, 0x7fc0}, // signalling NaN, low payload: still NaN
		{math.Float32frombits(0xffc00000), 0xfe00, 0xffc0}, // negative quiet NaN
		{math.Float32frombits(0x3f808000), 0x3c04, 0x3f80}, // BF16 tie, even below
		{math.Float32frombits(0x3f818000), 0x3c0c, 0x3f82}, // BF16 tie, even above
		{math.Float32frombits(0x7f7fffff), 0x7c00, 0x7f80}, // rounds up to Inf in BF16
		{math.Float32frombits(0x7f7f7fff), 0x7c00, 0x7f7f}, // just below the BF16 overflow tie
		{math.Float32frombits(0x3f801000), 0x3c00, 0x3f80}, // F16 tie (1 + 2^-11): even 0x3c00
		{math.Float32frombits(0x3f803000), 0x3c02, 0x3f80}, // F16 tie (1 + 3*2^-11): even 0x3c02
		{math.Float32frombits(0x33800001), 0x0001, 0x3380}, // just above 2^-24
		{math.Float32frombits(0x38800000), 0x0400, 0x3880}, // 2^-14
		{math.Float32frombits(0x387fe000), 0x0400, 0x3880}, // largest F16 subnormal + half unit: ties up to normal
		{math.Float32frombits(0x387fc000), 0x03ff, 0x3880}, // largest F16 subnormal
		{math.Float32frombits(0x477ff000), 0x7c00, 0x4780}, // 65520: F16 overflow tie to Inf
		{math.Float32frombits(0x477fefff), 0x7bff, 0x4780}, // just below
		{math.Float32frombits(0xc77ff000), 0xfc00, 0xc780}, // negative overflow
		{math.Float32frombits(0x00800000), 0x0000, 0x0080}, // smallest normal F32
		{math.Float32frombits(0x007fffff), 0x0000, 0x0080}, // rounds to the smallest normal BF16
		{math.Float32frombits(0x00400000), 0x0000, 0x0040}, // BF16 subnormal
		{math.Float32frombits(0x00008000), 0x0000, 0x0000}, // BF16 subnormal tie to even (0)
		{math.Float32frombits(0x00018000), 0x0000, 0x0002}, // BF16 subnormal tie to even (2)
		{math.Float32frombits(0x3e2aaaab), 0x3155, 0x3e2b}, // 1/6
	}
	for _, tc := range tests {
		if got := Float32ToF16(tc.in); got != tc.f16 {
			t.Errorf("Float32ToF16(%v / %#08x) = %#04x, want %#04x", tc.in, math.Float32bits(tc.in), got, tc.f16)
		}
		if got := Float32ToBF16(tc.in); got != tc.bf16 {
			t.Errorf("Float32ToBF16(%v / %#08x) = %#04x, want %#04x", tc.in, math.Float32bits(tc.in), got, tc.bf16)
		}
		if !math.IsNaN(float64(tc.in)) {
			if got := Float64ToF16(float64(tc.in)); got != tc.f16 {
				t.Errorf("Float64ToF16(%v) = %#04x, want %#04x", tc.in, got, tc.f16)
			}
			if got := Float64ToBF16(float64(tc.in)); got != tc.bf16 {
				t.Errorf("Float64ToBF16(%v) = %#04x, want %#04x", tc.in, got, tc.bf16)
			}
		}
	}
	if got := F16ToFloat32(0x7e01); !math.IsNaN(float64(got)) || math.Float32bits(got) != 0x7fc02000 {
		t.Errorf("F16 NaN payload: %#08x", math.Float32bits(got))
	}
}

// TestFloat64NoDoubleRounding: F64 -> BF16 must round once. Through float32
// this value first becomes an exact tie and then rounds down.
func TestFloat64NoDoubleRounding(t *testing.T) {
	x := 1 + math.Ldexp(1, -8) + math.Ldexp(1, -30)
	if via32 := Float32ToBF16(float32(x)); via32 != 0x3f80 {
		t.Fatalf("premise: through float32 = %#04x", via32)
	}
	if got := Float64ToBF16(x); got != 0x3f81 {
		t.Errorf("Float64ToBF16(%v) = %#04x, want 0x3f81", x, got)
	}
	y := 1 + math.Ldexp(1, -11) + math.Ldexp(1, -40)
	if got := Float64ToF16(y); got != 0x3c01 {
		t.Errorf("Float64ToF16(%v) = %#04x, want 0x3c01", y, got)
	}
	if got := Float64ToF16(1e300); got != 0x7c00 {
		t.Errorf("Float64ToF16(1e300) = %#04x", got)
	}
	if got := Float64ToBF16(-1e-300); got != 0x8000 {
		t.Errorf("Float64ToBF16(-1e-300) = %#04x", got)
	}
	if got := Float64ToBF16(math.Float64frombits(0x7ff0000000000001)); got&0x7fff <= 0x7f80 {
		t.Errorf("NaN with low payload = %#04x", got)
	}
}

func TestBF16RoundTripIdempotent(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	src := make([]float32, 4096)
	for i := range src {
		src[i] = float32(rng.NormFloat64() * 10)
	}
	for _, dt := range []DType{BF16, F16, F32, F64} {
		enc := make([]byte, len(src)*floatSize(dt))
		if err := EncodeFloat32(dt, src, enc); err != nil {
			t.Fatal(err)
		}
		dec := make([]float32, len(src))
		if err := DecodeFloat32(dt, enc, dec); err != nil {
			t.Fatal(err)
		}
		enc2 := make([]byte, len(enc))
		if err := EncodeFloat32(dt, dec, enc2); err != nil {
			t.Fatal(err)
		}
		if string(enc) != string(enc2) {
			t.Errorf("%s: encode(decode(encode(x))) differs from encode(x)", dt)
		}
		for i, v := range dec {
			var want float32
			switch dt {
			case BF16:
				want = BF16ToFloat32(Float32ToBF16(src[i]))
				if rel := math.Abs(float64(v-src[i])) / math.Abs(float64(src[i])); rel > 1.0/256 {
					t.Fatalf("BF16 relative error %v for %v", rel, src[i])
				}
			case F16:
				want = F16ToFloat32(Float32ToF16(src[i]))
			default:
				want = src[i]
			}
			if v != want {
				t.Fatalf("%s[%d] = %v, want %v", dt, i, v, want)
			}
		}
	}
	// Known little-endian bytes.
	enc := make([]byte, 4)
	EncodeFloat32(BF16, []float32{1, -2}, enc)
	if want := []byte{0x80, 0x3f, 0x00, 0xc0}; string(enc) != string(want) {
		t.Errorf("BF16 bytes % x, want % x", enc, want)
	}
	EncodeFloat32(F16, []float32{1, -2}, enc)
	if want := []byte{0x00, 0x3c, 0x00, 0xc0}; string(enc) != string(want) {
		t.Errorf("F16 bytes % x, want % x", enc, want)
	}
	f64 := make([]byte, 8)
	binary.LittleEndian.PutUint64(f64, math.Float64bits(0.1))
	out := make([]float32, 1)
	DecodeFloat32(F64, f64, out)
	if out[0] != float32(0.1) {
		t.Errorf("F64 decode %v", out[0])
	}
}

func TestConvertErrors(t *testing.T) {
	checkErr(t, DecodeFloat32(I32, make([]byte, 4), make([]float32, 1)), []error{ErrUnsupportedDType}, "I32")
	checkErr(t, EncodeFloat32(F8_E4M3, make([]float32, 1), make([]byte, 1)), []error{ErrUnsupportedDType}, "F8_E4M3")
	checkErr(t, DecodeFloat32(F16, make([]byte, 5), make([]float32, 2)), []error{ErrWriteSize})
	checkErr(t, EncodeFloat32(BF16, make([]float32, 2), make([]byte, 3)), []error{ErrWriteSize})
}

func TestConvertNoAllocs(t *testing.T) {
	src := make([]float32, 1024)
	dst := make([]byte, 2048)
	back := make([]float32, 1024)
	allocs := testing.AllocsPerRun(10, func() {
		EncodeFloat32(BF16, src, dst)
		DecodeFloat32(BF16, dst, back)
		EncodeFloat32(F16, src, dst)
		DecodeFloat32(F16, dst, back)
	})
	if allocs != 0 {
		t.Errorf("%v allocations", allocs)
	}
}
