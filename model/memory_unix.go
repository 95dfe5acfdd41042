//go:build unix

package model

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// allocOffHeap returns size bytes of zeroed anonymous memory outside the Go
// heap and the function that frees it.
func allocOffHeap(size int) ([]byte, func([]byte), error) {
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, nil, fmt.Errorf("allocate %d bytes for the weights: %w", size, err)
	}
	return mem, func(m []byte) { unix.Munmap(m) }, nil
}
