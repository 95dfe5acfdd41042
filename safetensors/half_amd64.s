//go:build amd64 && !purego

#include "textflag.h"

// Bulk float conversions with AVX2 and F16C, 16 elements per iteration;
// the Go callers (half_amd64.go) convert the tail and check the CPU. Each
// gives the bits of the scalar functions of convert.go (the tests compare
// them exhaustively on 16-bit inputs).

// BCAST(imm, X, Y) sets every 32-bit lane of Y to imm.
#define BCAST(imm, x, y) MOVL $imm, AX; MOVD AX, x; VPBROADCASTD x, y

// TOBF16(v, t1, t2, t3) rounds the F32 bits in the lanes of v to BF16 bits
// (in the low halves of the lanes), as Float32ToBF16 does: NaN keeps its
// sign and top payload and is quieted ((b>>16)|0x40); other values get
// (b + 0x7fff + (b>>16)&1) >> 16. Needs Y8 = 0x7fffffff, Y9 = 0x7f800000,
// Y10 = 0x7fff, Y11 = 1, Y12 = 0x40.
#define TOBF16(v, t1, t2, t3) \
	VPAND     Y8, v, t1;      \
	VPCMPGTD  Y9, t1, t1;     \
	VPSRLD    $16, v, t2;     \
	VPOR      Y12, t2, t3;    \
	VPAND     Y11, t2, t2;    \
	VPADDD    Y10, t2, t2;    \
	VPADDD    v, t2, t2;      \
	VPSRLD    $16, t2, t2;    \
	VPBLENDVB t1, t3, t2, v

#define BF16CONSTS \
	BCAST(0x7fffffff, X8, Y8);  \
	BCAST(0x7f800000, X9, Y9);  \
	BCAST(0x7fff, X10, Y10);    \
	BCAST(1, X11, Y11);         \
	BCAST(0x40, X12, Y12)

// PACKSTORE(a, b, t, dst) stores the low halves of the lanes of a then b
// (16 uint16) at dst.
#define PACKSTORE(a, b, t, dst) \
	VPACKUSDW b, a, t;      \
	VPERMQ    $0xd8, t, t;  \
	VMOVDQU   t, dst

// func bf16ToF16x16(dst, src *byte, blocks int)
TEXT ·bf16ToF16x16(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	TESTQ CX, CX
	JEQ  bf16f16done

bf16f16loop:
	VPMOVZXWD (SI), Y0
	VPMOVZXWD 16(SI), Y1
	VPSLLD    $16, Y0, Y0
	VPSLLD    $16, Y1, Y1
	VCVTPS2PH $0, Y0, (DI)
	VCVTPS2PH $0, Y1, 16(DI)
	ADDQ      $32, SI
	ADDQ      $32, DI
	DECQ      CX
	JNE       bf16f16loop

bf16f16done:
	VZEROUPPER
	RET

// func f16ToBF16x16(dst, src *byte, blocks int)
TEXT ·f16ToBF16x16(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	TESTQ CX, CX
	JEQ  f16bf16done
	BF16CONSTS

f16bf16loop:
	// A signaling NaN comes out of VCVTPH2PS quieted where F16ToFloat32
	// keeps it, but TOBF16 quiets every NaN: the results agree.
	VCVTPH2PS (SI), Y0
	VCVTPH2PS 16(SI), Y1
	TOBF16(Y0, Y2, Y3, Y4)
	TOBF16(Y1, Y2, Y3, Y4)
	PACKSTORE(Y0, Y1, Y2, (DI))
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNE  f16bf16loop

f16bf16done:
	VZEROUPPER
	RET

// func f32ToF16x16(dst, src *byte, blocks int)
TEXT ·f32ToF16x16(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	TESTQ CX, CX
	JEQ  f32f16done

f32f16loop:
	VMOVDQU   (SI), Y0
	VMOVDQU   32(SI), Y1
	VCVTPS2PH $0, Y0, (DI)
	VCVTPS2PH $0, Y1, 16(DI)
	ADDQ      $64, SI
	ADDQ      $32, DI
	DECQ      CX
	JNE       f32f16loop

f32f16done:
	VZEROUPPER
	RET

// func f32ToBF16x16(dst, src *byte, blocks int)
TEXT ·f32ToBF16x16(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	TESTQ CX, CX
	JEQ  f32bf16done
	BF16CONSTS

f32bf16loop:
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1
	TOBF16(Y0, Y2, Y3, Y4)
	TOBF16(Y1, Y2, Y3, Y4)
	PACKSTORE(Y0, Y1, Y2, (DI))
	ADDQ $64, SI
	ADDQ $32, DI
	DECQ CX
	JNE  f32bf16loop

f32bf16done:
	VZEROUPPER
	RET

// func bf16ToF32x16(dst, src *byte, blocks int)
TEXT ·bf16ToF32x16(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	TESTQ CX, CX
	JEQ  bf16f32done

bf16f32loop:
	VPMOVZXWD (SI), Y0
	VPMOVZXWD 16(SI), Y1
	VPSLLD    $16, Y0, Y0
	VPSLLD    $16, Y1, Y1
	VMOVDQU   Y0, (DI)
	VMOVDQU   Y1, 32(DI)
	ADDQ      $32, SI
	ADDQ      $64, DI
	DECQ      CX
	JNE       bf16f32loop

bf16f32done:
	VZEROUPPER
	RET

// F16TOF32(off, v, t1, t2, t3) converts the 8 F16 values at off(SI) to F32
// bits in v, exactly as F16ToFloat32: VCVTPH2PS, with NaN lanes rebuilt so
// that a signaling NaN stays signaling (bit 22 is the F16 quiet bit 9).
// Needs Y13 = 0x7fff, Y14 = 0x7c00, Y15 = 0x400000.
#define F16TOF32(off, v, t1, t2, t3) \
	VPMOVZXWD off(SI), t1;    \
	VCVTPH2PS off(SI), v;     \
	VPSLLD    $13, t1, t2;    \
	VPAND     Y15, t2, t2;    \
	VPAND     Y13, t1, t1;    \
	VPCMPGTD  Y14, t1, t1;    \
	VPANDN    v, Y15, t3;     \
	VPOR      t3, t2, t2;     \
	VPBLENDVB t1, t2, v, v

// func f16ToF32x16(dst, src *byte, blocks int)
TEXT ·f16ToF32x16(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ blocks+16(FP), CX
	TESTQ CX, CX
	JEQ  f16f32done
	BCAST(0x7fff, X13, Y13)
	BCAST(0x7c00, X14, Y14)
	BCAST(0x400000, X15, Y15)

f16f32loop:
	F16TOF32(0, Y0, Y2, Y3, Y4)
	F16TOF32(16, Y1, Y5, Y6, Y7)
	VMOVDQU Y0, (DI)
	VMOVDQU Y1, 32(DI)
	ADDQ    $32, SI
	ADDQ    $64, DI
	DECQ    CX
	JNE     f16f32loop

f16f32done:
	VZEROUPPER
	RET
