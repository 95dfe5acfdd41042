//go:build unix && !linux

package finetune

import "syscall"

// torchProcAttr puts the launcher in its own process group (so a cancelled
// run stops it and its workers together).
func torchProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
