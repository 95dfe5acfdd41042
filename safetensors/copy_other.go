//go:build !linux

package safetensors

import "os"

// kernelCopy has no in-kernel copy outside Linux: it always asks the caller
// to copy in user space.
func kernelCopy(dst, src *os.File, off, size int64) (int64, error) {
	return 0, errFallback
}
