package kernels

import (
	"math"
	"testing"
)

// TestPackAsm: every kernel's assembly packing (transposing and copying, A
// and B panels) writes what the Go packing writes, for full and partial
// panels and depths around the 16-column step, and nothing past the panel.
func TestPackAsm(t *testing.T) {
	r := newRand(3)
	for _, kern := range gemmKernels {
		for _, c := range []struct {
			w              int
			trans, copyAsm func(dst, src *float32, ld, kc int)
		}{{kern.mr, kern.packAT, kern.packAN}, {kern.nr, kern.packBT, kern.packBN}} {
			for _, kc := range []int{1, 15, 16, 17, 40, 192, 256} {
				for _, lines := range []int{c.w, c.w - 1, 1} {
					ld := kc + 37
					src := randn(r, (kc+c.w+1)*ld, 1)
					for _, depthMajor := range []bool{false, true} {
						asm := c.trans
						if depthMajor {
							asm = c.copyAsm
						}
						if asm == nil {
							continue
						}
						const guard = 19
						got := make([]float32, kc*c.w+guard)
						want := make([]float32, kc*c.w+guard)
						for i := range got {
							got[i], want[i] = float32(math.NaN()), float32(math.NaN())
						}
						if depthMajor {
							packCopy(got[:kc*c.w], src, ld, kc, c.w, lines, asm)
							packCopy(want[:kc*c.w], src, ld, kc, c.w, lines, nil)
						} else {
							packTrans(got[:kc*c.w], src, ld, kc, c.w, lines, asm)
							packTrans(want[:kc*c.w], src, ld, kc, c.w, lines, nil)
						}
						for i := range want {
							if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
								t.Fatalf("%s w %d kc %d lines %d depthMajor %v: [%d] = %v, Go packing %v", kern.name, c.w, kc, lines, depthMajor, i, got[i], want[i])
							}
						}
					}
				}
			}
		}
	}
}
