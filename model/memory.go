package model

import (
	"runtime"
	"unsafe"

	"github.com/ssmax/ssmax/checkpoint"
)

// Memory of the weights held in their stored dtype (kernels.Weight). They
// are the bulk of a model and live as long as it does, so they are kept
// outside the Go heap: the garbage collector lets the heap grow to about
// twice what is live before it collects, and counting gigabytes of weights
// as live would let as much garbage (activations of past steps) pile up.
//
// A weightArena holds that memory for one loaded model: either anonymous
// memory the weights were read into (freed with the arena), or, for a model
// opened by Open, the checkpoint itself, whose memory-mapped files the
// weights view without a copy (closed with the arena). Every Weight keeps
// its arena reachable (kernels.NewWeight16's owner), and the arena is
// released by a runtime cleanup once no Weight, and so no slice of its
// memory, is left: nothing else refers to that memory, so the model needs
// no Close.
type weightArena struct {
	// free is the anonymous memory not yet handed out.
	free []byte
}

// newArena returns an arena with size bytes of anonymous memory (none when
// size is 0) and, when owned is not nil, ownership of that checkpoint.
func newArena(size int, owned *checkpoint.Checkpoint) (*weightArena, error) {
	a := &weightArena{}
	if size > 0 {
		mem, release, err := allocOffHeap(size)
		if err != nil {
			return nil, err
		}
		a.free = mem
		if release != nil {
			runtime.AddCleanup(a, func(m []byte) { release(m) }, mem)
		}
	}
	if owned != nil {
		runtime.AddCleanup(a, func(c *checkpoint.Checkpoint) { c.Close() }, owned)
	}
	return a, nil
}

// take returns n bytes of the arena's memory, 8-byte aligned.
func (a *weightArena) take(n int) []byte {
	n8 := (n + 7) &^ 7
	b := a.free[:n:n]
	a.free = a.free[min(n8, len(a.free)):]
	return b
}

// f32View returns b as float32 values (b is 4-byte aligned: it comes from
// allocOffHeap).
func f32View(b []byte) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}
