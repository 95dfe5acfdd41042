//go:build !amd64

package kernels

// goKernel is the portable micro-kernel: 4×4 tiles (the 32 floating-point
// registers of arm64, ppc64, riscv64 hold them).
var goKernel = goKernel4x4

// archKernels returns the assembly micro-kernels of this architecture: none,
// the portable Go kernel is used.
func archKernels() []*gemmKernel { return nil }

func cpuHasAVX2FMA() bool { return false }
