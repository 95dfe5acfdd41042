//go:build linux

package safetensors

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// maxKernelChunk bounds one copy_file_range or sendfile call (sendfile stops
// at 0x7ffff000 bytes anyway).
const maxKernelChunk = 1 << 30

// kernelCopy copies size bytes at offset off of src to dst's current position
// inside the kernel: copy_file_range (which can reflink or copy on the server
// for some file systems), else sendfile. The source offset is explicit, so
// src's file position is neither used nor changed, which makes concurrent
// copies from one src safe. It returns errFallback, with the count copied so
// far, when the kernel cannot (or can no longer) do the copy; the caller then
// copies the rest in user space.
func kernelCopy(dst, src *os.File, off, size int64) (int64, error) {
	if size == 0 {
		return 0, nil
	}
	srcRC, err := src.SyscallConn()
	if err != nil {
		return 0, errFallback
	}
	dstRC, err := dst.SyscallConn()
	if err != nil {
		return 0, errFallback
	}
	var written int64
	var cerr error
	rerr := srcRC.Read(func(sfd uintptr) bool {
		werr := dstRC.Write(func(dfd uintptr) bool {
			written, cerr = kernelCopyFD(int(dfd), int(sfd), off, size)
			return true
		})
		if werr != nil && cerr == nil {
			cerr = errFallback
		}
		return true
	})
	if rerr != nil && cerr == nil {
		cerr = errFallback
	}
	return written, cerr
}

func kernelCopyFD(dfd, sfd int, off, size int64) (int64, error) {
	var written int64
	useSendfile := false
	for written < size {
		chunk := int(min(size-written, maxKernelChunk))
		roff := off + written
		var n int
		var err error
		if useSendfile {
			n, err = unix.Sendfile(dfd, sfd, &roff, chunk)
		} else {
			n, err = unix.CopyFileRange(sfd, &roff, dfd, nil, chunk, 0)
		}
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN: // non-blocking destination: leave it to Go's poller
			return written, errFallback
		case err != nil && !useSendfile && unsupported(err):
			useSendfile = true
			continue
		case err != nil && unsupported(err):
			return written, errFallback
		case err != nil && useSendfile:
			return written, fmt.Errorf("sendfile: %w", err)
		case err != nil:
			return written, fmt.Errorf("copy_file_range: %w", err)
		case n <= 0:
			// EOF (the file shrank) or a file system that reports no data:
			// let the portable path find out which.
			return written, errFallback
		}
		written += int64(n)
	}
	return written, nil
}

// unsupported reports errors that mean "this kernel path does not handle this
// pair of files", as opposed to a real I/O error.
func unsupported(err error) bool {
	return errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) ||
		errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) ||
		errors.Is(err, unix.EBADF) || errors.Is(err, unix.EPERM) ||
		errors.Is(err, unix.ETXTBSY)
}
