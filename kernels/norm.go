package kernels

import (
	"math"

	"github.com/nlpodyssey/spago/mat"
)

// LayerNorm normalises every row of x [T, D] to zero mean and unit variance
// (biased variance, eps added inside the square root) and applies the gain
// gamma and shift beta, both holding D values: y = (x−μ)/√(σ²+eps)·γ + β.
func LayerNorm(x, gamma, beta mat.Tensor, eps float32) mat.Tensor {
	return run(&layerNormFn{x: x, gamma: gamma, beta: beta, eps: eps})
}

type layerNormFn struct {
	output
	x, gamma, beta mat.Tensor
	eps            float32
	rows, dim      int
	mean, rstd     []float64 // per row, saved for backward
}

func (f *layerNormFn) Operands() []mat.Tensor { return []mat.Tensor{f.x, f.gamma, f.beta} }

func (f *layerNormFn) Forward() (mat.Tensor, error) {
	x, rows, dim, err := dense("LayerNorm", "x", f.x)
	if err != nil {
		return nil, err
	}
	gamma, err := vector("LayerNorm", "gamma", f.gamma, dim)
	if err != nil {
		return nil, err
	}
	beta, err := vector("LayerNorm", "beta", f.beta, dim)
	if err != nil {
		return nil, err
	}
	f.rows, f.dim = rows, dim
	f.mean = make([]float64, rows)
	f.rstd = make([]float64, rows)
	y := f.keep(newMatrix(rows, dim))
	layerNormForward(y.Data().F32(), x, gamma, beta, f.mean, f.rstd, rows, dim, f.eps)
	return y, nil
}

func (f *layerNormFn) Backward(gy mat.Tensor) error {
	defer f.releaseGrad()
	g := gradData(gy)
	if len(g) != f.rows*f.dim {
		return opError("LayerNorm", "output gradient has %d values, want %d", len(g), f.rows*f.dim)
	}
	x, _, _, _ := dense("LayerNorm", "x", f.x)
	gamma, _, _, _ := dense("LayerNorm", "gamma", f.gamma)
	var dx, dgamma, dbeta []float32
	if f.x.RequiresGrad() {
		dx = getF32(len(x))
	}
	if f.gamma.RequiresGrad() {
		dgamma = make([]float32, f.dim)
	}
	if f.beta.RequiresGrad() {
		dbeta = make([]float32, f.dim)
	}
	layerNormBackward(dx, dgamma, dbeta, g, x, gamma, f.mean, f.rstd, f.rows, f.dim)
	if dx != nil {
		accGrad(f.x, dx)
	}
	if dgamma != nil {
		accGrad(f.gamma, dgamma)
	}
	if dbeta != nil {
		accGrad(f.beta, dbeta)
	}
	return nil
}

// rowsPerChunk is the minimum number of rows handed to one goroutine by the
// row-wise kernels, scaled so that a chunk is at least ~32k elements.
func rowsPerChunk(dim int) int {
	return max(1, (1<<15)/max(dim, 1))
}

// layerNormForward computes y = (x−μ)·rstd·γ + β per row and records μ and
// rstd = 1/√(σ²+eps) per row.
func layerNormForward(y, x, gamma, beta []float32, mean, rstd []float64, rows, dim int, eps float32) {
	parallelFor(rows, rowsPerChunk(dim), func(_, lo, hi int) {
		for t := lo; t < hi; t++ {
			mean[t], rstd[t] = layerNormRow(y[t*dim:(t+1)*dim], x[t*dim:(t+1)*dim], gamma, beta, eps)
		}
	})
}

// layerNormRow normalises one row x into y and returns its mean and rstd.
func layerNormRow(y, x, gamma, beta []float32, eps float32) (mu, r float64) {
	y, gamma, beta = y[:len(x)], gamma[:len(x)], beta[:len(x)]
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	mu = s / float64(len(x))
	var ss float64
	for _, v := range x {
		d := float64(v) - mu
		ss += d * d
	}
	r = 1 / math.Sqrt(ss/float64(len(x))+float64(eps))
	for j, v := range x {
		y[j] = float32((float64(v)-mu)*r)*gamma[j] + beta[j]
	}
	return mu, r
}

// normBlock is the number of rows whose gain/bias gradients a norm's
// backward pass sums into one partial vector. The partials are then added
// in block order: a fixed partition, so the result does not depend on the
// number of cores.
const normBlock = 32

// layerNormBackward computes the gradients of LayerNorm. Any of dx, dgamma,
// dbeta may be nil when not needed; dx is overwritten, dgamma/dbeta too.
func layerNormBackward(dx, dgamma, dbeta, gy, x, gamma []float32, mean, rstd []float64, rows, dim int) {
	normBackward(rows, dim, dgamma, dbeta, func(t int, dg, db []float64) {
		layerNormBackwardRow(rowOf(dx, t, dim), dg, db, gy[t*dim:(t+1)*dim], x[t*dim:(t+1)*dim], gamma, mean[t], rstd[t])
	})
}

// normBackward runs a norm's backward pass, row(t, dg, db) for every row
// t: dg and db are the partial gain and bias gradients of t's block of
// normBlock rows, for row to add to (nil when dgamma, dbeta are nil).
// Blocks run in parallel, the rows of a block in order; the partials are
// then summed into dgamma and dbeta in block order (see normBlock).
func normBackward(rows, dim int, dgamma, dbeta []float32, row func(t int, dg, db []float64)) {
	blocks := (rows + normBlock - 1) / normBlock
	var pg, pb []float64 // per-block partial dgamma, dbeta: [blocks][dim]
	if dgamma != nil {
		pg = getF64Zero(blocks * dim)
	}
	if dbeta != nil {
		pb = getF64Zero(blocks * dim)
	}
	parallelFor(blocks, max(1, rowsPerChunk(dim)/normBlock), func(_, lo, hi int) {
		for b := lo; b < hi; b++ {
			var dg, db []float64
			if pg != nil {
				dg = pg[b*dim : (b+1)*dim]
			}
			if pb != nil {
				db = pb[b*dim : (b+1)*dim]
			}
			for t := b * normBlock; t < min((b+1)*normBlock, rows); t++ {
				row(t, dg, db)
			}
		}
	})
	reduceBlocks(dgamma, pg, blocks, dim)
	reduceBlocks(dbeta, pb, blocks, dim)
	putF64(pg)
	putF64(pb)
}

// rowOf returns row t of a [rows, dim] matrix, or nil when m is nil.
func rowOf(m []float32, t, dim int) []float32 {
	if m == nil {
		return nil
	}
	return m[t*dim : (t+1)*dim]
}

// layerNormBackwardRow is LayerNorm's backward pass for one row: it adds
// the row's contributions to dg and db (when not nil) and sets dx (when
// not nil).
func layerNormBackwardRow(dx []float32, dg, db []float64, gy, x, gamma []float32, mu, r float64) {
	gy, gamma = gy[:len(x)], gamma[:len(x)]
	var sdh, sdhx float64 // Σ dxhat, Σ dxhat·xhat
	for j, v := range x {
		xh := (float64(v) - mu) * r
		g := float64(gy[j])
		dh := g * float64(gamma[j])
		sdh += dh
		sdhx += dh * xh
	}
	if dg != nil {
		dg = dg[:len(x)]
		for j, v := range x {
			dg[j] += float64(gy[j]) * ((float64(v) - mu) * r)
		}
	}
	if db != nil {
		db = db[:len(x)]
		for j, g := range gy {
			db[j] += float64(g)
		}
	}
	if dx == nil {
		return
	}
	dx = dx[:len(x)]
	n := float64(len(x))
	mdh, mdhx := sdh/n, sdhx/n
	for j, v := range x {
		xh := (float64(v) - mu) * r
		dh := float64(gy[j]) * float64(gamma[j])
		dx[j] = float32(r * (dh - mdh - xh*mdhx))
	}
}

// reduceBlocks sets dst to the sum, in block order, of the partial vectors
// parts [blocks][len(dst)] (nothing when dst is nil).
func reduceBlocks(dst []float32, parts []float64, blocks, dim int) {
	if dst == nil {
		return
	}
	for j := range dst {
		var s float64
		for b := 0; b < blocks; b++ {
			s += parts[b*dim+j]
		}
		dst[j] = float32(s)
	}
}

// RMSNorm normalises every row of x [T, D] by its root mean square and
// applies the gain gamma (D values): y = x/√(mean(x²)+eps)·γ (Llama).
func RMSNorm(x, gamma mat.Tensor, eps float32) mat.Tensor {
	return run(&rmsNormFn{op: "RMSNorm", x: x, gamma: gamma, eps: eps})
}

// RMSNormOffset is RMSNorm with the gain offset+γ: y = x/√(mean(x²)+eps)·
// (offset+γ), the sum offset+γ computed in float32 (Gemma's (1+w), as
// Hugging Face computes it in float32). The gradient of gamma is that of
// the gain. An offset of 0 is RMSNorm.
func RMSNormOffset(x, gamma mat.Tensor, eps, offset float32) mat.Tensor {
	return run(&rmsNormFn{op: "RMSNormOffset", x: x, gamma: gamma, eps: eps, offset: offset})
}

// HeadRMSNorm applies RMSNorm independently to every head slice of x
// [T, heads*headDim], with a gain gamma of headDim values shared by all heads
// (Qwen3 q_norm / k_norm).
func HeadRMSNorm(x, gamma mat.Tensor, heads, headDim int, eps float32) mat.Tensor {
	return run(&rmsNormFn{op: "HeadRMSNorm", perHead: true, x: x, gamma: gamma, eps: eps, heads: heads, headDim: headDim})
}

// HeadRMSNormOffset is HeadRMSNorm with the gain offset+γ (see
// RMSNormOffset; Gemma 3's q_norm / k_norm).
func HeadRMSNormOffset(x, gamma mat.Tensor, heads, headDim int, eps, offset float32) mat.Tensor {
	return run(&rmsNormFn{op: "HeadRMSNormOffset", perHead: true, x: x, gamma: gamma, eps: eps, offset: offset, heads: heads, headDim: headDim})
}

type rmsNormFn struct {
	output
	op             string // name used in error messages
	perHead        bool   // HeadRMSNorm: normalise each head slice
	x, gamma       mat.Tensor
	eps            float32
	offset         float32 // the gain is offset+γ
	heads, headDim int     // HeadRMSNorm only
	rows, dim      int     // normalised vectors: rows × dim
	rstd           []float64
}

func (f *rmsNormFn) Operands() []mat.Tensor { return []mat.Tensor{f.x, f.gamma} }

func (f *rmsNormFn) Forward() (mat.Tensor, error) {
	x, r, c, err := dense(f.op, "x", f.x)
	if err != nil {
		return nil, err
	}
	f.rows, f.dim = r, c
	if f.perHead {
		if f.heads <= 0 || f.headDim <= 0 || f.heads*f.headDim != c {
			return nil, opError(f.op, "x is [%d,%d], want %d columns (heads=%d × headDim=%d)", r, c, f.heads*f.headDim, f.heads, f.headDim)
		}
		// Head slices are contiguous: view x as [T*heads, headDim].
		f.rows, f.dim = r*f.heads, f.headDim
	}
	gamma, err := vector(f.op, "gamma", f.gamma, f.dim)
	if err != nil {
		return nil, err
	}
	f.rstd = make([]float64, f.rows)
	y := f.keep(newMatrix(r, c))
	gain := f.gain(gamma)
	rmsNormForward(y.Data().F32(), x, gain, f.rstd, f.rows, f.dim, f.eps)
	f.putGain(gain, gamma)
	return y, nil
}

func (f *rmsNormFn) Backward(gy mat.Tensor) error {
	defer f.releaseGrad()
	g := gradData(gy)
	if len(g) != f.rows*f.dim {
		return opError(f.op, "output gradient has %d values, want %d", len(g), f.rows*f.dim)
	}
	x, _, _, _ := dense(f.op, "x", f.x)
	gamma, _, _, _ := dense(f.op, "gamma", f.gamma)
	var dx, dgamma []float32
	if f.x.RequiresGrad() {
		dx = getF32(len(x))
	}
	if f.gamma.RequiresGrad() {
		dgamma = make([]float32, f.dim)
	}
	gain := f.gain(gamma)
	rmsNormBackward(dx, dgamma, g, x, gain, f.rstd, f.rows, f.dim)
	f.putGain(gain, gamma)
	if dx != nil {
		accGrad(f.x, dx)
	}
	if dgamma != nil {
		accGrad(f.gamma, dgamma)
	}
	return nil
}

// gain returns the gain offset+γ (γ itself when the offset is 0).
func (f *rmsNormFn) gain(gamma []float32) []float32 {
	if f.offset == 0 {
		return gamma
	}
	g := getF32(len(gamma))
	for j, v := range gamma {
		g[j] = f.offset + v
	}
	return g
}

// putGain releases a gain returned by gain.
func (f *rmsNormFn) putGain(gain, gamma []float32) {
	if f.offset != 0 {
		putF32(gain)
	}
}

// rmsNormForward computes y = x·rstd·γ per row of length dim and records
// rstd = 1/√(mean(x²)+eps) per row.
func rmsNormForward(y, x, gamma []float32, rstd []float64, rows, dim int, eps float32) {
	parallelFor(rows, rowsPerChunk(dim), func(_, lo, hi int) {
		for t := lo; t < hi; t++ {
			xr := x[t*dim : (t+1)*dim]
			yr := y[t*dim : (t+1)*dim]
			r := 1 / math.Sqrt(dot64(xr, xr)/float64(dim)+float64(eps))
			rstd[t] = r
			for j, v := range xr {
				yr[j] = float32(float64(v)*r) * gamma[j]
			}
		}
	})
}

// rmsNormBackward computes the gradients of RMSNorm; dx and dgamma may be
// nil. The gain gradient is summed over fixed blocks of rows, then over the
// blocks in order (see normBackward).
func rmsNormBackward(dx, dgamma, gy, x, gamma []float32, rstd []float64, rows, dim int) {
	normBackward(rows, dim, dgamma, nil, func(t int, dg, _ []float64) {
		rmsNormBackwardRow(rowOf(dx, t, dim), dg, gy[t*dim:(t+1)*dim], x[t*dim:(t+1)*dim], gamma, rstd[t])
	})
}

// rmsNormBackwardRow is RMSNorm's backward pass for one row.
func rmsNormBackwardRow(dx []float32, dg []float64, gy, x, gamma []float32, r float64) {
	gy, gamma = gy[:len(x)], gamma[:len(x)]
	var sdhx float64 // Σ dxhat·xhat
	for j, v := range x {
		sdhx += float64(gy[j]) * float64(gamma[j]) * (float64(v) * r)
	}
	if dg != nil {
		dg = dg[:len(x)]
		for j, v := range x {
			dg[j] += float64(gy[j]) * (float64(v) * r)
		}
	}
	if dx == nil {
		return
	}
	dx = dx[:len(x)]
	m := sdhx / float64(len(x))
	for j, v := range x {
		xh := float64(v) * r
		dh := float64(gy[j]) * float64(gamma[j])
		dx[j] = float32(r * (dh - xh*m))
	}
}
