//go:build !unix

package kernels

import "time"

// processCPU is not measured here.
func processCPU() time.Duration { return 0 }
