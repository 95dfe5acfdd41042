//go:build !unix

package atomicfile

// ignorableSyncError reports fsync errors of directories that only mean the
// platform cannot sync them: on non-Unix systems directories cannot be
// opened for syncing, so every error is ignorable.
func ignorableSyncError(err error) bool { return true }
