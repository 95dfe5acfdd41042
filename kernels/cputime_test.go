package kernels

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter reports CPU time per operation (robust to other processes
// sharing the machine, unlike ns/op): call start after setup and stop at
// the end of the benchmark.
type cpuMeter struct{ t0 time.Duration }

func (m *cpuMeter) start() { m.t0 = cpuTime() }

func (m *cpuMeter) stop(b *testing.B) {
	b.ReportMetric(float64((cpuTime()-m.t0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}
