package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// How kernels split their work between goroutines: contiguous chunks
// (parallelFor) or items pulled one at a time (parallelItems). Either way
// the partition, and so every floating-point sum, does not depend on
// scheduling.

// numWorkers returns how many goroutines to use for n work units when each
// goroutine should receive at least minPer units.
func numWorkers(n, minPer int) int {
	if minPer < 1 {
		minPer = 1
	}
	w := runtime.GOMAXPROCS(0)
	if m := n / minPer; m < w {
		w = m
	}
	if w < 1 {
		w = 1
	}
	return w
}

// parallelFor splits [0, n) into numWorkers(n, minPer) contiguous chunks and
// calls fn(chunk, lo, hi) for each, concurrently. It returns when all calls
// have returned.
func parallelFor(n, minPer int, fn func(chunk, lo, hi int)) {
	w := numWorkers(n, minPer)
	if w <= 1 {
		fn(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	size := (n + w - 1) / w
	for c := 1; c < w; c++ {
		lo, hi := c*size, min((c+1)*size, n)
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func(c, lo, hi int) {
			defer wg.Done()
			fn(c, lo, hi)
		}(c, lo, hi)
	}
	fn(0, 0, min(size, n)) // the first chunk on the calling goroutine
	wg.Wait()
}

// parallelItems runs fn(worker, item) for every item in [0, n) on `workers`
// goroutines that pull items dynamically (for unbalanced work such as causal
// attention rows). worker is in [0, workers).
func parallelItems(n, workers int, fn func(worker, item int)) {
	if workers > n {
		workers = n
	}
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(0, i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	work := func(w int) {
		for {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			fn(w, i)
		}
	}
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			work(w)
		}(w)
	}
	work(0) // worker 0 is the calling goroutine
	wg.Wait()
}
