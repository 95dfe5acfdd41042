package kernels

import (
	"sync"

	"github.com/nlpodyssey/spago/mat"
)

// Embedding gathers the rows ids of table [vocab, d] into a new matrix
// [len(ids), d]. table may be a frozen *Weight in its stored dtype (its
// rows are decoded to float32). The backward pass scatter-adds the output gradient rows into
// the table gradient (repeated ids accumulate).
//
// spago's AccGrad only accepts a gradient of the operand's full shape, so the
// backward pass materialises a dense [vocab, d] gradient. When the table
// already has a gradient (a tied LM head), that buffer is only added to it:
// its touched rows are cleared and it is kept for the next call, so a
// training step does not allocate and clear a vocabulary-sized matrix.
func Embedding(table mat.Tensor, ids []int) mat.Tensor {
	return run(&embeddingFn{table: table, ids: cloneInts(ids)})
}

type embeddingFn struct {
	output
	table        mat.Tensor
	ids          []int
	vocab, width int
}

func (f *embeddingFn) Operands() []mat.Tensor { return []mat.Tensor{f.table} }

func (f *embeddingFn) Forward() (mat.Tensor, error) {
	if w, ok := f.table.Value().(*Weight); ok {
		return f.forwardWeight(w)
	}
	table, vocab, width, err := dense("Embedding", "table", f.table)
	if err != nil {
		return nil, err
	}
	for i, id := range f.ids {
		if id < 0 || id >= vocab {
			return nil, opError("Embedding", "ids[%d] = %d out of range for a table of %d rows", i, id, vocab)
		}
	}
	f.vocab, f.width = vocab, width
	y := f.keep(newMatrix(len(f.ids), width))
	embeddingGather(y.Data().F32(), table, f.ids, width)
	return y, nil
}

// forwardWeight gathers rows of a stored Weight, decoding them.
func (f *embeddingFn) forwardWeight(w *Weight) (mat.Tensor, error) {
	vocab, width := w.rows, w.cols
	for i, id := range f.ids {
		if id < 0 || id >= vocab {
			return nil, opError("Embedding", "ids[%d] = %d out of range for a table of %d rows", i, id, vocab)
		}
	}
	f.vocab, f.width = vocab, width
	y := f.keep(newMatrix(len(f.ids), width))
	yv := y.Data().F32()
	for i, id := range f.ids {
		w.decodeRows(yv[i*width:(i+1)*width], id, id+1)
	}
	return y, nil
}

func (f *embeddingFn) Backward(gy mat.Tensor) error {
	defer f.releaseGrad()
	if !f.table.RequiresGrad() {
		return nil
	}
	g := gradData(gy)
	if len(g) != len(f.ids)*f.width {
		return opError("Embedding", "output gradient has %d values, want %d", len(g), len(f.ids)*f.width)
	}
	n := f.vocab * f.width
	dt := takeZeroTable(n)
	embeddingScatter(dt, g, f.ids, f.width)
	f.table.AccGrad(ownedDense{wrap(dt, f.table.Shape())})
	// When the table already had a gradient (a tied LM head gives its
	// gradient first), dt was added to it and is free again: clear the rows
	// it touched and keep it, all zero, for the next call.
	if td, ok := f.table.Value().(*mat.Dense[float32]); ok {
		if gd, ok := td.Grad().(*mat.Dense[float32]); ok && gd != nil && n > 0 && &gd.Data().F32()[0] != &dt[0] {
			for _, id := range f.ids {
				clear(dt[id*f.width : (id+1)*f.width])
			}
			keepZeroTable(dt)
		}
	}
	return nil
}

// zeroTables keeps all-zero gradient tables of Embedding, by size: a
// [vocab, width] gradient (154 MB for GPT-2's table) would otherwise be
// allocated and cleared on every backward pass, though a batch touches a
// few thousand rows.
var zeroTables struct {
	sync.Mutex
	free map[int][][]float32
}

// takeZeroTable returns an all-zero buffer of n values.
func takeZeroTable(n int) []float32 {
	zeroTables.Lock()
	if l := zeroTables.free[n]; len(l) > 0 {
		b := l[len(l)-1]
		zeroTables.free[n] = l[:len(l)-1]
		zeroTables.Unlock()
		return b
	}
	zeroTables.Unlock()
	return getF32Zero(n)
}

// keepZeroTable keeps an all-zero buffer for takeZeroTable (one per size).
func keepZeroTable(b []float32) {
	zeroTables.Lock()
	defer zeroTables.Unlock()
	if zeroTables.free == nil {
		zeroTables.free = map[int][][]float32{}
	}
	if len(zeroTables.free[len(b)]) == 0 {
		zeroTables.free[len(b)] = append(zeroTables.free[len(b)], b)
	}
}

// embeddingGather copies table rows ids into y.
func embeddingGather(y, table []float32, ids []int, width int) {
	for i, id := range ids {
		copy(y[i*width:(i+1)*width], table[id*width:(id+1)*width])
	}
}

// embeddingScatter adds row i of g into row ids[i] of dt. Goroutines split
// the columns, so repeated ids never race.
func embeddingScatter(dt, g []float32, ids []int, width int) {
	parallelFor(width, max(1, (1<<14)/max(len(ids), 1)), func(_, lo, hi int) {
		for i, id := range ids {
			addInPlace(dt[id*width+lo:id*width+hi], g[i*width+lo:i*width+hi])
		}
	})
}

// addInPlace sets d += g element-wise.
func addInPlace(d, g []float32) {
	d = d[:len(g)]
	for j, v := range g {
		d[j] += v
	}
}
