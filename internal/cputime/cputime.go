// Package cputime measures the CPU time the process has used, for
// benchmarks on a shared machine: CPU time per operation is steadier than
// wall time when other processes compete for the cores.
package cputime

import "time"

// Process returns the user plus system CPU time the process has used so
// far, all threads together; 0 where it is not measured (see Measured).
func Process() time.Duration { return process() }

// Measured reports whether Process measures CPU time on this system.
const Measured = measured
