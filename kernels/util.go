package kernels

import (
	"fmt"
	"log"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
)

// run executes the operation fn. When one of its operands requires a
// gradient it becomes a spago graph node (ag.NewOperator(fn).Run()), as
// usual. Otherwise — inference, with frozen weights — its Forward runs
// directly and the plain result is returned: no node is created, so the
// result does not keep its operands (and through them the whole forward
// pass) alive, and long inputs need memory for a few activations only. A
// Forward error is fatal in both cases, as spago makes it.
func run(fn ag.AutoGradFunction) mat.Tensor {
	for _, op := range fn.Operands() {
		if op != nil && op.RequiresGrad() {
			return ag.NewOperator(fn).Run()
		}
	}
	y, err := fn.Forward()
	if err != nil {
		log.Fatalf("ag: error during forward pass: %v", err)
	}
	return y
}

// output remembers an operation's result, so that its Backward can drop
// the result's gradient once it has used it (releaseGrad). spago keeps
// every node's gradient until the whole graph is garbage; dropping them as
// the backward pass goes, and recycling their buffers for the gradients
// still to come, lowers the peak memory of a training step. (By the time a
// node's Backward runs, every consumer of its result has delivered its
// gradient, so nothing reads it any more. The result's value itself is
// kept: consumers may still be reading it, and callers may read it after
// the backward pass.)
type output struct {
	y *mat.Dense[float32]
	// passedOn is set when Backward handed the gradient buffer itself on
	// to an operand (Add): it then belongs to that operand.
	passedOn bool
}

// keep records y as the result and returns it.
func (o *output) keep(y *mat.Dense[float32]) *mat.Dense[float32] {
	o.y = y
	return y
}

// releaseGrad drops the result's gradient and recycles its buffer, unless
// it was passed on. Every gradient buffer is exclusively its node's: spago
// clones the first gradient it receives, and kernels hand over buffers
// they allocated for the purpose (ownedDense).
func (o *output) releaseGrad() {
	if o.y == nil {
		return
	}
	g, _ := o.y.Grad().(*mat.Dense[float32])
	o.y.ZeroGrad()
	if g != nil && !o.passedOn {
		putF32(g.Data().F32())
	}
}

// dense returns the float32 data and the 2-D shape of t's value.
// op and name are used to build a helpful error message.
func dense(op, name string, t mat.Tensor) ([]float32, int, int, error) {
	if t == nil {
		return nil, 0, 0, fmt.Errorf("kernels.%s: %s is nil", op, name)
	}
	d, ok := t.Value().(*mat.Dense[float32])
	if !ok {
		return nil, 0, 0, fmt.Errorf("kernels.%s: %s must be a *mat.Dense[float32], got %T", op, name, t.Value())
	}
	s := d.Shape()
	return d.Data().F32(), s[0], s[1], nil
}

// vector returns the float32 data of t, which must hold exactly n values
// (a 1×n or n×1 matrix).
func vector(op, name string, t mat.Tensor, n int) ([]float32, error) {
	data, r, c, err := dense(op, name, t)
	if err != nil {
		return nil, err
	}
	if len(data) != n || (r != 1 && c != 1) {
		return nil, fmt.Errorf("kernels.%s: %s must be a vector of %d values (1×%d or %d×1), got [%d,%d]", op, name, n, n, n, r, c)
	}
	return data, nil
}

// gradData returns the float32 data of an output gradient. It is read-only.
func gradData(gy mat.Tensor) []float32 {
	if d, ok := gy.(*mat.Dense[float32]); ok {
		return d.Data().F32()
	}
	return gy.Data().F32()
}

// newMatrix returns a new zeroed float32 matrix [rows, cols].
func newMatrix(rows, cols int) *mat.Dense[float32] {
	return mat.NewDense[float32](mat.WithShape(rows, cols))
}

// wrap returns a float32 matrix backed by data (no copy), shaped like shape.
func wrap(data []float32, shape []int) *mat.Dense[float32] {
	// Copy the shape: spago stores the slice it is given.
	return mat.NewDense[float32](mat.WithShape(append([]int(nil), shape...)...), mat.WithBacking(data))
}

// accGrad accumulates data, shaped like t, into t's gradient. The buffer is
// handed over to spago (see ownedDense): when t has no gradient yet, data
// becomes it without a copy; otherwise it is added to t's gradient and,
// no longer referenced, goes back to the free lists. data must be a buffer
// the caller allocated for this gradient (with make or getF32) and never
// uses again.
func accGrad(t mat.Tensor, data []float32) {
	t.AccGrad(ownedDense{wrap(data, t.Shape())})
	if len(data) == 0 {
		return
	}
	// Dense.Grad does not wait for a pending backward pass (Operator.Grad
	// would): t's gradient is either data or the earlier buffer it was
	// added to, and no later AccGrad can change which.
	if g, ok := t.Value().(*mat.Dense[float32]); ok {
		if gd, ok := g.Grad().(*mat.Dense[float32]); ok && gd != nil {
			if cur := gd.Data().F32(); len(cur) > 0 && &cur[0] != &data[0] {
				putF32(data)
			}
		}
	}
}

// shapeError formats a shape mismatch error.
func shapeError(op, format string, args ...any) error {
	return fmt.Errorf("kernels."+op+": "+format, args...)
}

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

// dot64 returns the float64-accumulated dot product of two equal-length slices.
func dot64(a, b []float32) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += float64(a[i]) * float64(b[i])
		s1 += float64(a[i+1]) * float64(b[i+1])
		s2 += float64(a[i+2]) * float64(b[i+2])
		s3 += float64(a[i+3]) * float64(b[i+3])
	}
	for ; i < len(a); i++ {
		s0 += float64(a[i]) * float64(b[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// dot32 returns the float32 dot product of two equal-length slices.
func dot32(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// cloneInts copies an index slice kept for the backward pass, so that the
// caller may reuse its buffer. nil stays nil.
func cloneInts(x []int) []int {
	if x == nil {
		return nil
	}
	return append(make([]int, 0, len(x)), x...)
}

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

// ownedDense is a gradient whose buffer is handed over to spago: spago's
// AccGrad clones the first gradient it receives (an allocation and a copy
// of the whole matrix); Clone here returns the matrix itself, so the buffer
// becomes the operand's gradient as is. Only buffers the kernel allocated
// for this purpose and never touches again may be handed over.
type ownedDense struct{ *mat.Dense[float32] }

// Clone returns the wrapped matrix without copying.
func (o ownedDense) Clone() mat.Matrix { return o.Dense }
