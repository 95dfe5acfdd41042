// AVX2 versions of the element-wise hot loops (see vec_amd64.go for the
// contracts and the bit-exactness argument). Written by hand.
//
// Go assembler operand order: OP src2, src1, dst computes dst = src1 OP src2;
// for VMAXPD/VMINPD the NaN-returning operand is src2, the first one written.

#include "textflag.h"

// Offsets in vecExpConsts (each constant repeated in 4 lanes, 32 bytes).
#define C_LOG2E64 0
#define C_MAGIC 32
#define C_LN2HI 64
#define C_LN2LO 96
#define C_ONE 128
#define C_HALF 160
#define C_SIXTH 192
#define C_M708 224
#define C_P708 256
#define C_MASK63 288

// EXPPD sets P to fexp's result for the (already clamped) arguments in A,
// four float64 lanes, with the operations of fexp in its order:
//	t := a*(64*expLog2e) + expMagic          (T)
//	k := t - expMagic                        (K)
//	r := (a - k*(ln2Hi/64)) - k*(ln2Lo/64)   (R)
//	p := 1 + r*(1+r*(0.5+r*(1.0/6)))         (P)
//	P = p * bits(expTable[bits(t)&63] + (bits(t)>>6)<<52)  (G the entries)
// R9 holds vecExpConsts, R8 expTable; M, AX, R10, R11 and R12 are
// clobbered. XK, XG, XM name the low halves of K, G, M. The <<52 keeps
// bits 6..17 of t's low dword, so logical shifts of the 64-bit lane give
// what Go's int64(int32(uint32(·)))>>6 gives.
//
// The four table entries are loaded one by one (VMOVQ, VPINSRQ,
// VINSERTI128) rather than with VPGATHERQQ: the same values, and 10-18%
// faster per kernel on the AMD EPYC this was tuned on, where gathers are
// slow (a VPGATHERQQ version passed TestVecKernels as well).
#define EXPPD(A, T, K, R, P, G, M, XK, XG, XM) \
	VMULPD C_LOG2E64(R9), A, T; \
	VADDPD C_MAGIC(R9), T, T; \
	VSUBPD C_MAGIC(R9), T, K; \
	VMULPD C_LN2HI(R9), K, R; \
	VSUBPD R, A, R; \
	VMULPD C_LN2LO(R9), K, K; \
	VSUBPD K, R, R; \
	VMULPD C_SIXTH(R9), R, P; \
	VADDPD C_HALF(R9), P, P; \
	VMULPD P, R, P; \
	VADDPD C_ONE(R9), P, P; \
	VMULPD P, R, P; \
	VADDPD C_ONE(R9), P, P; \
	VPAND C_MASK63(R9), T, K; \
	VPSRLQ $6, T, T; \
	VPSLLQ $52, T, T; \
	VMOVQ XK, AX; \
	VPEXTRQ $1, XK, R10; \
	VEXTRACTI128 $1, K, XM; \
	VMOVQ XM, R11; \
	VPEXTRQ $1, XM, R12; \
	VMOVQ (R8)(AX*8), XG; \
	VPINSRQ $1, (R8)(R10*8), XG, XG; \
	VMOVQ (R8)(R11*8), XM; \
	VPINSRQ $1, (R8)(R12*8), XM, XM; \
	VINSERTI128 $1, XM, G, G; \
	VPADDQ T, G, G; \
	VMULPD G, P, P

// func expScaledSubAVX2(y, x *float32, n int, f, m float32, acc *[4]float64)
TEXT ·expScaledSubAVX2(SB), NOSPLIT, $0-40
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VMOVSS f+24(FP), X6
	VBROADCASTSS X6, X6
	VMOVSS m+28(FP), X5
	VBROADCASTSS X5, X5
	MOVQ acc+32(FP), DX
	LEAQ ·vecExpConsts(SB), R9
	LEAQ ·expTable(SB), R8
	VMOVUPD C_M708(R9), Y8
	VMOVUPD (DX), Y7
	SHRQ $2, CX
	JZ   esdone

esloop:
	VMOVUPS (SI), X0
	VMULPS  X6, X0, X0 // f*v (float32)
	VSUBPS  X5, X0, X0 // − m (float32)
	VCVTPS2PD X0, Y0   // a
	VMAXPD  Y0, Y8, Y0 // a < -708 ? -708 : a (NaN stays)
	EXPPD(Y0, Y1, Y2, Y3, Y4, Y9, Y10, X2, X9, X10)
	VCVTPD2PSY Y4, X4  // e, rounded to float32
	ADDQ $16, SI
	TESTQ DI, DI
	JZ   esnostore
	VMOVUPS X4, (DI)
	ADDQ $16, DI

esnostore:
	VCVTPS2PD X4, Y4
	VADDPD Y4, Y7, Y7 // lane sums
	DECQ CX
	JNZ  esloop

esdone:
	VMOVUPD Y7, (DX)
	VZEROUPPER
	RET

// func softmaxGradRowAVX2(s, dp *float32, n int, f, L, D float32, acc *[4]float32)
TEXT ·softmaxGradRowAVX2(SB), NOSPLIT, $0-48
	MOVQ s+0(FP), DI
	MOVQ dp+8(FP), SI
	MOVQ n+16(FP), CX
	VMOVSS f+24(FP), X14
	VBROADCASTSS X14, X14
	VMOVSS L+28(FP), X13
	VBROADCASTSS X13, X13
	VMOVSS D+32(FP), X12
	VBROADCASTSS X12, X12
	MOVQ acc+40(FP), DX
	LEAQ ·vecExpConsts(SB), R9
	LEAQ ·expTable(SB), R8
	VMOVUPD C_M708(R9), Y15
	VMOVUPS (DX), X11
	SHRQ $2, CX
	JZ   sgdone

sgloop:
	VMOVUPS (DI), X0    // z
	VMULPS  X14, X0, X1 // f*z
	VSUBPS  X13, X1, X1 // − L
	VCVTPS2PD X1, Y1    // a
	VMAXPD  Y1, Y15, Y1
	EXPPD(Y1, Y2, Y3, Y4, Y5, Y6, Y7, X3, X6, X7)
	VCVTPD2PSY Y5, X5   // p (float32)
	VMOVUPS (SI), X2
	VSUBPS  X12, X2, X2 // dp − D
	VMULPS  X2, X5, X2  // dl = p·(dp − D)
	VMULPS  X0, X2, X3  // dl·z
	VADDPS  X3, X11, X11
	VMOVUPS X5, (DI)
	VMULPS  X14, X2, X2 // dl·f
	VMOVUPS X2, (SI)
	ADDQ $16, DI
	ADDQ $16, SI
	DECQ CX
	JNZ  sgloop

sgdone:
	VMOVUPS X11, (DX)
	VZEROUPPER
	RET

// func sigmoidWeightedRowsAVX2(y, s, x *float32, n int, negk, c float64, cubic int)
TEXT ·sigmoidWeightedRowsAVX2(SB), NOSPLIT, $0-56
	MOVQ y+0(FP), DI
	MOVQ s+8(FP), BX
	MOVQ x+16(FP), SI
	MOVQ n+24(FP), CX
	VMOVSD negk+32(FP), X15
	VBROADCASTSD X15, Y15
	VMOVSD c+40(FP), X14
	VBROADCASTSD X14, Y14
	MOVQ cubic+48(FP), DX
	LEAQ ·vecExpConsts(SB), R9
	LEAQ ·expTable(SB), R8
	VMOVUPD C_M708(R9), Y13
	VMOVUPD C_P708(R9), Y12
	VMOVUPD C_ONE(R9), Y11
	SHRQ $2, CX
	JZ   swdone

swloop:
	VCVTPS2PD (SI), Y0 // v
	VMOVAPD Y0, Y1     // z = v
	TESTQ DX, DX
	JZ   swlinear
	VMULPD Y0, Y14, Y2 // c*v
	VMULPD Y0, Y2, Y2  // *v
	VMULPD Y0, Y2, Y2  // *v
	VADDPD Y2, Y1, Y1  // z = v + c·v·v·v

swlinear:
	VMULPD Y1, Y15, Y1  // a = (−k)·z
	VMAXPD Y1, Y13, Y1  // a < -708 ? -708 : a
	VMINPD Y1, Y12, Y1  // a > 708 ? 708 : a
	EXPPD(Y1, Y2, Y3, Y4, Y5, Y6, Y7, X3, X6, X7)
	VADDPD Y11, Y5, Y5  // 1 + p·2^…
	VDIVPD Y5, Y11, Y5  // σ = 1/(…)
	VMULPD Y5, Y0, Y0   // v·σ
	VCVTPD2PSY Y0, X0
	VMOVUPS X0, (DI)
	ADDQ $16, SI
	ADDQ $16, DI
	TESTQ BX, BX
	JZ   swnext
	VCVTPD2PSY Y5, X5
	VMOVUPS X5, (BX)
	ADDQ $16, BX

swnext:
	DECQ CX
	JNZ  swloop

swdone:
	VZEROUPPER
	RET

// func rotateHalfAVX2(y1, y2, x1, x2, c, s *float32, n int)
TEXT ·rotateHalfAVX2(SB), NOSPLIT, $0-56
	MOVQ y1+0(FP), DI
	MOVQ y2+8(FP), R10
	MOVQ x1+16(FP), SI
	MOVQ x2+24(FP), R11
	MOVQ c+32(FP), AX
	MOVQ s+40(FP), BX
	MOVQ n+48(FP), CX
	XORQ DX, DX
	SHRQ $3, CX
	JZ   rhdone

rhloop:
	VMOVUPS (SI)(DX*1), Y0  // a
	VMOVUPS (R11)(DX*1), Y1 // b
	VMOVUPS (AX)(DX*1), Y2  // c
	VMOVUPS (BX)(DX*1), Y3  // s
	VMULPS  Y2, Y0, Y4      // a·c
	VMULPS  Y3, Y1, Y5      // b·s
	VSUBPS  Y5, Y4, Y4      // a·c − b·s
	VMULPS  Y2, Y1, Y5      // b·c
	VMULPS  Y3, Y0, Y6      // a·s
	VADDPS  Y6, Y5, Y5      // b·c + a·s
	VMOVUPS Y4, (DI)(DX*1)
	VMOVUPS Y5, (R10)(DX*1)
	ADDQ $32, DX
	DECQ CX
	JNZ  rhloop

rhdone:
	VZEROUPPER
	RET

// func rotateHalfInvAVX2(y1, y2, x1, x2, c, s *float32, n int)
TEXT ·rotateHalfInvAVX2(SB), NOSPLIT, $0-56
	MOVQ y1+0(FP), DI
	MOVQ y2+8(FP), R10
	MOVQ x1+16(FP), SI
	MOVQ x2+24(FP), R11
	MOVQ c+32(FP), AX
	MOVQ s+40(FP), BX
	MOVQ n+48(FP), CX
	XORQ DX, DX
	SHRQ $3, CX
	JZ   rvdone

rvloop:
	VMOVUPS (SI)(DX*1), Y0  // a
	VMOVUPS (R11)(DX*1), Y1 // b
	VMOVUPS (AX)(DX*1), Y2  // c
	VMOVUPS (BX)(DX*1), Y3  // s
	VMULPS  Y2, Y0, Y4      // a·c
	VMULPS  Y3, Y1, Y5      // b·s
	VADDPS  Y5, Y4, Y4      // a·c + b·s
	VMULPS  Y2, Y1, Y5      // b·c
	VMULPS  Y3, Y0, Y6      // a·s
	VSUBPS  Y6, Y5, Y5      // b·c − a·s
	VMOVUPS Y4, (DI)(DX*1)
	VMOVUPS Y5, (R10)(DX*1)
	ADDQ $32, DX
	DECQ CX
	JNZ  rvloop

rvdone:
	VZEROUPPER
	RET

// func adamWAVX2(w, grad, v, m *float32, n int, c *[8]float32, decay int) (finite int)
// Every product and sum is one rounded float32 operation, in AdamW.stepGo's
// order (no FMA). Y15 ORs the lanes whose new weight has all exponent bits
// set (Inf or NaN).
TEXT ·adamWAVX2(SB), NOSPLIT, $0-64
	MOVQ w+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ v+16(FP), R8
	MOVQ m+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ c+40(FP), AX
	MOVQ decay+48(FP), DX
	VBROADCASTSS 0(AX), Y0  // factor
	VBROADCASTSS 4(AX), Y1  // β1
	VBROADCASTSS 8(AX), Y2  // 1−β1
	VBROADCASTSS 12(AX), Y3 // β2
	VBROADCASTSS 16(AX), Y4 // 1−β2
	VBROADCASTSS 20(AX), Y5 // ε
	VBROADCASTSS 24(AX), Y6 // α
	VBROADCASTSS 28(AX), Y7 // λ
	MOVL $0x7f800000, BX
	MOVL BX, X8
	VPBROADCASTD X8, Y8     // exponent mask
	VPXOR Y15, Y15, Y15
	XORQ R10, R10

adamLoop:
	CMPQ R10, CX
	JGE adamDone
	VMOVUPS (SI)(R10*4), Y9
	VMULPS Y0, Y9, Y9       // g·factor
	VMOVUPS (R8)(R10*4), Y10
	VMULPS Y1, Y10, Y10     // v·β1
	VMULPS Y2, Y9, Y11      // g·(1−β1)
	VADDPS Y11, Y10, Y10    // v
	VMOVUPS (R9)(R10*4), Y12
	VMULPS Y3, Y12, Y12     // m·β2
	VMULPS Y9, Y9, Y13      // g·g
	VMULPS Y4, Y13, Y13     // ·(1−β2)
	VADDPS Y13, Y12, Y12    // m
	VSQRTPS Y12, Y13
	VADDPS Y5, Y13, Y13     // √m + ε
	VDIVPS Y13, Y10, Y13    // d = v / (√m + ε)
	VMOVUPS (DI)(R10*4), Y14
	TESTQ DX, DX
	JEQ adamNoDecay
	VMULPS Y7, Y14, Y11     // w·λ
	VADDPS Y11, Y13, Y13    // d + w·λ

adamNoDecay:
	VMULPS Y6, Y13, Y13     // d·α
	VSUBPS Y13, Y14, Y14    // w − d·α
	VMOVUPS Y14, (DI)(R10*4)
	VMOVUPS Y10, (R8)(R10*4)
	VMOVUPS Y12, (R9)(R10*4)
	VANDPS Y8, Y14, Y11
	VPCMPEQD Y8, Y11, Y11
	VPOR Y11, Y15, Y15
	ADDQ $8, R10
	JMP adamLoop

adamDone:
	MOVQ $1, AX
	XORQ BX, BX
	VPTEST Y15, Y15
	CMOVQNE BX, AX
	MOVQ AX, finite+56(FP)
	VZEROUPPER
	RET
