package kernels

import (
	"math"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
)

// CrossEntropy returns the mean, over the rows t whose target is >= 0, of
// −log softmax(logits[t])[targets[t]]; rows with target −1 (any negative
// value) are ignored. logits is [T, V] and targets has T entries. The result
// is a 1×1 matrix; it is 0 when every target is ignored. The backward pass
// gives (softmax − onehot)/count · gy for counted rows and 0 elsewhere.
func CrossEntropy(logits mat.Tensor, targets []int) mat.Tensor {
	return ag.NewOperator(&crossEntropyFn{logits: logits, targets: cloneInts(targets)}).Run()
}

type crossEntropyFn struct {
	logits        mat.Tensor
	targets       []int
	rows, classes int
	count         int
	lse           []float64 // per row log-sum-exp (NaN for ignored rows)
}

func (f *crossEntropyFn) Operands() []mat.Tensor { return []mat.Tensor{f.logits} }

func (f *crossEntropyFn) Forward() (mat.Tensor, error) {
	x, rows, classes, err := dense("CrossEntropy", "logits", f.logits)
	if err != nil {
		return nil, err
	}
	if len(f.targets) != rows {
		return nil, shapeError("CrossEntropy", "logits has %d rows but %d targets were given", rows, len(f.targets))
	}
	for i, t := range f.targets {
		if t >= classes {
			return nil, shapeError("CrossEntropy", "targets[%d] = %d out of range for %d classes", i, t, classes)
		}
	}
	f.rows, f.classes = rows, classes
	f.lse = make([]float64, rows)
	sum, count := crossEntropyForward(f.lse, x, f.targets, rows, classes)
	f.count = count
	loss := 0.0
	if count > 0 {
		loss = sum / float64(count)
	}
	return mat.NewDense[float32](mat.WithShape(1, 1), mat.WithBacking([]float32{float32(loss)})), nil
}

func (f *crossEntropyFn) Backward(gy mat.Tensor) error {
	if !f.logits.RequiresGrad() {
		return nil
	}
	g := gradData(gy)
	if len(g) != 1 {
		return shapeError("CrossEntropy", "output gradient has %d values, want 1", len(g))
	}
	x, _, _, _ := dense("CrossEntropy", "logits", f.logits)
	dx := make([]float32, len(x))
	if f.count > 0 {
		crossEntropyBackward(dx, x, f.lse, f.targets, f.rows, f.classes, float64(g[0])/float64(f.count))
	}
	accGrad(f.logits, dx)
	return nil
}

// crossEntropyForward records the per-row log-sum-exp of the counted rows
// and returns the sum of their losses and their number.
func crossEntropyForward(lse []float64, x []float32, targets []int, rows, classes int) (float64, int) {
	chunks := numWorkers(rows, rowsPerChunk(classes))
	sums := make([]float64, chunks)
	counts := make([]int, chunks)
	parallelFor(rows, rowsPerChunk(classes), func(c, lo, hi int) {
		for t := lo; t < hi; t++ {
			if targets[t] < 0 {
				lse[t] = math.NaN()
				continue
			}
			xr := x[t*classes : (t+1)*classes]
			l := logSumExp(xr)
			lse[t] = l
			sums[c] += l - float64(xr[targets[t]])
			counts[c]++
		}
	})
	var sum float64
	var count int
	for c := range sums {
		sum += sums[c]
		count += counts[c]
	}
	return sum, count
}

// logSumExp returns log Σ exp(x_j), stable, accumulated in float64.
func logSumExp(x []float32) float64 {
	if len(x) == 0 {
		return math.Inf(-1)
	}
	m := x[0]
	for _, v := range x[1:] {
		if v > m {
			m = v
		}
	}
	m64 := float64(m)
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - m64)
	}
	return m64 + math.Log(s)
}

// crossEntropyBackward sets dx = scale·(softmax − onehot) on counted rows.
func crossEntropyBackward(dx, x []float32, lse []float64, targets []int, rows, classes int, scale float64) {
	parallelFor(rows, rowsPerChunk(classes), func(_, lo, hi int) {
		for t := lo; t < hi; t++ {
			if targets[t] < 0 {
				continue
			}
			xr := x[t*classes : (t+1)*classes]
			dr := dx[t*classes : (t+1)*classes]
			l := lse[t]
			for j, v := range xr {
				dr[j] = float32(scale * math.Exp(float64(v)-l))
			}
			dr[targets[t]] = float32(scale * (math.Exp(float64(xr[targets[t]])-l) - 1))
		}
	})
}
