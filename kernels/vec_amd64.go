package kernels

import (
	"math"

	"golang.org/x/sys/cpu"
)

// AVX2 versions of the element-wise hot loops (vec_amd64.s): expScaledSub,
// softmaxGradRow and sigmoidWeightedRows four float64 lanes at a time (the
// float32 steps four float32 lanes), rotateHalf eight float32 lanes.
//
// They give the Go loops' results bit for bit (TestVecKernels): every
// element goes through the same IEEE operations in the same order and
// precision — float32 multiplies and subtracts where Go computes in
// float32 (VMULPS, VSUBPS), VCVTPS2PD and VCVTPD2PS for the conversions
// (round to nearest, as Go's), separate VMULPD and VADDPD where Go writes
// x*y+z (Go does not fuse them at the default GOAMD64=v1; built with
// GOAMD64=v3 it may, and then the two would differ), VDIVPD for σ's
// division, and for the clamps VMAXPD/VMINPD with the argument as the
// operand returned when one is NaN, as Go's `if a < -708 { a = -708 }`
// leaves a NaN. Addition and multiplication being commutative, only the
// order of the operations of a chain matters, not that of their operands
// (except for which NaN's sign and payload a result carries when two NaNs
// meet, which Go leaves to its compiler: NaNs are only NaNs in both). The
// table lookup loads expTable[bits(t)&63] lane by lane (faster than
// VPGATHERQQ on AMD), and the exponent (bits(t)>>6)<<52 is built with
// logical shifts of the 64-bit lane: the <<52 keeps bits 6..17 of t's low
// dword only, which Go's int64(int32(uint32(bits(t))))>>6 leaves the same.
//
// Sums (expScaledSub's, softmaxGradRow's dc) are per-lane: element i goes
// into lane i&3, and the lanes are combined as (l0+l2)+(l1+l3). The Go
// loops sum the same way, so the assembly and the Go code agree on those
// bits too.

// useVec reports whether the AVX2 loops are used, decided once from the
// CPU's features (the 256-bit integer ops and VINSERTI128 need AVX2); off
// under SSMAX_NOASM=1, as the assembly GEMM kernels are.
var useVec = cpu.X86.HasAVX2 && !noAsm

// vecExpConsts holds fexp's constants for vec_amd64.s, each in four lanes
// (the offsets C_* there): the same Go constant expressions as fexp's, so
// rounded to the same float64.
var vecExpConsts = func() (c [40]uint64) {
	vals := [...]uint64{
		math.Float64bits(64 * expLog2e),
		math.Float64bits(expMagic),
		math.Float64bits(expLn2Hi / 64),
		math.Float64bits(expLn2Lo / 64),
		math.Float64bits(1),
		math.Float64bits(0.5),
		math.Float64bits(1.0 / 6),
		math.Float64bits(-708),
		math.Float64bits(708),
		63,
	}
	for i, v := range vals {
		for l := 0; l < 4; l++ {
			c[4*i+l] = v
		}
	}
	return c
}()

// expScaledSubAVX2 is expScaledSub over n values (a multiple of 4) of x,
// adding e_i to acc[i&3]; it stores e_i in y when y is not nil.
//
//go:noescape
func expScaledSubAVX2(y, x *float32, n int, f, m float32, acc *[4]float64)

// softmaxGradRowAVX2 is softmaxGradRow over n values (a multiple of 4),
// adding dl·s[c] to acc[c&3] (float32).
//
//go:noescape
func softmaxGradRowAVX2(s, dp *float32, n int, f, L, D float32, acc *[4]float32)

// sigmoidWeightedRowsAVX2 is sigmoidWeightedRows over n values (a multiple
// of 4) with negk = −k, and the cubic term only when cubic != 0; s may be
// nil.
//
//go:noescape
func sigmoidWeightedRowsAVX2(y, s, x *float32, n int, negk, c float64, cubic int)

// rotateHalfAVX2 is rotateHalf's forward loop over n pairs (a multiple of
// 8): y1 = x1·c − x2·s, y2 = x2·c + x1·s. y may be x.
//
//go:noescape
func rotateHalfAVX2(y1, y2, x1, x2, c, s *float32, n int)

// rotateHalfInvAVX2 is rotateHalf's inverse loop over n pairs (a multiple
// of 8): y1 = x1·c + x2·s, y2 = x2·c − x1·s. y may be x.
//
//go:noescape
func rotateHalfInvAVX2(y1, y2, x1, x2, c, s *float32, n int)

// expScaledSubVec runs expScaledSubAVX2 over the longest prefix of x with
// a multiple of 4 values and returns its length.
func expScaledSubVec(y, x []float32, f, m float32, acc *[4]float64) int {
	n := len(x) &^ 3
	if n == 0 {
		return 0
	}
	var yp *float32
	if y != nil {
		yp = &y[:n][0]
	}
	expScaledSubAVX2(yp, &x[0], n, f, m, acc)
	return n
}

// softmaxGradRowVec runs softmaxGradRowAVX2 over the longest prefix of s
// with a multiple of 4 values (dp as long as s) and returns its length.
func softmaxGradRowVec(s, dp []float32, f, L, D float32, acc *[4]float32) int {
	n := len(s) &^ 3
	if n == 0 {
		return 0
	}
	dpn := dp[:n]
	softmaxGradRowAVX2(&s[0], &dpn[0], n, f, L, D, acc)
	return n
}

// sigmoidWeightedRowsVec runs sigmoidWeightedRowsAVX2 over the longest
// prefix of x with a multiple of 4 values (y, and s when not nil, as long
// as x) and returns its length.
func sigmoidWeightedRowsVec(y, s, x []float32, k, c float64) int {
	n := len(x) &^ 3
	if n == 0 {
		return 0
	}
	var sp *float32
	if s != nil {
		sp = &s[:n][0]
	}
	cubic := 0
	if c != 0 {
		cubic = 1
	}
	sigmoidWeightedRowsAVX2(&y[:n][0], sp, &x[0], n, -k, c, cubic)
	return n
}

// rotateHalfVec runs the AVX2 loop of rotateHalf over the longest prefix
// of the halves with a multiple of 8 pairs and returns its length (x1, x2,
// y1, y2 and s at least as long as c).
func rotateHalfVec(y1, y2, x1, x2, c, s []float32, inverse bool) int {
	n := len(c) &^ 7
	if n == 0 {
		return 0
	}
	y1, y2, x1, x2, s = y1[:n], y2[:n], x1[:n], x2[:n], s[:n]
	if inverse {
		rotateHalfInvAVX2(&y1[0], &y2[0], &x1[0], &x2[0], &c[0], &s[0], n)
	} else {
		rotateHalfAVX2(&y1[0], &y2[0], &x1[0], &x2[0], &c[0], &s[0], n)
	}
	return n
}

// adamWAVX2 is AdamW.Step's loop over n values (a multiple of 8), with the
// constants c = [Factor, β1, 1−β1, β2, 1−β2, ε, α, λ]; decay != 0 adds the
// weight decay. It returns 1 if every updated weight is finite, else 0.
//
//go:noescape
func adamWAVX2(w, grad, v, m *float32, n int, c *[8]float32, decay int) (finite int)

// adamWVec runs adamWAVX2 over the longest prefix of w with a multiple of
// 8 values (g, v and m as long as w) and returns its length and whether
// the weights it updated are finite.
func adamWVec(a *AdamW, w, g, v, m []float32) (done int, finite bool) {
	n := len(w) &^ 7
	if n == 0 {
		return 0, true
	}
	c := [8]float32{a.Factor, a.Beta1, a.OneMinusBeta1, a.Beta2, a.OneMinusBeta2, a.Eps, a.Alpha, a.Lambda}
	decay := 0
	if a.Decay {
		decay = 1
	}
	g, v, m = g[:n], v[:n], m[:n]
	return n, adamWAVX2(&w[0], &g[0], &v[0], &m[0], n, &c, decay) != 0
}
