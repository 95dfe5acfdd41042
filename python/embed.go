// Package python carries ssmax's PyTorch engine, the Python package
// ssmax_torch, inside the ssmax binary: `ssmax finetune --engine torch`
// writes it out next to the run and puts it on PYTHONPATH, so the Python
// code always matches the Go code that prepared the run.
package python

import "embed"

// Files holds ssmax_torch/*.py (not its tests).
//
//go:embed ssmax_torch/*.py
var Files embed.FS
