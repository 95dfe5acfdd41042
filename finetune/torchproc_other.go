//go:build !unix

package finetune

import (
	"os"
	"syscall"
)

// torchProcAttr is the launcher's process attributes: none here (no
// process groups to signal).
func torchProcAttr() *syscall.SysProcAttr { return nil }

// stopTorch kills the launcher: without Unix signals there is no gentler
// stop to offer.
func stopTorch(p *os.Process, _ bool) { p.Kill() }
