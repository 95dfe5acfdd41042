//go:build linux

package safetensors

import (
	"os"

	"golang.org/x/sys/unix"
)

// writebackChunk is how many newly written bytes of a file make WriteFile
// start their write-back. Left alone, the kernel writes a new file's dirty
// pages only once they pass the dirty_background threshold (10% of memory)
// or when fsync asks: writing a checkpoint shard then costs the copy into
// the page cache and, after it, the whole disk write. Starting write-back
// as the data comes overlaps the two, so the final fsync has little left.
// The writer is not made to wait for the disk here: when it runs ahead,
// the kernel's dirty-page limits throttle it as they throttle cp.
const writebackChunk = 8 << 20

// writeback is the write-back state of a file being written.
type writeback struct {
	started int64 // write-back asked for [0, started)
	off     bool  // sync_file_range failed: leave write-back to the kernel
}

// advance starts the write-back of f's bytes up to end once at least
// writebackChunk of them wait. Errors only turn it off: fsync reports the
// write errors that matter.
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
			wb.off = true // not supported here (ENOSYS, or EINVAL on some file systems)
			return
		}
		wb.started = end
	})
}
