//go:build linux

package safetensors

import (
	"os"

	"golang.org/x/sys/unix"
)

// Write-back while writing. Left alone, the kernel writes a new file's
// dirty pages only once they pass the dirty_background thresholds (10% of
// memory) or when fsync asks: writing a file the size of a checkpoint
// shard then costs the copy into the page cache, and after it the whole
// disk write. Asking for write-back of each writebackChunk as soon as it
// is written overlaps the two, and waiting for the write-back of data more
// than writebackLag behind keeps the dirty pages of a file bounded (the
// writer then goes at the disk's pace, which it could not beat anyway).
var (
	writebackChunk int64 = 16 << 20
	writebackLag   int64 = 128 << 20
)

// writeback is the write-back state of a file being written.
type writeback struct {
	started int64 // write-back asked for [0, started)
	waited  int64 // write-back waited for [0, waited)
	off     bool  // sync_file_range failed: leave write-back to the kernel
}

// advance starts write-back of f's bytes up to end, a multiple of
// writebackChunk at a time, and waits for the bytes writebackLag behind.
// Errors are ignored (fsync reports the write errors that matter).
func (wb *writeback) advance(f *os.File, end int64) {
	if wb.off || end-wb.started < writebackChunk {
		return
	}
	rc, err := f.SyscallConn()
	if err != nil {
		wb.off = true
		return
	}
	rc.Control(func(fd uintptr) {
		if err := unix.SyncFileRange(int(fd), wb.started, end-wb.started, unix.SYNC_FILE_RANGE_WRITE); err != nil {
			wb.off = true // not supported here (ENOSYS, EINVAL on some file systems)
			return
		}
		wb.started = end
		if done := end - writebackLag; writebackLag > 0 && done > wb.waited {
			unix.SyncFileRange(int(fd), wb.waited, done-wb.waited,
				unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
			wb.waited = done
		}
	})
}
