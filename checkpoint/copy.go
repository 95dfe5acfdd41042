package checkpoint

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ssmax/ssmax/internal/atomicfile"
)

// CopyFiles copies the named files (tokenizer and generation files, see
// AuxiliaryFiles) from srcDir into dstDir as new files, keeping their
// permission bits, and syncs them. Errors are *atomicfile.Error values
// naming the file written: `write DST/tokenizer.json: no space left on
// device`, or `write DST/tokenizer.json: read SRC/tokenizer.json: ...`
// when reading the source failed.
func CopyFiles(srcDir, dstDir string, names []string) error {
	for _, name := range names {
		dst := filepath.Join(dstDir, name)
		if err := copyFile(filepath.Join(srcDir, name), dst); err != nil {
			return &atomicfile.Error{Path: dst, Err: err}
		}
	}
	return nil
}

// copyFile copies src to the new file dst; its errors name neither.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, atomicfile.Cause(err))
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return fmt.Errorf("read %s: %w", src, atomicfile.Cause(err))
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, st.Mode().Perm())
	if err != nil {
		return atomicfile.Cause(err)
	}
	defer out.Close()
	// io.Copy reports which side failed only through the error's path.
	if _, err := io.Copy(out, in); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Path == src {
			return fmt.Errorf("read %s: %w", src, pe.Err)
		}
		return atomicfile.Cause(err)
	}
	if err := out.Sync(); err != nil {
		return atomicfile.Cause(err)
	}
	return atomicfile.Cause(out.Close())
}
