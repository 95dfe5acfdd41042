package kernels

import (
	"fmt"
	"math"
	"sort"

	"github.com/nlpodyssey/spago/mat"
	"github.com/ssmax/ssmax/attnscale"
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
	// Variant selects the logit scale (see attnscale.Factor); the zero
	// value "" is softmax.
	Variant attnscale.Variant
	// Segments lists the start row of every document/sequence packed in the
	// input, sorted strictly ascending with Segments[0] == 0. nil (or empty)
	// means a single document. Attention never crosses a segment start.
	Segments []int
	// Window, when > 0, is a sliding window (Mistral, Qwen2, Gemma 2/3
	// local layers): the query at position p of a document sees the keys
	// at positions p−Window+1 … p only, and its SSMax length is
	// n = min(p+1, Window). 0 means no window.
	Window int
	// Scale multiplies the dot products q·k; 0 means 1/√HeadDim (Gemma
	// uses query_pre_attn_scalar^−½ instead).
	Scale float32
	// Softcap, when > 0, caps the logits: l = Softcap·tanh(c·Scale·q·k /
	// Softcap), c the SSMax factor (Gemma 2). 0 means none.
	Softcap float32
	// RoPE, when set, makes Attention rotate queries and keys by rotary
	// position embeddings (as the RoPEWith operation does) itself, while it
	// packs them, instead of taking them rotated: the same result without
	// the two RoPE nodes and their copies. Not used by AttendCached.
	RoPE *RoPEConfig
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
	if c.Variant != "" && !c.Variant.Valid() {
		return fmt.Errorf("attention config: invalid attention variant %q", c.Variant)
	}
	if c.Window < 0 {
		return fmt.Errorf("attention config: Window must be >= 0 (0: no window), got %d", c.Window)
	}
	if !(c.Scale >= 0) || math.IsInf(float64(c.Scale), 0) {
		return fmt.Errorf("attention config: Scale must be finite and >= 0 (0: 1/sqrt(HeadDim)), got %v", c.Scale)
	}
	if !(c.Softcap >= 0) || math.IsInf(float64(c.Softcap), 0) {
		return fmt.Errorf("attention config: Softcap must be finite and >= 0 (0: none), got %v", c.Softcap)
	}
	if r := c.RoPE; r != nil {
		if err := r.check(c.HeadDim); err != nil {
			return fmt.Errorf("attention config: %w", err)
		}
		if r.Positions != nil && rows > 0 && len(r.Positions) != rows {
			return fmt.Errorf("attention config: RoPE has %d positions for %d rows", len(r.Positions), rows)
		}
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

// segmentBounds returns the [start, end) rows of every segment.
func (c AttentionConfig) segmentBounds(rows int) [][2]int {
	if len(c.Segments) == 0 {
		return [][2]int{{0, rows}}
	}
	out := make([][2]int, len(c.Segments))
	for i, a := range c.Segments {
		e := rows
		if i+1 < len(c.Segments) {
			e = c.Segments[i+1]
		}
		out[i] = [2]int{a, e}
	}
	return out
}

// logitScale is the factor of the dot products q·k (Scale, or
// 1/√HeadDim).
func (c AttentionConfig) logitScale() float64 {
	if c.Scale > 0 {
		return float64(c.Scale)
	}
	return invSqrtDim(c.HeadDim)
}

// keysSeen is the number of keys the query at position p (from its
// document's start) sees: p+1, at most Window.
func (c AttentionConfig) keysSeen(p int) int {
	if c.Window > 0 && p >= c.Window {
		return c.Window
	}
	return p + 1
}

// Attention returns causal multi-head attention with the logit scale of
// cfg.Variant. q is [T, Heads*HeadDim]; k and v are [T, KVHeads*HeadDim]; the
// result is [T, Heads*HeadDim].
//
// For query row t of head h in the segment starting at row a, keys j range
// over a <= j <= t with t−j < W when the window W = cfg.Window is set, and
// n = t−a+1 (at most W). With z_tj = scale·q_t·k_j (scale = cfg.Scale, by
// default 1/√HeadDim) and c_t = attnscale.Factor(cfg.Variant, s[h], b[h], n),
// the logits are l_tj = c_t·z_tj, or C·tanh(c_t·z_tj/C) with the soft cap
// C = cfg.Softcap, and out_t = Σ_j softmax_j(l_t)·v_j. With cfg.RoPE, q and
// k are first rotated.
//
// s and b hold one value per query head (a 1×Heads or Heads×1 matrix). s is
// required by SSMax and Bias, b by Bias; otherwise they are ignored and may be
// nil. Gradients flow to q, k, v, s and b.
//
// The computation is blockwise (flash-attention style, see blockwiseForward and
// blockwiseBackward) with the products done by gemm: memory is O(T·HeadDim), no
// [T,T] matrix is built, and with a window the blocks of keys no query of
// a block sees are skipped (cost O(T·Window) instead of O(T²)). The
// forward pass keeps the log-sum-exp of every (head, row); the backward
// pass recomputes the probabilities tile by tile.
// Both are parallel and deterministic: the work partition and the order of
// every sum are fixed, whatever the number of cores.
func Attention(q, k, v, s, b mat.Tensor, cfg AttentionConfig) mat.Tensor {
	return run(&attentionFn{q: q, k: k, v: v, s: s, b: b, cfg: cfg.clone()})
}

// AttentionQKV is Attention with queries, keys and values side by side in
// one matrix qkv [T, (Heads+2·KVHeads)·HeadDim]: columns [0, Heads·HeadDim)
// are q, the next KVHeads·HeadDim are k, the last KVHeads·HeadDim v (GPT-2's
// fused c_attn projection; Phi-3's qkv_proj, with grouped-query attention
// when KVHeads < Heads). Splitting inside the operation saves three column
// copies and gives qkv a single gradient; the result, and the gradient of
// every column, are those of Attention on the three column blocks.
func AttentionQKV(qkv, s, b mat.Tensor, cfg AttentionConfig) mat.Tensor {
	return run(&attentionFn{qkv: qkv, s: s, b: b, cfg: cfg.clone()})
}

// clone copies the slices of c that an operation keeps for its backward
// pass, so that the caller may reuse them.
func (c AttentionConfig) clone() AttentionConfig {
	c.Segments = cloneInts(c.Segments)
	if c.RoPE != nil {
		r := c.RoPE.clone()
		c.RoPE = &r
	}
	return c
}

type attentionFn struct {
	output
	q, k, v, s, b mat.Tensor
	qkv           mat.Tensor // AttentionQKV: q, k, v side by side (then q, k, v are nil)
	cfg           AttentionConfig
	rows          int
	segs          [][2]int
	out           []float32
	rope          *ropeRows
	// Saved for the backward pass (nil when no operand requires a
	// gradient): the log-sum-exp and the logit factor c_t·scale of
	// every (head, row), index h*T+t.
	lse, rowScale []float32
}

func (f *attentionFn) Operands() []mat.Tensor {
	ops := []mat.Tensor{f.q, f.k, f.v}
	if f.qkv != nil {
		ops = []mat.Tensor{f.qkv}
	}
	if f.cfg.Variant.HasS() && f.s != nil {
		ops = append(ops, f.s)
	}
	if f.cfg.Variant.HasB() && f.b != nil {
		ops = append(ops, f.b)
	}
	return ops
}

// params returns the s and b values required by the mode (nil otherwise).
func (f *attentionFn) params() (s, b []float32, err error) {
	if f.cfg.Variant.HasS() {
		if s, err = vector("Attention", "s", f.s, f.cfg.Heads); err != nil {
			return nil, nil, err
		}
	}
	if f.cfg.Variant.HasB() {
		if b, err = vector("Attention", "b", f.b, f.cfg.Heads); err != nil {
			return nil, nil, err
		}
	}
	return s, b, nil
}

func (f *attentionFn) requiresGrad() bool {
	for _, t := range f.Operands() {
		if t.RequiresGrad() {
			return true
		}
	}
	return false
}

// colBlock addresses a block of columns of a row-major matrix: row t of the
// block starts at data[t*ld+col].
type colBlock struct {
	data    []float32
	ld, col int
}

func (c colBlock) row(t, width int) []float32 {
	return c.data[t*c.ld+c.col : t*c.ld+c.col+width]
}

// operands returns the row count and the q, k, v column blocks.
func (f *attentionFn) operands() (rows int, q, k, v colBlock, err error) {
	cfg := f.cfg
	qw, kw := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	if f.qkv != nil {
		x, r, c, err := dense("AttentionQKV", "qkv", f.qkv)
		if err != nil {
			return 0, q, k, v, err
		}
		if err := cfg.Validate(r); err != nil {
			return 0, q, k, v, fmt.Errorf("kernels.AttentionQKV: %w", err)
		}
		if c != qw+2*kw {
			return 0, q, k, v, opError("AttentionQKV", "qkv is [%d,%d], want [T,%d] (Heads=%d, KVHeads=%d, HeadDim=%d)",
				r, c, qw+2*kw, cfg.Heads, cfg.KVHeads, cfg.HeadDim)
		}
		return r, colBlock{x, c, 0}, colBlock{x, c, qw}, colBlock{x, c, qw + kw}, nil
	}
	qd, qr, qc, err := dense("Attention", "q", f.q)
	if err != nil {
		return 0, q, k, v, err
	}
	if err := cfg.Validate(qr); err != nil {
		return 0, q, k, v, fmt.Errorf("kernels.Attention: %w", err)
	}
	kd, kr, kc, err := dense("Attention", "k", f.k)
	if err != nil {
		return 0, q, k, v, err
	}
	vd, vr, vc, err := dense("Attention", "v", f.v)
	if err != nil {
		return 0, q, k, v, err
	}
	if qc != qw || kc != kw || vc != kw || kr != qr || vr != qr {
		return 0, q, k, v, opError("Attention", "q is [%d,%d], k is [%d,%d], v is [%d,%d]; want q [T,%d] and k, v [T,%d] (Heads=%d, KVHeads=%d, HeadDim=%d)",
			qr, qc, kr, kc, vr, vc, qw, kw, cfg.Heads, cfg.KVHeads, cfg.HeadDim)
	}
	return qr, colBlock{qd, qw, 0}, colBlock{kd, kw, 0}, colBlock{vd, kw, 0}, nil
}

func (f *attentionFn) Forward() (mat.Tensor, error) {
	cfg := f.cfg
	T, qs, ks, vs, err := f.operands()
	if err != nil {
		return nil, err
	}
	s, b, err := f.params()
	if err != nil {
		return nil, err
	}
	H, KVH, d := cfg.Heads, cfg.KVHeads, cfg.HeadDim
	qw := H * d
	f.rows = T
	f.segs = cfg.segmentBounds(T)
	grad := f.requiresGrad()
	if cfg.RoPE != nil {
		f.rope = newRoPERows(cfg.RoPE.Positions, T, cfg.RoPE.params(d))
	}

	rowScale := getF32(H * T)
	scale := cfg.logitScale()
	for h := 0; h < H; h++ {
		var sh, bh float32
		if s != nil {
			sh = s[h]
		}
		if b != nil {
			bh = b[h]
		}
		for _, sg := range f.segs {
			for t := sg[0]; t < sg[1]; t++ {
				rowScale[h*T+t] = float32(float64(attnscale.Factor(cfg.Variant, sh, bh, cfg.keysSeen(t-sg[0]))) * scale)
			}
		}
	}
	var lse []float32
	if grad {
		lse = getF32(H * T)
	}
	y := f.keep(newMatrix(T, qw))
	f.out = y.Data().F32()
	segs := make([]attnSegment, len(f.segs))
	for i, sg := range f.segs {
		segs[i] = attnSegment{q0: sg[0], nq: sg[1] - sg[0], k0: sg[0]}
	}
	attentionForward(qs, ks, vs, f.rope, T, T, H, KVH, d, cfg.Window, cfg.Softcap, rowScale, f.out, lse, segs)
	if grad {
		f.lse, f.rowScale = lse, rowScale
	} else {
		putF32(rowScale)
		f.releaseRoPE()
	}
	return y, nil
}

func (f *attentionFn) releaseRoPE() {
	if f.rope != nil {
		f.rope.release()
		f.rope = nil
	}
}

func (f *attentionFn) Backward(gy mat.Tensor) error {
	defer f.releaseGrad()
	cfg := f.cfg
	g := gradData(gy)
	if len(g) != len(f.out) {
		return opError("Attention", "output gradient has %d values, want %d", len(g), len(f.out))
	}
	if f.lse == nil {
		return nil // no operand requires a gradient
	}
	T, H, KVH, d := f.rows, cfg.Heads, cfg.KVHeads, cfg.HeadDim
	qw, kw := H*d, KVH*d
	// The packed (and rotated) operands are rebuilt rather than kept from
	// the forward pass: it is cheap, and saves three activations per layer.
	_, qs, ks, vs, err := f.operands()
	if err != nil {
		return err
	}
	qh, kh, vh := getF32(T*qw), getF32(T*kw), getF32(T*kw)
	packHeads(qh, qs, T, H, d, f.rope)
	packHeads(kh, ks, T, KVH, d, f.rope)
	packHeads(vh, vs, T, KVH, d, nil)
	var dqkv, dq, dk, dv []float32
	var dqs, dks, dvs colBlock
	if f.qkv != nil {
		w := qw + 2*kw
		dqkv = getF32(T * w)
		dqs, dks, dvs = colBlock{dqkv, w, 0}, colBlock{dqkv, w, qw}, colBlock{dqkv, w, qw + kw}
	} else {
		dq, dk, dv = getF32(T*qw), getF32(T*kw), getF32(T*kw)
		dqs, dks, dvs = colBlock{dq, qw, 0}, colBlock{dk, kw, 0}, colBlock{dv, kw, 0}
	}
	dc := getF64Zero(H * T) // dL/dc_t per (head, row)
	blockwiseBackward(&attnProblem{qh: qh, kh: kh, vh: vh, rowsQ: T, rowsK: T, heads: H, kvHeads: KVH, d: d,
		window: cfg.Window, softcap: cfg.Softcap, rowScale: f.rowScale, out: f.out, lse: f.lse},
		f.segs, g, dqs, dks, dvs, f.rope, cfg.logitScale(), dc)
	putF32(qh)
	putF32(kh)
	putF32(vh)
	putF32(f.lse)
	putF32(f.rowScale)
	f.lse, f.rowScale = nil, nil
	f.releaseRoPE()
	give := func(t mat.Tensor, g []float32) {
		if t.RequiresGrad() {
			accGrad(t, g)
		} else {
			putF32(g)
		}
	}
	if f.qkv != nil {
		give(f.qkv, dqkv)
	} else {
		give(f.q, dq)
		give(f.k, dk)
		give(f.v, dv)
	}
	if cfg.Variant.HasS() && f.s.RequiresGrad() {
		ds := make([]float32, H)
		for h := range ds {
			var acc float64
			for _, sg := range f.segs {
				for t := sg[0]; t < sg[1]; t++ {
					acc += dc[h*T+t] * attnscale.LogN(cfg.keysSeen(t-sg[0]))
				}
			}
			ds[h] = float32(acc)
		}
		accGrad(f.s, ds)
	}
	if cfg.Variant.HasB() && f.b.RequiresGrad() {
		db := make([]float32, H)
		for h := range db {
			var acc float64
			for t := 0; t < T; t++ {
				acc += dc[h*T+t]
			}
			db[h] = float32(acc)
		}
		accGrad(f.b, db)
	}
	putF64(dc)
	return nil
}

// packHeads copies the column block x ([rows, heads*d]) into dst
// [heads][rows][d] (head-major, so that every head's rows are contiguous
// for gemm), rotating every head by the row's RoPE angles when rope is set.
func packHeads(dst []float32, x colBlock, rows, heads, d int, rope *ropeRows) {
	packHeadRange(dst, x, rows, heads, 0, heads, d, rope)
}

// packHeadRange is packHeads for heads [h0, h1) only: dst is
// [h1-h0][rows][d].
func packHeadRange(dst []float32, x colBlock, rows, heads, h0, h1, d int, rope *ropeRows) {
	w := heads * d
	parallelFor(rows, max(1, (1<<14)/max((h1-h0)*d, 1)), func(_, lo, hi int) {
		for t := lo; t < hi; t++ {
			xr := x.row(t, w)
			for h := h0; h < h1; h++ {
				o := ((h-h0)*rows + t) * d
				if rope != nil {
					c, s := rope.row(t)
					rotateHead(dst[o:o+d], xr[h*d:(h+1)*d], c, s, false)
				} else {
					copy(dst[o:o+d], xr[h*d:(h+1)*d])
				}
			}
		}
	})
}

// packKeyChunks packs the keys of kv head kvh for the forward pass: every
// chunk of forwardKeyChunk keys of a segment (from the segment's first key row; the
// last one shorter), rows [r0, r0+n), is stored transposed at dst[r0*d:]
// as [d][n], so that the logits of a query block are a plain product
// Q·K_chunkᵀ = Q·dst_chunk. Keys are rotated when rope is set.
func packKeyChunks(dst []float32, k colBlock, rows, heads, kvh, d int, rope *ropeRows, segs []attnSegment) {
	type chunk struct{ r0, n int }
	var chunks []chunk
	for _, sg := range segs {
		n := sg.keys()
		for c := 0; c < n; c += forwardKeyChunk {
			chunks = append(chunks, chunk{sg.k0 + c, min(forwardKeyChunk, n-c)})
		}
	}
	parallelFor(len(chunks), max(1, (1<<14)/(forwardKeyChunk*d)), func(_, lo, hi int) {
		row := make([]float32, d)
		for _, ch := range chunks[lo:hi] {
			out := dst[ch.r0*d : (ch.r0+ch.n)*d]
			for i := 0; i < ch.n; i++ {
				t := ch.r0 + i
				src := k.row(t, heads*d)[kvh*d : (kvh+1)*d]
				if rope != nil {
					c, s := rope.row(t)
					rotateHead(row, src, c, s, false)
					src = row
				}
				for j, x := range src {
					out[j*ch.n+i] = x
				}
			}
		}
	})
}

// attentionForward computes the output out [rowsQ, heads*d] (and, when lse
// is not nil, the log-sum-exp of every (head, row)) of the query rows of
// the segments, from row-major q, k, v, with a sliding window (0: none)
// and a soft cap (0: none) of the logits. It packs and runs one kv head
// (and its group of query heads) at a time, so it needs (group+2)·rows·d
// values of scratch, not three copies of the inputs.
func attentionForward(q, k, v colBlock, rope *ropeRows, rowsQ, rowsK, heads, kvHeads, d, window int, softcap float32, rowScale, out, lse []float32, segs []attnSegment) {
	group := heads / kvHeads
	qh, kh, vh := getF32(group*rowsQ*d), getF32(rowsK*d), getF32(rowsK*d)
	for kvh := 0; kvh < kvHeads; kvh++ {
		h0 := kvh * group
		packHeadRange(qh, q, rowsQ, heads, h0, h0+group, d, rope)
		packKeyChunks(kh, k, rowsK, kvHeads, kvh, d, rope, segs)
		packHeadRange(vh, v, rowsK, kvHeads, kvh, kvh+1, d, nil)
		p := &attnProblem{qh: qh, kh: kh, vh: vh, rowsQ: rowsQ, rowsK: rowsK, heads: group, kvHeads: 1, d: d,
			window: window, softcap: softcap,
			rowScale: rowScale[h0*rowsQ : (h0+group)*rowsQ], out: out, ldo: heads * d, h0: h0}
		if lse != nil {
			p.lse = lse[h0*rowsQ : (h0+group)*rowsQ]
		}
		blockwiseForward(p, segs)
	}
	putF32(qh)
	putF32(kh)
	putF32(vh)
}

// Tile sizes of the blockwise attention.
const (
	forwardQueryRows = 64  // query rows per forward work item
	forwardKeyChunk  = 256 // keys per forward chunk (online softmax across chunks)
	backwardTile     = 64  // rows of the square backward tiles (queries and keys)
)

// attnProblem is one attention computation over head-major operands.
type attnProblem struct {
	qh           []float32 // [heads][rowsQ][d]
	kh, vh       []float32 // [kvHeads][rowsK][d]
	rowsQ, rowsK int
	heads        int
	kvHeads      int
	d            int
	window       int       // sliding window (0: none)
	softcap      float32   // logit soft cap (0: none)
	rowScale     []float32 // [heads*rowsQ]: logit factor c_t·scale of every query row
	out          []float32 // the output, row-major: row t, head h at out[t*ldo+(h0+h)*d]
	ldo, h0      int
	lse          []float32 // [heads*rowsQ]: log-sum-exp of the logits (nil: not needed)
}

// attnSegment is a run of query rows attending causally to the keys of one
// document: query rows [q0, q0+nq) are at positions pos0, pos0+1, … of the
// document; key row k0 holds the key at position kpos0, row k0+1 the next,
// and so on up to position pos0+nq−1. The query at position p sees the
// keys at positions max(0, p−window+1) … p (0 … p without a window); they
// must all be held: kpos0 <= max(0, pos0−window+1).
type attnSegment struct{ q0, nq, k0, pos0, kpos0 int }

// keys returns the number of key rows of the segment.
func (sg attnSegment) keys() int { return sg.pos0 + sg.nq - sg.kpos0 }

// keyRange returns the keys [lo, hi), as indices from row k0, that the
// query at position p sees.
func (sg attnSegment) keyRange(p, window int) (lo, hi int) {
	if window > 0 {
		lo = max(0, p-window+1)
	}
	return lo - sg.kpos0, p + 1 - sg.kpos0
}

// attnItem is a forward work item: query rows [r0, r1) of a segment (relative
// to q0) for head h.
type attnItem struct{ seg, h, r0, r1, cost int }

// forwardScratch is one forward worker's scratch.
type forwardScratch struct {
	s  []float32 // [forwardQueryRows*forwardKeyChunk] logits, then probabilities
	o  []float32 // [forwardQueryRows*d] unnormalised output
	kt []float32 // [d*forwardKeyChunk] part of a key chunk
	m  []float32 // running maximum per row
	l  []float64 // running sum per row
}

// blockwiseForward computes the output (and log-sum-exp) of every query row of
// the segments. Work items are blocks of forwardQueryRows query rows of one head,
// taken largest first by the workers; each item writes only its own rows,
// and its result does not depend on which worker runs it.
func blockwiseForward(p *attnProblem, segs []attnSegment) {
	var items []attnItem
	total := 0
	for si, sg := range segs {
		for r0 := 0; r0 < sg.nq; r0 += forwardQueryRows {
			r1 := min(r0+forwardQueryRows, sg.nq)
			lo, _ := sg.keyRange(sg.pos0+r0, p.window)
			_, hi := sg.keyRange(sg.pos0+r1-1, p.window)
			cost := (r1 - r0) * (hi - lo)
			for h := 0; h < p.heads; h++ {
				items = append(items, attnItem{seg: si, h: h, r0: r0, r1: r1, cost: cost})
			}
			total += cost * p.heads
		}
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].cost > items[j].cost })
	workers := numWorkers(len(items), 1)
	if total*p.d < 1<<15 {
		workers = 1
	}
	scr := make([]forwardScratch, workers)
	for w := range scr {
		scr[w] = forwardScratch{s: getF32(forwardQueryRows * forwardKeyChunk), o: getF32(forwardQueryRows * p.d), kt: getF32(p.d * forwardKeyChunk), m: getF32(forwardQueryRows), l: getF64Zero(forwardQueryRows)}
	}
	parallelItems(len(items), workers, func(w, i int) {
		it := items[i]
		attendBlock(p, &scr[w], segs[it.seg], it.h, it.r0, it.r1)
	})
	for _, s := range scr {
		putF32(s.s)
		putF32(s.o)
		putF32(s.kt)
		putF32(s.m)
		putF64(s.l)
	}
}

// attendBlock computes query rows [r0, r1) (relative to the segment) of
// head h: the keys the block sees, in the chunks of forwardKeyChunk keys they
// fall in (chunks no row of the block sees are skipped: under a window,
// O(window) keys per block), with an online softmax (running maximum and
// sum per row; the output of earlier chunks is rescaled when the maximum
// grows). Per chunk, two products: the logits S = Q·K_chunkᵀ (the keys are
// packed transposed, see packKeyChunks) and O += P·V_chunk.
func attendBlock(p *attnProblem, sc *forwardScratch, sg attnSegment, h, r0, r1 int) {
	d := p.d
	nq := r1 - r0
	kvh := h / (p.heads / p.kvHeads)
	qb := p.qh[(h*p.rowsQ+sg.q0+r0)*d : (h*p.rowsQ+sg.q0+r1)*d]
	kbase := (kvh*p.rowsK + sg.k0) * d
	rowScale := p.rowScale[h*p.rowsQ+sg.q0+r0 : h*p.rowsQ+sg.q0+r1]
	m, l, o := sc.m[:nq], sc.l[:nq], sc.o[:nq*d]
	pos := sg.pos0 + r0 // position of the first query row
	klo, _ := sg.keyRange(pos, p.window)
	_, khi := sg.keyRange(pos+nq-1, p.window)
	nkeys := sg.keys()
	first := true
	for kc := klo - klo%forwardKeyChunk; kc < khi; kc += forwardKeyChunk {
		// The chunk holds min(forwardKeyChunk, segment keys − kc) keys; this
		// block uses its columns [c0, c1) of [d][chunk].
		chunk := min(forwardKeyChunk, nkeys-kc)
		c0, c1 := max(klo, kc)-kc, min(khi, kc+chunk)-kc
		nk := c1 - c0
		kt := p.kh[kbase+kc*d : kbase+(kc+chunk)*d]
		vb := p.vh[kbase+(kc+c0)*d : kbase+(kc+c1)*d]
		s := sc.s[:nq*nk]
		if nk == chunk {
			gemm(false, false, nq, nk, d, qb, kt, s, false)
		} else {
			// Only some of the chunk's keys: gather them.
			sub := sc.kt[:d*nk]
			for j := 0; j < d; j++ {
				copy(sub[j*nk:(j+1)*nk], kt[j*chunk+c0:j*chunk+c1])
			}
			gemm(false, false, nq, nk, d, qb, sub, s, false)
		}
		base := kc + c0 // key index of column 0
		for r := 0; r < nq; r++ {
			row := s[r*nk : (r+1)*nk]
			lo, hi := sg.keyRange(pos+r, p.window)
			lo, hi = max(lo-base, 0), min(hi-base, nk) // the keys of the chunk the row sees
			if lo >= hi {
				clear(row)
				if first {
					m[r], l[r] = float32(math.Inf(-1)), 0
				}
				continue
			}
			fr := rowScale[r]
			vis := row[lo:hi]
			if p.softcap > 0 {
				capRow(vis, fr, p.softcap)
				fr = 1
			}
			mx := maxScaledRow(vis, fr)
			if first {
				m[r] = mx
				l[r] = expSubRow(vis, fr, mx)
				clear(row[:lo])
				clear(row[hi:])
				continue
			}
			mNew := max(m[r], mx)
			sum := expSubRow(vis, fr, mNew)
			clear(row[:lo])
			clear(row[hi:])
			if mNew > m[r] { // rescale what earlier chunks gave
				alpha := fexpNeg(float64(m[r] - mNew))
				l[r] *= alpha
				a32 := float32(alpha)
				or := o[r*d : (r+1)*d]
				for i := range or {
					or[i] *= a32
				}
				m[r] = mNew
			}
			l[r] += sum
		}
		gemm(false, false, nq, d, nk, s, vb, o, !first)
		first = false
	}
	for r := 0; r < nq; r++ {
		t := sg.q0 + r0 + r
		inv := float32(1 / l[r])
		o0 := t*p.ldo + (p.h0+h)*d
		dst := p.out[o0 : o0+d]
		for i, x := range o[r*d : (r+1)*d] {
			dst[i] = x * inv
		}
		if p.lse != nil {
			p.lse[h*p.rowsQ+t] = m[r] + float32(math.Log(l[r]))
		}
	}
}

// backwardScratch is one backward worker's scratch.
type backwardScratch struct {
	s, dp  []float32 // [B*B] logits then probabilities; dO·Vᵀ then dS
	dk, dv []float32 // [B*d] accumulators of the current key block
}

// blockwiseBackward computes dq, dk, dv (column blocks of [rows, heads*d] and
// [rows, kvHeads*d], every value overwritten) and dc (zeroed on entry,
// dL/dc_t per (head, row), scale being the factor of the dot products)
// from the output gradient dout. The gradients of q and k are rotated back
// when rope is set. Work items are (segment, kv head) pairs, so every dk,
// dv, dq row has a single writer; within an item, key blocks are taken in
// order and, for each, the query heads of the group and the query blocks
// that see it in order (under a window, only the blocks within the window
// of the key block), so every sum has a fixed order whatever the number of
// workers. Per (query block, key block) tile, five products: S = Q·Kᵀ and
// dP = dO·Vᵀ, then (P and dS from them) dV += Pᵀ·dO, dK += dSᵀ·Q,
// dQ += dS·K.
func blockwiseBackward(p *attnProblem, segs [][2]int, dout []float32, dq, dk, dv colBlock, rope *ropeRows, scale float64, dc []float64) {
	T, H, KVH, d := p.rowsQ, p.heads, p.kvHeads, p.d
	W, C := p.window, p.softcap
	qw := H * d
	// Head-major dO and its row dot products with the output, D = Σ dO·O.
	doh := getF32(T * qw)
	packHeads(doh, colBlock{dout, qw, 0}, T, H, d, nil)
	D := getF32(H * T)
	parallelFor(T, max(1, (1<<14)/qw), func(_, lo, hi int) {
		for t := lo; t < hi; t++ {
			for h := 0; h < H; h++ {
				o := t*qw + h*d
				D[h*T+t] = float32(dot64(dout[o:o+d], p.out[o:o+d]))
			}
		}
	})
	dqh := getF32Zero(T * qw)
	type item struct{ seg, kvh, cost int }
	var items []item
	total := 0
	const B = backwardTile
	for si, sg := range segs {
		n := sg[1] - sg[0]
		cost := n * n
		if W > 0 {
			cost = n * min(n, W+B)
		}
		for kvh := 0; kvh < KVH; kvh++ {
			items = append(items, item{si, kvh, cost})
			total += cost
		}
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].cost > items[j].cost })
	workers := numWorkers(len(items), 1)
	if total*H*d < 1<<15 {
		workers = 1
	}
	scr := make([]backwardScratch, workers)
	for w := range scr {
		scr[w] = backwardScratch{s: getF32(B * B), dp: getF32(B * B), dk: getF32(B * d), dv: getF32(B * d)}
	}
	group := H / KVH
	parallelItems(len(items), workers, func(w, i int) {
		it := items[i]
		sc := &scr[w]
		a, e := segs[it.seg][0], segs[it.seg][1]
		n := e - a
		kvh := it.kvh
		for j0 := 0; j0 < n; j0 += B {
			nk := min(B, n-j0)
			kb := p.kh[(kvh*T+a+j0)*d : (kvh*T+a+j0+nk)*d]
			vb := p.vh[(kvh*T+a+j0)*d : (kvh*T+a+j0+nk)*d]
			dkb, dvb := sc.dk[:nk*d], sc.dv[:nk*d]
			iEnd := n // query rows [j0, iEnd) see the key block
			if W > 0 {
				iEnd = min(n, j0+nk-1+W)
			}
			first := true
			for h := kvh * group; h < (kvh+1)*group; h++ {
				for i0 := j0; i0 < iEnd; i0 += B {
					nq := min(B, n-i0)
					hr := h*T + a + i0 // index of the block's first (head, row)
					qb := p.qh[hr*d : (hr+nq)*d]
					dob := doh[hr*d : (hr+nq)*d]
					s, dp := sc.s[:nq*nk], sc.dp[:nq*nk]
					gemm(false, true, nq, nk, d, qb, kb, s, false)
					gemm(false, true, nq, nk, d, dob, vb, dp, false)
					for r := 0; r < nq; r++ {
						srow, dprow := s[r*nk:(r+1)*nk], dp[r*nk:(r+1)*nk]
						lim := min(nk, i0+r-j0+1) // keys [lo, lim) of the block are seen
						lo := 0
						if W > 0 {
							lo = max(0, i0+r-j0-W+1)
						}
						if lo >= lim {
							clear(srow)
							clear(dprow)
							continue
						}
						var dcr float32
						if C > 0 {
							dcr = softcapGradRow(srow[lo:lim], dprow[lo:lim], p.rowScale[hr+r], C, p.lse[hr+r], D[hr+r])
						} else {
							dcr = softmaxGradRow(srow[lo:lim], dprow[lo:lim], p.rowScale[hr+r], p.lse[hr+r], D[hr+r])
						}
						clear(srow[:lo])
						clear(dprow[:lo])
						clear(srow[lim:])
						clear(dprow[lim:])
						dc[hr+r] += float64(dcr) * scale
					}
					gemm(true, false, nk, d, nq, s, dob, dvb, !first)                // dV_j += Pᵀ·dO_i
					gemm(true, false, nk, d, nq, dp, qb, dkb, !first)                // dK_j += dSᵀ·Q_i
					gemm(false, false, nq, d, nk, dp, kb, dqh[hr*d:(hr+nq)*d], true) // dQ_i += dS·K_j
					first = false
				}
			}
			for r := 0; r < nk; r++ {
				t := a + j0 + r
				dkr := dk.row(t, KVH*d)[kvh*d : (kvh+1)*d]
				if rope != nil {
					c, s := rope.row(t)
					rotateHead(dkr, dkb[r*d:(r+1)*d], c, s, true)
				} else {
					copy(dkr, dkb[r*d:(r+1)*d])
				}
				copy(dv.row(t, KVH*d)[kvh*d:(kvh+1)*d], dvb[r*d:(r+1)*d])
			}
		}
	})
	for _, s := range scr {
		putF32(s.s)
		putF32(s.dp)
		putF32(s.dk)
		putF32(s.dv)
	}
	// Back to row-major (and unrotated).
	parallelFor(T, max(1, (1<<14)/qw), func(_, lo, hi int) {
		for t := lo; t < hi; t++ {
			dqr := dq.row(t, qw)
			for h := 0; h < H; h++ {
				src := dqh[(h*T+t)*d : (h*T+t+1)*d]
				if rope != nil {
					c, s := rope.row(t)
					rotateHead(dqr[h*d:(h+1)*d], src, c, s, true)
				} else {
					copy(dqr[h*d:(h+1)*d], src)
				}
			}
		}
	})
	putF32(dqh)
	putF32(doh)
	putF32(D)
}

// invSqrtDim is 1/√d.
func invSqrtDim(d int) float64 { return 1 / math.Sqrt(float64(d)) }

// AttendCached computes attention outputs for newRows query rows appended
// after past positions of a single document (starting at position 0),
// without autograd (for generation with a KV cache). q holds newRows rows of
// [Heads*HeadDim], at positions past … past+newRows−1. k and v hold the
// keys and values of positions cacheStart … past+newRows−1, new rows
// included, as rows of [KVHeads*HeadDim] (past+newRows−cacheStart rows):
// without a window cacheStart must be 0; with a window W, the cache may
// drop old positions, and must hold those from max(0, past−W+1) on. The
// result is written to out (newRows*Heads*HeadDim values).
//
// The semantics are Attention's (cfg.Window, cfg.Scale, cfg.Softcap, the
// SSMax factor of n = min(p+1, Window) keys for the query at position p);
// s and b follow Attention (per-head, nil when the variant does not use
// them); cfg.Segments and cfg.RoPE are ignored (q and k are taken
// rotated). Its rows agree with Attention's to float32 rounding: it runs
// Attention's forward kernel, except when decoding a few rows over a long
// cache, which it reads directly (attendDirect).
//
// AttendCached panics with a descriptive message if cfg is invalid, a
// slice is too short or the cache does not hold a key a query needs: these
// are programming errors of the caller's buffer management, not data
// errors.
func AttendCached(out, q, k, v []float32, cacheStart, past, newRows int, s, b []float32, cfg AttentionConfig) {
	cfg.Segments = nil
	if err := cfg.Validate(0); err != nil {
		panic("kernels.AttendCached: " + err.Error())
	}
	H, d, W := cfg.Heads, cfg.HeadDim, cfg.Window
	qw, kw := H*d, cfg.KVHeads*d
	switch {
	case past < 0 || newRows < 0 || cacheStart < 0:
		panic(fmt.Sprintf("kernels.AttendCached: negative cacheStart (%d), past (%d) or newRows (%d)", cacheStart, past, newRows))
	case len(q) < newRows*qw:
		panic(fmt.Sprintf("kernels.AttendCached: q has %d values, want %d (%d rows × %d)", len(q), newRows*qw, newRows, qw))
	case len(out) < newRows*qw:
		panic(fmt.Sprintf("kernels.AttendCached: out has %d values, want %d (%d rows × %d)", len(out), newRows*qw, newRows, qw))
	case cfg.Variant.HasS() && len(s) < H:
		panic(fmt.Sprintf("kernels.AttendCached: variant %v needs %d values of s, got %d", cfg.Variant, H, len(s)))
	case cfg.Variant.HasB() && len(b) < H:
		panic(fmt.Sprintf("kernels.AttendCached: variant %v needs %d values of b, got %d", cfg.Variant, H, len(b)))
	}
	if newRows == 0 {
		return
	}
	if need, _ := (attnSegment{pos0: past}).keyRange(past, W); cacheStart > need {
		panic(fmt.Sprintf("kernels.AttendCached: the cache starts at position %d, but the query at position %d needs the keys from position %d on (Window=%d)",
			cacheStart, past, need, W))
	}
	rowsK := past + newRows - cacheStart
	if len(k) < rowsK*kw || len(v) < rowsK*kw {
		panic(fmt.Sprintf("kernels.AttendCached: k/v have %d/%d values, want %d (%d rows for positions %d…%d × %d)",
			len(k), len(v), rowsK*kw, rowsK, cacheStart, past+newRows-1, kw))
	}
	KVH := cfg.KVHeads
	rowScale := getF32(H * newRows)
	scale := cfg.logitScale()
	for h := 0; h < H; h++ {
		var sh, bh float32
		if cfg.Variant.HasS() {
			sh = s[h]
		}
		if cfg.Variant.HasB() {
			bh = b[h]
		}
		for r := 0; r < newRows; r++ {
			rowScale[h*newRows+r] = float32(float64(attnscale.Factor(cfg.Variant, sh, bh, cfg.keysSeen(past+r))) * scale)
		}
	}
	sg := attnSegment{q0: 0, nq: newRows, k0: 0, pos0: past, kpos0: cacheStart}
	if newRows <= attendDirectRows && rowsK >= attendDirectKeys {
		attendDirect(out, q, k, v, sg, rowScale, H, KVH, d, W, cfg.Softcap)
	} else {
		attentionForward(colBlock{q, qw, 0}, colBlock{k, kw, 0}, colBlock{v, kw, 0}, nil, newRows, rowsK, H, KVH, d, W, cfg.Softcap,
			rowScale, out[:newRows*qw], nil, []attnSegment{sg})
	}
	putF32(rowScale)
}

// AttendCached computes at most attendDirectRows new rows over at least
// attendDirectKeys cached keys straight from the cache (attendDirect):
// packing a long cache for gemm costs more than attending with a few rows
// (decoding one token over 4096 keys: 2.2 ms instead of 5.8 ms per layer).
const (
	attendDirectRows = 4
	attendDirectKeys = 256
)

// attendDirect computes AttendCached's rows (the query rows of sg) one
// (head, row) at a time from the row-major cache, in parallel over heads,
// with the arithmetic of the blockwise kernel (float32 products and sums,
// probabilities rounded to float32, normalised by multiplying with 1/sum).
func attendDirect(out, q, kc, vc []float32, sg attnSegment, rowScale []float32, H, KVH, d, window int, softcap float32) {
	qw, kw := H*d, KVH*d
	group := H / KVH
	newRows := sg.nq
	workers := numWorkers(H, 1)
	if sg.keys()*newRows*H*d < 1<<16 {
		workers = 1
	}
	parallelItems(H, workers, func(_, h int) {
		kvo := (h / group) * d
		p := getF32(sg.keys())
		acc := getF32(d)
		for r := 0; r < newRows; r++ {
			lo, hi := sg.keyRange(sg.pos0+r, window)
			qr := q[r*qw+h*d : r*qw+(h+1)*d]
			f := rowScale[h*newRows+r]
			sc := p[:hi-lo]
			for j := range sc {
				kr := (lo + j) * kw
				sc[j] = dot32(qr, kc[kr+kvo:kr+kvo+d])
			}
			if softcap > 0 {
				capRow(sc, f, softcap)
				f = 1
			}
			sum := expSubRow(sc, f, maxScaledRow(sc, f))
			clear(acc)
			for j, pj := range sc {
				vr := vc[(lo+j)*kw+kvo : (lo+j)*kw+kvo+d]
				for i, x := range vr[:len(acc)] {
					acc[i] += pj * x
				}
			}
			inv := float32(1 / sum)
			o := out[r*qw+h*d : r*qw+(h+1)*d]
			for i := range o {
				o[i] = acc[i] * inv
			}
		}
		putF32(p)
		putF32(acc)
	})
}
