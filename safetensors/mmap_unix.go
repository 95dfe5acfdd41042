//go:build unix

package safetensors

import (
	"fmt"
	"math"
	"os"

	"golang.org/x/sys/unix"
)

// mapFile maps the first size bytes of f read-only and shared. The boolean
// reports that the result must be released with unmapFile.
func mapFile(f *os.File, size int64) ([]byte, bool, error) {
	if size <= 0 || size > math.MaxInt {
		return nil, false, fmt.Errorf("cannot map %d bytes", size)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, false, err
	}
	var data []byte
	var merr error
	if err := rc.Control(func(fd uintptr) {
		data, merr = unix.Mmap(int(fd), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	}); err != nil {
		return nil, false, err
	}
	if merr != nil {
		return nil, false, fmt.Errorf("mmap: %w", merr)
	}
	return data, true, nil
}

// unmapFile releases a mapping made by mapFile.
func unmapFile(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	return unix.Munmap(data)
}
