//go:build unix

package finetune

import (
	"os"
	"syscall"
)

// stopTorch signals the launcher's process group (torchProcAttr made it
// one): SIGTERM, or SIGKILL when kill is true.
func stopTorch(p *os.Process, kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	syscall.Kill(-p.Pid, sig)
}
