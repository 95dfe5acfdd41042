package safetensors

import (
	"encoding/binary"
	"math"
	"os"
	"testing"
)

// TestPortableLoops runs the exhaustive bulk-loop tests with the assembly
// loops turned off, so that both paths are checked on machines that have
// them (the tests themselves run whichever path the machine uses).
func TestPortableLoops(t *testing.T) {
	if !halfAsm {
		t.Skip("no assembly loops here: the other tests check the portable ones")
	}
	halfAsm = false
	defer func() { halfAsm = true }()
	t.Run("ConvertHalfExhaustive", TestConvertHalfExhaustive)
	t.Run("BulkLoops", TestBulkLoops)
}

// TestEncodeAllFloat32 encodes every one of the 2^32 F32 patterns to F16
// and BF16 with the bulk loops and compares with the scalar functions. It
// takes about a minute, so it runs only with SSMAX_TEST_ALL_FLOAT32=1.
func TestEncodeAllFloat32(t *testing.T) {
	if os.Getenv("SSMAX_TEST_ALL_FLOAT32") != "1" {
		t.Skip("set SSMAX_TEST_ALL_FLOAT32=1 to encode all 2^32 float32 patterns")
	}
	const chunk = 1 << 20
	src := make([]float32, chunk)
	out := make([]byte, 2*chunk)
	for _, dt := range []DType{F16, BF16} {
		scalar := Float32ToF16
		if dt == BF16 {
			scalar = Float32ToBF16
		}
		for base := uint64(0); base < 1<<32; base += chunk {
			for i := range src {
				src[i] = math.Float32frombits(uint32(base) + uint32(i))
			}
			if err := EncodeFloat32(dt, src, out); err != nil {
				t.Fatal(err)
			}
			for i, v := range src {
				if got, want := binary.LittleEndian.Uint16(out[2*i:]), scalar(v); got != want {
					t.Fatalf("%s: %#08x encodes to %#04x, want %#04x", dt, math.Float32bits(v), got, want)
				}
			}
		}
	}
}
