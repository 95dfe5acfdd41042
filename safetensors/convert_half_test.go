package safetensors

import (
	"encoding/binary"
	"math"
	"testing"
)

// TestConvertHalfExhaustive converts every 16-bit pattern between F16 and
// BF16 with convertHalf, in every position of a group of four and in the
// tail, and compares with decoding to float32 and encoding.
func TestConvertHalfExhaustive(t *testing.T) {
	pairs := []struct {
		from, to DType
		ref      func(uint16) uint16
	}{
		{BF16, F16, func(h uint16) uint16 { return Float32ToF16(BF16ToFloat32(h)) }},
		{F16, BF16, func(h uint16) uint16 { return Float32ToBF16(F16ToFloat32(h)) }},
	}
	for _, p := range pairs {
		for _, shift := range []int{0, 1, 2, 3} {
			// 65536 values plus shift normal fillers in front, so that each
			// value is tried in each lane and the count is not always a
			// multiple of four (tail).
			src := make([]byte, 2*(1<<16+shift))
			for i := range shift {
				binary.LittleEndian.PutUint16(src[2*i:], 0x3c00)
			}
			for i := range 1 << 16 {
				binary.LittleEndian.PutUint16(src[2*(shift+i):], uint16(i))
			}
			dst := make([]byte, len(src))
			if !convertHalf(p.from, p.to, src, dst) {
				t.Fatalf("%s->%s: not handled", p.from, p.to)
			}
			for i := range len(src) / 2 {
				h := binary.LittleEndian.Uint16(src[2*i:])
				if got, want := binary.LittleEndian.Uint16(dst[2*i:]), p.ref(h); got != want {
					t.Fatalf("%s->%s shift %d: %#04x -> %#04x, want %#04x", p.from, p.to, shift, h, got, want)
				}
			}
		}
	}
	if convertHalf(F32, F16, nil, nil) || convertHalf(BF16, BF16, nil, nil) {
		t.Error("convertHalf handled a pair it should not")
	}
}

func BenchmarkConvertHalf(b *testing.B) {
	src := make([]byte, 1<<20)
	for i := 0; i < len(src); i += 2 {
		binary.LittleEndian.PutUint16(src[i:], uint16(i*2654435761>>7)&0x807f|uint16(119+i%4)<<7)
	}
	dst := make([]byte, len(src))
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		convertHalf(BF16, F16, src, dst)
	}
}

// TestBulkLoops checks the four-at-a-time loops of DecodeFloat32 and
// EncodeFloat32 against the scalar functions: every F16 and BF16 pattern,
// and every F32 sign/exponent/top mantissa bits combined with low mantissa
// bits at and around the F16 and BF16 rounding points, in every lane.
func TestBulkLoops(t *testing.T) {
	for _, dt := range []DType{F16, BF16} {
		src := make([]byte, 2*(1<<16+3))
		for i := range 1<<16 + 3 {
			binary.LittleEndian.PutUint16(src[2*i:], uint16(i))
		}
		got := make([]float32, len(src)/2)
		if err := DecodeFloat32(dt, src, got); err != nil {
			t.Fatal(err)
		}
		for i, v := range got {
			h := binary.LittleEndian.Uint16(src[2*i:])
			want := F16ToFloat32(h)
			if dt == BF16 {
				want = BF16ToFloat32(h)
			}
			if math.Float32bits(v) != math.Float32bits(want) {
				t.Fatalf("decode %s %#04x = %#08x, want %#08x", dt, h, math.Float32bits(v), math.Float32bits(want))
			}
		}
	}
	lows := []uint32{0, 1, 0xfff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x2fff, 0x3000, 0x3001, 0x7fff, 0x8000, 0x8001, 0xf000, 0xffff}
	vals := make([]float32, 0, 1<<16*len(lows)+3)
	for hi := range uint32(1 << 16) {
		for _, lo := range lows {
			vals = append(vals, math.Float32frombits(hi<<16|lo))
		}
	}
	vals = append(vals, 1, 2, 3) // a tail
	for _, dt := range []DType{F16, BF16} {
		out := make([]byte, 2*len(vals))
		if err := EncodeFloat32(dt, vals, out); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			want := Float32ToF16(v)
			if dt == BF16 {
				want = Float32ToBF16(v)
			}
			if got := binary.LittleEndian.Uint16(out[2*i:]); got != want {
				t.Fatalf("encode %s %#08x = %#04x, want %#04x", dt, math.Float32bits(v), got, want)
			}
		}
	}
}
