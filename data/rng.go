package data

import "math/bits"

// splitMix is the splitmix64 generator: its whole state is one uint64, so
// it can be saved and restored exactly.
type splitMix struct{ state uint64 }

func newSplitMix(seed uint64) *splitMix { return &splitMix{state: seed} }

func (r *splitMix) next() uint64 {
	r.state += 0x9E3779B97F4A7C15
	return mix64(r.state)
}

// mix64 is splitmix64's output function, a bijective 64-bit hash.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// intn returns a uniform integer in [0, n) (Lemire's method with rejection).
func (r *splitMix) intn(n int) int {
	if n <= 0 {
		panic("intn: n <= 0")
	}
	bound := uint64(n)
	for {
		hi, lo := bits.Mul64(r.next(), bound)
		if lo >= bound || lo >= -bound%bound {
			return int(hi)
		}
	}
}
