//go:build unix && !aix

package outlock

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// locking is true where tryLock really locks.
const locking = true

// tryLock takes an exclusive flock on f without waiting; ok is false when
// another open file description holds it. File systems that do not
// support flock (ENOLCK, EOPNOTSUPP) count as taken: the run proceeds
// unprotected rather than not at all.
func tryLock(f *os.File) (ok bool, err error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB)
			if ferr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return false, err
	}
	switch {
	case ferr == nil:
		return true, nil
	case errors.Is(ferr, unix.EWOULDBLOCK):
		return false, nil
	case errors.Is(ferr, unix.ENOLCK), errors.Is(ferr, unix.EOPNOTSUPP), errors.Is(ferr, unix.ENOSYS):
		return true, nil
	}
	return false, ferr
}
