package finetune

import "syscall"

// torchProcAttr puts the launcher in its own process group (so a cancelled
// run stops it and its workers together) and has the kernel kill it if
// ssmax dies first.
func torchProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
