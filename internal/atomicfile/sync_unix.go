//go:build unix

package atomicfile

import (
	"errors"
	"syscall"
)

// ignorableSyncError reports fsync errors of directories that only mean the
// file system cannot sync them.
func ignorableSyncError(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP)
}
