package kernels

import (
	"github.com/nlpodyssey/spago/mat"
)

// Embedding gathers the rows ids of table [vocab, d] into a new matrix
// [len(ids), d]. The backward pass scatter-adds the output gradient rows into
// the table gradient (repeated ids accumulate).
//
// spago's AccGrad only accepts a gradient of the operand's full shape, so the
// backward pass materialises one dense [vocab, d] gradient per call.
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
	table, vocab, width, err := dense("Embedding", "table", f.table)
	if err != nil {
		return nil, err
	}
	for i, id := range f.ids {
		if id < 0 || id >= vocab {
			return nil, shapeError("Embedding", "ids[%d] = %d out of range for a table of %d rows", i, id, vocab)
		}
	}
	f.vocab, f.width = vocab, width
	y := f.keep(newMatrix(len(f.ids), width))
	embeddingGather(y.Data().F32(), table, f.ids, width)
	return y, nil
}

func (f *embeddingFn) Backward(gy mat.Tensor) error {
	defer f.releaseGrad()
	if !f.table.RequiresGrad() {
		return nil
	}
	g := gradData(gy)
	if len(g) != len(f.ids)*f.width {
		return shapeError("Embedding", "output gradient has %d values, want %d", len(g), len(f.ids)*f.width)
	}
	dt := getF32Zero(f.vocab * f.width)
	embeddingScatter(dt, g, f.ids, f.width)
	accGrad(f.table, dt)
	return nil
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
			dr := dt[id*width+lo : id*width+hi]
			gr := g[i*width+lo : i*width+hi]
			for j, v := range gr {
				dr[j] += v
			}
		}
	})
}
