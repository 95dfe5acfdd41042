package kernels

import (
	"testing"
	"time"

	"github.com/ssmax/ssmax/internal/cputime"
)

// cpuMeter reports CPU time per operation (robust to other processes
// sharing the machine, unlike ns/op): call start after setup and stop at
// the end of the benchmark. Where CPU time is not measured (see
// cputime.Measured) it reports nothing.
type cpuMeter struct{ t0 time.Duration }

func (m *cpuMeter) start() { m.t0 = cputime.Process() }

func (m *cpuMeter) stop(b *testing.B) {
	if !cputime.Measured {
		return
	}
	b.ReportMetric(float64((cputime.Process()-m.t0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}
