package model

import (
	"fmt"
	"runtime"

	"github.com/nlpodyssey/spago/mat"
	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/kernels"
)

// Decoder runs the model forward one chunk of tokens at a time over a
// single document, keeping each layer's keys and values (a KV cache), so
// generation costs one new row per step. A query at position p sees the
// cached keys and itself: n = p+1 keys, or min(p+1, W) in a layer with a
// sliding window of W, whose cache keeps only the last W-1 positions
// between calls (memory O(W), not O(sequence)).
type Decoder struct {
	m      *Model
	layers []layerCache
	n      int
	// probe, when set, records the last position's attention (attention_probe.go).
	probe *attentionProbe
}

// layerCache holds a layer's keys and values for positions start,
// start+1, …: rows of [KVHeads*HeadDim].
type layerCache struct {
	k, v  []float32
	start int
}

// NewDecoder returns an empty decoder.
func (m *Model) NewDecoder() *Decoder {
	return &Decoder{m: m, layers: make([]layerCache, m.Spec.Layers)}
}

// freeScratchAfter is the cache length from which Feed lets the collector
// have the attention's scratch buffers after a chunk.
const freeScratchAfter = 4096

// Reserve makes room in the cache for n positions in all (fed so far
// included), so that feeding up to n tokens never grows it: the keys and
// values of layers without a window go to memory outside the Go heap
// (freed when the decoder is garbage), whose size the collector then does
// not count as live. Layers with a window keep at most their window. A
// decoder fed past n still works, growing its cache on the heap.
func (d *Decoder) Reserve(n int) error {
	s := d.m.Spec
	width := s.KVHeads * s.HeadDim
	rows := 0
	for l := range d.layers {
		if s.Window(l) == 0 && n > d.CachedPositions(l) {
			rows += n
		}
	}
	if rows == 0 {
		return nil
	}
	mem, release, err := allocOffHeap(4 * 2 * rows * width)
	if err != nil {
		return err
	}
	buf := f32View(mem)
	for l := range d.layers {
		c := &d.layers[l]
		if s.Window(l) != 0 || n <= d.CachedPositions(l) {
			continue
		}
		k, v := buf[:0:n*width], buf[n*width:n*width:2*n*width]
		buf = buf[2*n*width:]
		c.k, c.v = append(k, c.k...), append(v, c.v...)
	}
	if release != nil {
		// The caches live in d.layers' array: freed once it is garbage.
		runtime.AddCleanup(&d.layers[0], func(m []byte) { release(m) }, mem)
	}
	return nil
}

// Len is the number of tokens fed so far.
func (d *Decoder) Len() int { return d.n }

// CachedPositions is the number of positions whose keys layer l holds.
func (d *Decoder) CachedPositions(l int) int {
	return len(d.layers[l].k) / (d.m.Spec.KVHeads * d.m.Spec.HeadDim)
}

// Feed appends ids to the document and returns the logits [len(ids), vocab]
// of the new positions, row-major.
func (d *Decoder) Feed(ids []int) ([]float32, error) {
	m, s := d.m, d.m.Spec
	if len(ids) == 0 {
		return nil, fmt.Errorf("decoder: no tokens to feed")
	}
	for i, id := range ids {
		if id < 0 || id >= s.Vocab {
			return nil, fmt.Errorf("decoder: token %d at position %d is outside the vocabulary of %d", id, d.n+i, s.Vocab)
		}
	}
	if s.Position == arch.LearnedPositions && d.n+len(ids) > s.Context {
		return nil, fmt.Errorf("decoder: %d tokens exceed the model's %d learned positions", d.n+len(ids), s.Context)
	}
	pos := make([]int, len(ids))
	for i := range pos {
		pos[i] = d.n + i
	}
	seqLen := d.n + len(ids)
	x := m.embed(ids, pos)
	for l := 0; l < s.Layers; l++ {
		x = m.block(l, x, func(h mat.Tensor) mat.Tensor { return d.attend(l, h, pos, seqLen) })
	}
	d.n += len(ids)
	if len(ids) > 1 && d.n >= freeScratchAfter {
		// Prefill over a long cache: the attention's scratch buffers grow
		// with it (see kernels.FreeScratch).
		kernels.FreeScratch()
	}
	logits := m.Logits(m.norm(x, arch.RoleFinalNorm, arch.RoleFinalNormBias, -1))
	return values(logits), nil
}

// attend is layer l's cached attention for the new rows h at positions pos.
func (d *Decoder) attend(l int, h mat.Tensor, pos []int, seqLen int) mat.Tensor {
	m, s := d.m, d.m.Spec
	q, k, v := m.qkv(l, h, pos, seqLen)
	c := &d.layers[l]
	c.k = append(c.k, values(k)...)
	c.v = append(c.v, values(v)...)
	a := m.attn[l]
	sv, bv := a.values()
	newRows := len(pos)
	cfg := m.attentionConfig(l, nil, nil)
	out := make([]float32, newRows*s.Heads*s.HeadDim)
	kernels.AttendCached(out, values(q), c.k, c.v, c.start, d.n, newRows, sv, bv, cfg)
	if d.probe != nil {
		d.probe.record(m, l, values(q), c, d.n, newRows, a)
	}
	if w := cfg.Window; w > 0 {
		// Keep the last W-1 positions: the next query sees at most those
		// and itself.
		width := s.KVHeads * s.HeadDim
		if drop := d.n + newRows - (w - 1) - c.start; drop > 0 {
			c.k = append(c.k[:0:0], c.k[drop*width:]...)
			c.v = append(c.v[:0:0], c.v[drop*width:]...)
			c.start += drop
		}
	}
	runtime.KeepAlive(c) // the caches may live outside the heap (Reserve)
	return mat.NewDense[float32](mat.WithShape(newRows, s.Heads*s.HeadDim), mat.WithBacking(out))
}

// qkv is layer l's queries, keys and values for rows at positions pos,
// rotated where the family uses rotary positions (the decoder's path;
// Attention rotates by itself in the full forward).
func (m *Model) qkv(l int, h mat.Tensor, pos []int, seqLen int) (q, k, v mat.Tensor) {
	s := m.Spec
	q, k, v = m.projections(l, h)
	if s.Position == arch.RoPEPositions {
		rope := *m.ropeConfig(l, pos, seqLen)
		q = kernels.RoPEWith(q, s.Heads, s.HeadDim, pos, rope)
		k = kernels.RoPEWith(k, s.KVHeads, s.HeadDim, pos, rope)
	}
	return q, k, v
}

// values returns a node's float32 values.
func values(t mat.Tensor) []float32 { return t.Value().(*mat.Dense[float32]).Data().F32() }
