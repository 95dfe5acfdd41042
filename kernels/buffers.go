package kernels

import (
	"math/bits"
	"sync"
	"unsafe"
)

// Scratch buffers. Kernels borrow their temporary float32 (and float64)
// buffers — packed operands, tiles, values kept between a forward and a
// backward pass — from free lists instead of allocating them on every call:
// a training step calls each kernel dozens of times with the same shapes.
// Unlike sync.Pool, the lists survive garbage collections (which happen
// about once per training step); they keep at most poolMaxBytes. Sizes are
// rounded up to size classes (sizeClass). Gradient buffers handed to spago
// may come from here: they come back when the node that receives them has
// used them (accGrad, output.releaseGrad), or are garbage collected.

// poolMaxBytes bounds the memory kept in the free lists.
const poolMaxBytes = 512 << 20

type freeLists[T float32 | float64] struct {
	mu      sync.Mutex
	classes [512]freeClass[T]
	bytes   int
}

// freeClass is the free list of one size class. Buffers of that size that
// the lists never gave out (a gradient spago or the matrix product
// allocated, released by a kernel) may come back too; a class keeps at
// most as many buffers as were ever out at once (hw), so the lists hold
// the working set of a training step, not an ever-growing collection.
type freeClass[T float32 | float64] struct {
	list    [][]T
	out, hw int // buffers given out and not returned; the most ever out
}

var (
	f32Free freeLists[float32]
	f64Free freeLists[float64]
)

// sizeClass returns the class of a buffer of n values and its capacity:
// eight classes per power of two (at most 12.5% unused), 8 values at least.
func sizeClass(n int) (class, size int) {
	if n <= 8 {
		return 0, 8
	}
	c := bits.Len(uint(n-1)) - 1 // 2^c < n <= 2^(c+1)
	step := 1 << (c - 3)
	k := (n - 1<<c + step - 1) / step // 1..8
	return (c-3)*8 + k, 1<<c + k*step
}

func (f *freeLists[T]) get(n int) []T {
	if n <= 0 {
		return nil
	}
	c, size := sizeClass(n)
	f.mu.Lock()
	fc := &f.classes[c]
	fc.out++
	fc.hw = max(fc.hw, fc.out)
	if l := fc.list; len(l) > 0 {
		b := l[len(l)-1]
		fc.list = l[:len(l)-1]
		f.bytes -= size * int(unsafe.Sizeof(T(0)))
		f.mu.Unlock()
		return b[:n]
	}
	f.mu.Unlock()
	return make([]T, n, size)
}

func (f *freeLists[T]) put(b []T) {
	if cap(b) == 0 {
		return
	}
	c, size := sizeClass(cap(b))
	if size != cap(b) {
		return // not a size class: leave it to the garbage collector
	}
	bytes := size * int(unsafe.Sizeof(T(0)))
	f.mu.Lock()
	fc := &f.classes[c]
	fc.out = max(fc.out-1, 0)
	if len(fc.list) < fc.hw && f.bytes+bytes <= poolMaxBytes {
		fc.list = append(fc.list, b[:size])
		f.bytes += bytes
	}
	f.mu.Unlock()
}

// getF32 returns a buffer of n float32 values with undefined contents.
func getF32(n int) []float32 { return f32Free.get(n) }

// getF32Zero returns a zeroed buffer of n float32 values.
func getF32Zero(n int) []float32 {
	b := getF32(n)
	clear(b)
	return b
}

// putF32 returns a buffer obtained from getF32 to its free list.
func putF32(b []float32) { f32Free.put(b) }

// getF64Zero returns a zeroed buffer of n float64 values.
func getF64Zero(n int) []float64 {
	b := f64Free.get(n)
	clear(b)
	return b
}

// putF64 returns a buffer obtained from getF64Zero to its free list.
func putF64(b []float64) { f64Free.put(b) }

// FreeScratch empties the free lists of scratch buffers, so that the
// garbage collector reclaims them. The lists keep buffers by size class,
// which suits repeated calls with the same shapes (a training step); a
// sequence of calls with growing operands (attention over a key cache
// that grows chunk by chunk) would otherwise leave one buffer in every
// size class it went through, up to poolMaxBytes. Callers of such
// sequences (model's layer-by-layer pass, the decoder's prefill) call it
// between steps. Buffers given out stay valid.
func FreeScratch() {
	f32Free.clear()
	f64Free.clear()
}

func (f *freeLists[T]) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.classes {
		f.classes[i].list = nil
	}
	f.bytes = 0
}
