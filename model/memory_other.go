//go:build !unix

package model

// allocOffHeap returns size bytes of zeroed memory: from the Go heap where
// there is no anonymous mmap.
func allocOffHeap(size int) ([]byte, func([]byte), error) {
	return make([]byte, size), nil, nil
}
