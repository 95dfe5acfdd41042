//go:build !amd64 || purego

package safetensors

// halfAsm is false: there are no assembly loops on this platform, and
// the functions below are never called.
var halfAsm = false

func bf16ToF16x16(dst, src *byte, blocks int) { panic("unreachable") }
func f16ToBF16x16(dst, src *byte, blocks int) { panic("unreachable") }
func f32ToF16x16(dst, src *byte, blocks int)  { panic("unreachable") }
func f32ToBF16x16(dst, src *byte, blocks int) { panic("unreachable") }
func bf16ToF32x16(dst, src *byte, blocks int) { panic("unreachable") }
func f16ToF32x16(dst, src *byte, blocks int)  { panic("unreachable") }
