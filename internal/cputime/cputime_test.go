package cputime

import "testing"

func TestProcess(t *testing.T) {
	if !Measured {
		if Process() != 0 {
			t.Fatal("unmeasured CPU time is not 0")
		}
		t.Skip("CPU time is not measured on this system")
	}
	t0 := Process()
	x := 1.0
	for i := 0; i < 1e7; i++ { // a few milliseconds of work
		x = x*1.0000001 + 1e-9
	}
	if x == 0 {
		t.Log(x)
	}
	if d := Process() - t0; d <= 0 {
		t.Fatalf("CPU time did not advance: %v", d)
	}
}
