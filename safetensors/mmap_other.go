//go:build !unix

package safetensors

import (
	"fmt"
	"io"
	"math"
	"os"
)

// mapFile reads the first size bytes of f into memory: the portable fallback
// for platforms without mmap. The boolean is false: nothing to unmap.
func mapFile(f *os.File, size int64) ([]byte, bool, error) {
	if size <= 0 || size > math.MaxInt {
		return nil, false, fmt.Errorf("cannot read %d bytes into memory", size)
	}
	data := make([]byte, size)
	if _, err := f.ReadAt(data, 0); err != nil && err != io.EOF {
		return nil, false, err
	}
	return data, false, nil
}

// unmapFile is a no-op for the read fallback.
func unmapFile([]byte) error { return nil }
