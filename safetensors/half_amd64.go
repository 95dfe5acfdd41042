//go:build amd64 && !purego

package safetensors

import "golang.org/x/sys/cpu"

// halfAsm says whether the AVX2/F16C loops of half_amd64.s convert the
// bulk of a buffer, 16 elements at a time (tests turn it off to compare
// with the portable loops).
var halfAsm = cpu.X86.HasAVX2 && cpu.X86.HasF16C

// The loops convert blocks*16 elements from src to dst.

//go:noescape
func bf16ToF16x16(dst, src *byte, blocks int)

//go:noescape
func f16ToBF16x16(dst, src *byte, blocks int)

//go:noescape
func f32ToF16x16(dst, src *byte, blocks int)

//go:noescape
func f32ToBF16x16(dst, src *byte, blocks int)

//go:noescape
func bf16ToF32x16(dst, src *byte, blocks int)

//go:noescape
func f16ToF32x16(dst, src *byte, blocks int)
