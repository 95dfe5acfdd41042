//go:build !unix

package data

import (
	"io"
	"os"
)

// mapFile reads the first size bytes of f into memory: there is no
// memory mapping here.
func mapFile(f *os.File, size int) ([]byte, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, err
	}
	return b, nil
}

// unmapFile releases what mapFile returned (the garbage collector does).
func unmapFile([]byte) error { return nil }
