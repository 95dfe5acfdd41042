package kernels

import "math"

// The exponential of the element-wise kernels (softmax rows, activations).
// math.Exp is accurate to the last float64 bit and handles every special
// case on every call; the kernels need float32 accuracy over a known range,
// so this branch-light version (range reduction by ln2/64, a table of
// 2^(j/64), a cubic, and an exponent built from bits) runs about twice as
// fast. Its relative error is below 1e-10, far under float32 resolution.
// The hot loops write fexp out by hand (Go does not inline it into loops):
// expScaledSub, softmaxGradRow and sigmoidWeightedRows, each tested bit for
// bit against fexp (TestInlinedExp). On amd64 with AVX2 they run as
// assembly four lanes at a time (vec_amd64.go), bit for bit the same
// (TestVecKernels).

const (
	expLog2e = 1.4426950408889634
	expLn2Hi = 6.93147180369123816490e-01 // ln 2 split as in math.Exp
	expLn2Lo = 1.90821492927058770002e-10
	expMagic = 6755399441055744.0 // 1.5·2^52: adding it rounds to an integer
)

// fexp returns e^x with a relative error below 1e-10 for x in [-708, 708].
// x is clamped to that range (so e^-708 ≈ 3.3e-308 stands for every
// smaller result, and ±Inf give e^±708); NaN gives NaN. It reduces
// x = (64k+j)·ln2/64 + r with |r| <= ln2/128, takes 2^(j/64) from a table
// and e^r from a cubic.
func fexp(x float64) float64 {
	if x < -708 {
		x = -708
	}
	if x > 708 {
		x = 708
	}
	t := x*(64*expLog2e) + expMagic
	k := t - expMagic
	r := (x - k*(expLn2Hi/64)) - k*(expLn2Lo/64)
	p := 1 + r*(1+r*(0.5+r*(1.0/6)))
	n := int64(int32(uint32(math.Float64bits(t))))
	return p * math.Float64frombits(expTable[n&63]+uint64(n>>6)<<52)
}

// fexpNeg returns e^x for x <= 0 as fexp does, but 0 below -708 and for
// NaN: the online softmax's rescaling factor, where a running maximum that
// falls out of range must weigh nothing.
func fexpNeg(x float64) float64 {
	if !(x >= -708) {
		return 0
	}
	return fexp(x)
}

// expTable[j] holds the bits of 2^(j/64).
var expTable = func() (t [64]uint64) {
	for j := range t {
		t[j] = math.Float64bits(math.Exp2(float64(j) / 64))
	}
	return t
}()

// expScaledSub computes e_i = e^(f·x[i] − m), rounded to float32, for
// m >= max f·x (a softmax row: logits f·x, maximum m), and returns their
// sum in float64. It stores e_i in y[i] when y is not nil; y may be x. It
// is the one loop of the softmax kernels (attention rows, cross-entropy),
// with fexp written out so the compiler keeps it in registers (there is no
// upper clamp: the arguments are <= 0). The sum is taken in four lanes,
// e_i in lane i&3, combined as (l0+l2)+(l1+l3): the order of the AVX2
// loop (vec_amd64.go), which it uses where the CPU has it.
func expScaledSub(y, x []float32, f, m float32) float64 {
	return expScaledSubWith(y, x, f, m, useVec)
}

// expScaledSubWith is expScaledSub, with the AVX2 loop when vec (and the
// architecture has one) and the Go loop alone otherwise: the same bits.
func expScaledSubWith(y, x []float32, f, m float32, vec bool) float64 {
	if y != nil {
		y = y[:len(x)]
	}
	var acc [4]float64
	i0 := 0 // a multiple of 4, so that element i of x[i0:] is in lane i&3
	if vec {
		i0 = expScaledSubVec(y, x, f, m, &acc)
	}
	x = x[i0:]
	if y != nil {
		y = y[i0:][:len(x)]
	}
	for i, v := range x {
		a := float64(f*v - m)
		if a < -708 {
			a = -708
		}
		t := a*(64*expLog2e) + expMagic
		k := t - expMagic
		r := (a - k*(expLn2Hi/64)) - k*(expLn2Lo/64)
		p := 1 + r*(1+r*(0.5+r*(1.0/6)))
		n := int64(int32(uint32(math.Float64bits(t))))
		e := float32(p * math.Float64frombits(expTable[n&63]+uint64(n>>6)<<52))
		if y != nil {
			y[i] = e
		}
		acc[i&3] += float64(e)
	}
	return (acc[0] + acc[2]) + (acc[1] + acc[3])
}

// expSubRow sets x[i] = e^(f·x[i] − m) and returns their sum (see
// expScaledSub).
func expSubRow(x []float32, f, m float32) float64 { return expScaledSub(x, x, f, m) }

// maxScaledRow returns the maximum of f·x[i] (x not empty).
func maxScaledRow(x []float32, f float32) float32 {
	m := f * x[0]
	for _, v := range x[1:] {
		if y := f * v; y > m {
			m = y
		}
	}
	return m
}

// softmaxGradRow turns a row of an attention backward tile into
// probabilities and logit gradients, for keys c < len(s): with the logit
// f·s[c] and the row's log-sum-exp L, p = e^(f·s[c] − L) and
// dl = p·(dp[c] − D); it sets s[c] = p and dp[c] = dl·f and returns
// Σ dl·s[c] (with the s[c] it was given), summed in float32 in four lanes
// as expScaledSub sums. fexp written out, as in expScaledSub; the AVX2
// loop where the CPU has it.
func softmaxGradRow(s, dp []float32, f, L, D float32) float32 {
	return softmaxGradRowWith(s, dp, f, L, D, useVec)
}

// softmaxGradRowWith is softmaxGradRow, with the AVX2 loop when vec (and
// the architecture has one) and the Go loop alone otherwise: the same bits.
func softmaxGradRowWith(s, dp []float32, f, L, D float32, vec bool) float32 {
	dp = dp[:len(s)]
	var acc [4]float32
	c0 := 0 // a multiple of 4, as in expScaledSubWith
	if vec {
		c0 = softmaxGradRowVec(s, dp, f, L, D, &acc)
	}
	s = s[c0:]
	dp = dp[c0:][:len(s)]
	for c, z := range s {
		a := float64(f*z - L)
		if a < -708 {
			a = -708
		}
		t := a*(64*expLog2e) + expMagic
		k := t - expMagic
		r := (a - k*(expLn2Hi/64)) - k*(expLn2Lo/64)
		q := 1 + r*(1+r*(0.5+r*(1.0/6)))
		n := int64(int32(uint32(math.Float64bits(t))))
		p := float32(q * math.Float64frombits(expTable[n&63]+uint64(n>>6)<<52))
		dl := p * (dp[c] - D)
		acc[c&3] += dl * z
		s[c] = p
		dp[c] = dl * f
	}
	return (acc[0] + acc[2]) + (acc[1] + acc[3])
}
