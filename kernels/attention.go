package kernels

import (
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/ag"
	"github.com/nlpodyssey/spago/mat"
)

// AttentionConfig describes the geometry and scaling of Attention and
// AttendCached.
type AttentionConfig struct {
	// Heads is the number of query heads; KVHeads the number of key/value
	// heads (KVHeads must divide Heads: Heads == KVHeads is standard
	// multi-head attention, KVHeads == 1 multi-query attention). Query head h
	// reads kv head h/(Heads/KVHeads).
	Heads, KVHeads int
	// HeadDim is the size of one head.
	HeadDim int
	// Mode selects the logit scale (see Scale).
	Mode Mode
	// Segments lists the start row of every document/sequence packed in the
	// input, sorted strictly ascending with Segments[0] == 0. nil (or empty)
	// means a single document. Attention never crosses a segment start.
	Segments []int
	// Window is reserved for sliding-window attention. It must be 0: a
	// non-zero value is rejected rather than silently ignored.
	Window int
}

// Validate checks the configuration for inputs with the given number of
// token rows (segment starts must be < rows; pass rows <= 0 to skip that
// check).
func (c AttentionConfig) Validate(rows int) error {
	if c.Heads <= 0 || c.KVHeads <= 0 || c.HeadDim <= 0 {
		return fmt.Errorf("attention config: Heads (%d), KVHeads (%d) and HeadDim (%d) must be positive", c.Heads, c.KVHeads, c.HeadDim)
	}
	if c.Heads%c.KVHeads != 0 {
		return fmt.Errorf("attention config: KVHeads (%d) must divide Heads (%d)", c.KVHeads, c.Heads)
	}
	if !c.Mode.Valid() {
		return fmt.Errorf("attention config: invalid mode %v", c.Mode)
	}
	if c.Window != 0 {
		return fmt.Errorf("attention config: sliding-window attention (Window=%d) is not implemented", c.Window)
	}
	if len(c.Segments) > 0 {
		if c.Segments[0] != 0 {
			return fmt.Errorf("attention config: Segments[0] must be 0, got %d", c.Segments[0])
		}
		for i := 1; i < len(c.Segments); i++ {
			if c.Segments[i] <= c.Segments[i-1] {
				return fmt.Errorf("attention config: Segments must be strictly ascending, got Segments[%d]=%d after %d", i, c.Segments[i], c.Segments[i-1])
			}
		}
		if last := c.Segments[len(c.Segments)-1]; rows > 0 && last >= rows {
			return fmt.Errorf("attention config: segment start %d is not below the %d rows", last, rows)
		}
	}
	return nil
}

// rowStarts returns, for every row, the first row of its segment.
func (c AttentionConfig) rowStarts(rows int) []int {
	starts := make([]int, rows)
	seg := 0
	for t := range starts {
		for seg+1 < len(c.Segments) && c.Segments[seg+1] <= t {
			seg++
		}
		if len(c.Segments) > 0 {
			starts[t] = c.Segments[seg]
		}
	}
	return starts
}

// Attention returns causal multi-head attention with the logit scale of
// cfg.Mode. q is [T, Heads*HeadDim]; k and v are [T, KVHeads*HeadDim]; the
// result is [T, Heads*HeadDim].
//
// For query row t of head h in the segment starting at row a, keys j range
// over [a, t] and n = t−a+1. With z_tj = q_t·k_j/√HeadDim, the logits are
// l_tj = c_t·z_tj where c_t = Scale(cfg.Mode, s[h], b[h], n), and
// out_t = Σ_j softmax_j(l_t)·v_j.
//
// s and b hold one value per query head (a 1×Heads or Heads×1 matrix). s is
// required by SSMax and Bias, b by Bias; otherwise they are ignored and may be
// nil. Gradients flow to q, k, v, s and b.
//
// Memory is O(T·HeadDim): no [T,T] matrix is built. The forward pass keeps
// only the log-sum-exp and the scale of every (head, row); the backward pass
// recomputes the probabilities row by row.
func Attention(q, k, v, s, b mat.Tensor, cfg AttentionConfig) mat.Tensor {
	return ag.NewOperator(&attentionFn{q: q, k: k, v: v, s: s, b: b, cfg: cfg}).Run()
}

type attentionFn struct {
	q, k, v, s, b mat.Tensor
	cfg           AttentionConfig
	rows          int
	out           []float32
	lse           []float64 // [Heads*T], index h*T+t
	scales        []float32 // [Heads*T]
	starts        []int
}

func (f *attentionFn) Operands() []mat.Tensor {
	ops := []mat.Tensor{f.q, f.k, f.v}
	if f.cfg.Mode.UsesS() && f.s != nil {
		ops = append(ops, f.s)
	}
	if f.cfg.Mode.UsesB() && f.b != nil {
		ops = append(ops, f.b)
	}
	return ops
}

// params returns the s and b values required by the mode (nil otherwise).
func (f *attentionFn) params() (s, b []float32, err error) {
	if f.cfg.Mode.UsesS() {
		if s, err = vector("Attention", "s", f.s, f.cfg.Heads); err != nil {
			return nil, nil, err
		}
	}
	if f.cfg.Mode.UsesB() {
		if b, err = vector("Attention", "b", f.b, f.cfg.Heads); err != nil {
			return nil, nil, err
		}
	}
	return s, b, nil
}

func (f *attentionFn) Forward() (mat.Tensor, error) {
	cfg := f.cfg
	q, qr, qc, err := dense("Attention", "q", f.q)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(qr); err != nil {
		return nil, fmt.Errorf("kernels.Attention: %w", err)
	}
	k, kr, kc, err := dense("Attention", "k", f.k)
	if err != nil {
		return nil, err
	}
	v, vr, vc, err := dense("Attention", "v", f.v)
	if err != nil {
		return nil, err
	}
	qw, kw := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	if qc != qw || kc != kw || vc != kw || kr != qr || vr != qr {
		return nil, shapeError("Attention", "q is [%d,%d], k is [%d,%d], v is [%d,%d]; want q [T,%d] and k, v [T,%d] (Heads=%d, KVHeads=%d, HeadDim=%d)",
			qr, qc, kr, kc, vr, vc, qw, kw, cfg.Heads, cfg.KVHeads, cfg.HeadDim)
	}
	s, b, err := f.params()
	if err != nil {
		return nil, err
	}
	f.rows = qr
	f.starts = cfg.rowStarts(qr)
	f.lse = make([]float64, cfg.Heads*qr)
	f.scales = make([]float32, cfg.Heads*qr)
	y := newMatrix(qr, qw)
	f.out = y.Data().F32()
	attentionForward(f.out, q, k, v, f.lse, f.scales, f.starts, s, b, cfg)
	return y, nil
}

func (f *attentionFn) Backward(gy mat.Tensor) error {
	cfg := f.cfg
	g := gradData(gy)
	if len(g) != len(f.out) {
		return shapeError("Attention", "output gradient has %d values, want %d", len(g), len(f.out))
	}
	q, _, _, _ := dense("Attention", "q", f.q)
	k, _, _, _ := dense("Attention", "k", f.k)
	v, _, _, _ := dense("Attention", "v", f.v)
	dq := make([]float32, len(q))
	dk := make([]float32, len(k))
	dv := make([]float32, len(v))
	dc := make([]float64, cfg.Heads)  // Σ_t dL/dc_t·ln(n_t)
	dc1 := make([]float64, cfg.Heads) // Σ_t dL/dc_t
	attentionBackward(dq, dk, dv, dc, dc1, g, f.out, q, k, v, f.lse, f.scales, f.starts, cfg)
	if f.q.RequiresGrad() {
		accGrad(f.q, dq)
	}
	if f.k.RequiresGrad() {
		accGrad(f.k, dk)
	}
	if f.v.RequiresGrad() {
		accGrad(f.v, dv)
	}
	if cfg.Mode.UsesS() && f.s.RequiresGrad() {
		accGrad(f.s, toFloat32(dc))
	}
	if cfg.Mode.UsesB() && f.b.RequiresGrad() {
		accGrad(f.b, toFloat32(dc1))
	}
	return nil
}

func toFloat32(x []float64) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(v)
	}
	return y
}

// attnBlock is the number of query rows per work item of the forward pass.
const attnBlock = 16

// attentionForward computes the attention output rows into out and records
// the log-sum-exp and scale of every (head, row) in lse and scales
// (index h*T+t). starts[t] is the first row of t's segment.
func attentionForward(out, q, k, v []float32, lse []float64, scales []float32, starts []int, s, b []float32, cfg AttentionConfig) {
	T := len(starts)
	H, d := cfg.Heads, cfg.HeadDim
	group := H / cfg.KVHeads
	qw, kw := H*d, cfg.KVHeads*d
	invSqrt := 1 / math.Sqrt(float64(d))
	maxLen := 0
	for t, a := range starts {
		maxLen = max(maxLen, t-a+1)
	}
	nb := (T + attnBlock - 1) / attnBlock
	items := H * nb
	workers := numWorkers(items, 1)
	if T*maxLen*H*d < 1<<15 {
		workers = 1
	}
	scores := make([][]float64, workers)
	accs := make([][]float64, workers)
	for w := range scores {
		scores[w] = make([]float64, maxLen)
		accs[w] = make([]float64, d)
	}
	parallelItems(items, workers, func(w, item int) {
		h, blk := item/nb, item%nb
		kvo := (h / group) * d
		var sh, bh float32
		if s != nil {
			sh = s[h]
		}
		if b != nil {
			bh = b[h]
		}
		for t := blk * attnBlock; t < min((blk+1)*attnBlock, T); t++ {
			a := starts[t]
			c := Scale(cfg.Mode, sh, bh, t-a+1)
			o := t*qw + h*d
			lse[h*T+t] = attendRow(out[o:o+d], q[o:o+d], k, v, kw, kvo, a, t, c, invSqrt, scores[w], accs[w])
			scales[h*T+t] = c
		}
	})
}

// attendRow computes one attention output row o for the query row qr over
// key/value rows j0..j1 (inclusive) of k and v (row stride kw, head column
// offset kvo), with logit scale c. scores (≥ j1−j0+1) and acc (len(o)) are
// scratch. It returns the log-sum-exp of the logits. Attention and
// AttendCached share it, so their outputs agree bit for bit.
func attendRow(o, qr, k, v []float32, kw, kvo, j0, j1 int, c float32, invSqrt float64, scores, acc []float64) float64 {
	d := len(qr)
	sc := scores[:j1-j0+1]
	c64 := float64(c)
	m := math.Inf(-1)
	for j := j0; j <= j1; j++ {
		l := c64 * (dot64(qr, k[j*kw+kvo:j*kw+kvo+d]) * invSqrt)
		sc[j-j0] = l
		if l > m {
			m = l
		}
	}
	var sum float64
	for i, l := range sc {
		e := math.Exp(l - m)
		sc[i] = e
		sum += e
	}
	acc = acc[:d]
	clear(acc)
	for j := j0; j <= j1; j++ {
		p := sc[j-j0]
		vr := v[j*kw+kvo : j*kw+kvo+d][:d]
		for i, x := range vr {
			acc[i] += p * float64(x)
		}
	}
	inv := 1 / sum
	for i := range o[:d] {
		o[i] = float32(acc[i] * inv)
	}
	return m + math.Log(sum)
}

// attentionBackward computes dq, dk, dv (overwritten) and, per query head,
// dsLog = Σ_t (dL/dc_t)·ln(n_t) and dsOne = Σ_t dL/dc_t, from the output
// gradient dout, the forward output out and the saved lse and scales.
// Work is split over kv heads, so that dk and dv rows have a single writer.
func attentionBackward(dq, dk, dv []float32, dsLog, dsOne []float64, dout, out, q, k, v []float32, lse []float64, scales []float32, starts []int, cfg AttentionConfig) {
	T := len(starts)
	H, KVH, d := cfg.Heads, cfg.KVHeads, cfg.HeadDim
	group := H / KVH
	qw, kw := H*d, KVH*d
	invSqrt := 1 / math.Sqrt(float64(d))
	workers := numWorkers(KVH, 1)
	if T*T*H*d < 1<<14 {
		workers = 1
	}
	type scratch struct{ dk, dv, dq []float64 }
	scr := make([]scratch, workers)
	for w := range scr {
		scr[w] = scratch{dk: make([]float64, T*d), dv: make([]float64, T*d), dq: make([]float64, d)}
	}
	parallelItems(KVH, workers, func(w, kvh int) {
		dk64, dv64, dqa := scr[w].dk, scr[w].dv, scr[w].dq
		clear(dk64)
		clear(dv64)
		kvo := kvh * d
		for h := kvh * group; h < (kvh+1)*group; h++ {
			var sLog, sOne float64
			for t := 0; t < T; t++ {
				a := starts[t]
				c := float64(scales[h*T+t])
				L := lse[h*T+t]
				o := t*qw + h*d
				qr, dor := q[o:o+d], dout[o:o+d]
				D := dot64(dor, out[o:o+d]) // Σ_j p_tj·dp_tj
				clear(dqa)
				var dc float64
				for j := a; j <= t; j++ {
					kr := k[j*kw+kvo : j*kw+kvo+d][:d]
					vr := v[j*kw+kvo : j*kw+kvo+d]
					z := dot64(qr, kr) * invSqrt
					p := math.Exp(c*z - L)
					dl := p * (dot64(dor, vr) - D)
					dc += dl * z
					dz := c * dl * invSqrt
					dkr := dk64[j*d : (j+1)*d][:d]
					dvr := dv64[j*d : (j+1)*d][:d]
					for i, kv := range kr {
						dqa[i] += dz * float64(kv)
						dkr[i] += dz * float64(qr[i])
						dvr[i] += p * float64(dor[i])
					}
				}
				for i, x := range dqa {
					dq[o+i] = float32(x)
				}
				sLog += dc * logN(t-a+1)
				sOne += dc
			}
			dsLog[h], dsOne[h] = sLog, sOne
		}
		for j := 0; j < T; j++ {
			for i := 0; i < d; i++ {
				dk[j*kw+kvo+i] = float32(dk64[j*d+i])
				dv[j*kw+kvo+i] = float32(dv64[j*d+i])
			}
		}
	})
}

// AttendCached computes attention outputs for newRows query rows appended
// after past cached positions of a single document, without autograd (for
// generation with a KV cache). q holds newRows rows of [Heads*HeadDim];
// kCache and vCache hold past+newRows rows of [KVHeads*HeadDim] with the new
// keys and values already appended; query row r sees n = past+r+1 keys. The
// result is written to out (newRows*Heads*HeadDim values). s and b follow
// Attention (per-head, nil when the mode does not use them); cfg.Segments is
// ignored. The output equals the corresponding rows of Attention's forward
// pass bit for bit.
//
// AttendCached panics with a descriptive message if cfg is invalid or a
// slice is too short: these are programming errors of the caller's buffer
// management, not data errors.
func AttendCached(out, q, kCache, vCache []float32, past, newRows int, s, b []float32, cfg AttentionConfig) {
	cfg.Segments = nil
	if err := cfg.Validate(0); err != nil {
		panic("kernels.AttendCached: " + err.Error())
	}
	H, d := cfg.Heads, cfg.HeadDim
	qw, kw := H*d, cfg.KVHeads*d
	total := past + newRows
	switch {
	case past < 0 || newRows < 0:
		panic(fmt.Sprintf("kernels.AttendCached: negative past (%d) or newRows (%d)", past, newRows))
	case len(q) < newRows*qw:
		panic(fmt.Sprintf("kernels.AttendCached: q has %d values, want %d (%d rows × %d)", len(q), newRows*qw, newRows, qw))
	case len(out) < newRows*qw:
		panic(fmt.Sprintf("kernels.AttendCached: out has %d values, want %d (%d rows × %d)", len(out), newRows*qw, newRows, qw))
	case len(kCache) < total*kw || len(vCache) < total*kw:
		panic(fmt.Sprintf("kernels.AttendCached: kCache/vCache have %d/%d values, want %d (%d rows × %d)", len(kCache), len(vCache), total*kw, total, kw))
	case cfg.Mode.UsesS() && len(s) < H:
		panic(fmt.Sprintf("kernels.AttendCached: mode %v needs %d values of s, got %d", cfg.Mode, H, len(s)))
	case cfg.Mode.UsesB() && len(b) < H:
		panic(fmt.Sprintf("kernels.AttendCached: mode %v needs %d values of b, got %d", cfg.Mode, H, len(b)))
	}
	group := H / cfg.KVHeads
	invSqrt := 1 / math.Sqrt(float64(d))
	nb := (newRows + attnBlock - 1) / attnBlock
	items := H * nb
	workers := numWorkers(items, 1)
	if newRows*total*H*d < 1<<15 {
		workers = 1
	}
	parallelItems(items, workers, func(_, item int) {
		h, blk := item/nb, item%nb
		kvo := (h / group) * d
		var sh, bh float32
		if cfg.Mode.UsesS() {
			sh = s[h]
		}
		if cfg.Mode.UsesB() {
			bh = b[h]
		}
		scores := make([]float64, total)
		acc := make([]float64, d)
		for r := blk * attnBlock; r < min((blk+1)*attnBlock, newRows); r++ {
			t := past + r
			o := r*qw + h*d
			attendRow(out[o:o+d], q[o:o+d], kCache, vCache, kw, kvo, 0, t, Scale(cfg.Mode, sh, bh, t+1), invSqrt, scores, acc)
		}
	})
}
