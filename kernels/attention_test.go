package kernels

import (
	"fmt"
	"math"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/nlpodyssey/spago/nn"
	"github.com/ssmax/ssmax/attnscale"
)

var attentionCases = []struct {
	rows, heads, kvHeads, hd int
	segments                 []int
}{
	{1, 1, 1, 1, nil},
	{7, 3, 3, 7, nil},
	{7, 1, 1, 33, []int{0, 3}},
	{33, 4, 2, 7, []int{0, 5, 6, 20}}, // GQA 4→2, a one-row segment
	{33, 4, 1, 8, []int{0, 17}},       // MQA 4→1
	{33, 4, 4, 4, nil},
}

var allModes = []attnscale.Variant{attnscale.Softmax, attnscale.SSMax, attnscale.Fixed, attnscale.Bias}

func TestAttention(t *testing.T) {
	for i, c := range attentionCases {
		for _, mode := range allModes {
			name := fmt.Sprintf("T%d_h%d_kv%d_d%d_seg%d_%v", c.rows, c.heads, c.kvHeads, c.hd, len(c.segments), mode)
			t.Run(name, func(t *testing.T) {
				cfg := AttentionConfig{Heads: c.heads, KVHeads: c.kvHeads, HeadDim: c.hd, Variant: mode, Segments: c.segments}
				r := newRand(uint64(1200 + i))
				qw, kw := c.heads*c.hd, c.kvHeads*c.hd
				ins := []input{
					{name: "q", data: randn(r, c.rows*qw, 1), rows: c.rows, cols: qw},
					{name: "k", data: randn(r, c.rows*kw, 1), rows: c.rows, cols: kw},
					{name: "v", data: randn(r, c.rows*kw, 1), rows: c.rows, cols: kw},
				}
				if mode.HasS() {
					ins = append(ins, input{name: "s", data: uniform(r, c.heads, 0.2, 1.2), rows: 1, cols: c.heads})
				}
				if mode.HasB() {
					ins = append(ins, input{name: "b", data: uniform(r, c.heads, -0.5, 0.5), rows: c.heads, cols: 1})
				}
				checkAttention(t, uint64(i), ins, c.rows, cfg, checkOpts{})
			})
		}
	}
}

// checkAttention runs checkOpWith on Attention with cfg against
// attentionRef. ins are q, k, v, then s and b when cfg.Variant uses them.
func checkAttention(t *testing.T, seed uint64, ins []input, rows int, cfg AttentionConfig, o checkOpts) {
	t.Helper()
	si, bi := -1, -1
	if cfg.Variant.HasS() {
		si = 3
	}
	if cfg.Variant.HasB() {
		bi = si + 1
		if si < 0 {
			bi = 3
		}
	}
	checkOpWith(t, seed, ins,
		func(x []mat.Tensor) mat.Tensor {
			var s, b mat.Tensor
			if si >= 0 {
				s = x[si]
			}
			if bi >= 0 {
				b = x[bi]
			}
			return Attention(x[0], x[1], x[2], s, b, cfg)
		},
		func(x [][]float64) []float64 {
			var s, b []float64
			if si >= 0 {
				s = x[si]
			}
			if bi >= 0 {
				b = x[bi]
			}
			return attentionRef(x[0], x[1], x[2], s, b, rows, cfg)
		}, o)
}

// usedParams returns s and b where variant v uses them, nil otherwise (the
// slices AttendCached wants).
func usedParams(v attnscale.Variant, s, b []float32) (sv, bv []float32) {
	if v.HasS() {
		sv = s
	}
	if v.HasB() {
		bv = b
	}
	return sv, bv
}

// TestAttentionUnusedParams passes s and b to modes that do not use them:
// they must be ignored (no gradient, and no stall of spago's backward).
func TestAttentionUnusedParams(t *testing.T) {
	r := newRand(1300)
	const T, H, d = 9, 2, 4
	for _, mode := range []attnscale.Variant{attnscale.Softmax, attnscale.Fixed, attnscale.SSMax} {
		q := nn.NewParam(newDense32(randn(r, T*H*d, 1), T, H*d))
		k := nn.NewParam(newDense32(randn(r, T*H*d, 1), T, H*d))
		v := nn.NewParam(newDense32(randn(r, T*H*d, 1), T, H*d))
		s := nn.NewParam(newDense32([]float32{0.5, 0.7}, 1, H))
		b := nn.NewParam(newDense32([]float32{0.1, 0.2}, 1, H))
		y := Attention(q, k, v, s, b, AttentionConfig{Heads: H, KVHeads: H, HeadDim: d, Variant: mode})
		backwardWith(t, y, randn(r, T*H*d, 1))
		if !q.HasGrad() || !k.HasGrad() || !v.HasGrad() {
			t.Errorf("%v: q/k/v gradients missing", mode)
		}
		if s.HasGrad() != mode.HasS() || b.HasGrad() {
			t.Errorf("%v: s has grad %v, b has grad %v", mode, s.HasGrad(), b.HasGrad())
		}
	}
}

// TestAttentionSegments checks that packed segments equal separate runs.
func TestAttentionSegments(t *testing.T) {
	const T, H, KVH, d = 40, 4, 2, 8
	segs := []int{0, 9, 10, 30}
	r := newRand(1400)
	q := randn(r, T*H*d, 1)
	k := randn(r, T*KVH*d, 1)
	v := randn(r, T*KVH*d, 1)
	s := uniform(r, H, 0.3, 1)
	b := uniform(r, H, -0.3, 0.3)
	for _, mode := range allModes {
		cfg := AttentionConfig{Heads: H, KVHeads: KVH, HeadDim: d, Variant: mode, Segments: segs}
		full := Attention(newDense32(q, T, H*d), newDense32(k, T, KVH*d), newDense32(v, T, KVH*d),
			newDense32(s, 1, H), newDense32(b, 1, H), cfg).Value().Data().F32()
		for i, a := range segs {
			e := T
			if i+1 < len(segs) {
				e = segs[i+1]
			}
			n := e - a
			one := cfg
			one.Segments = nil
			part := Attention(newDense32(q[a*H*d:e*H*d], n, H*d), newDense32(k[a*KVH*d:e*KVH*d], n, KVH*d),
				newDense32(v[a*KVH*d:e*KVH*d], n, KVH*d), newDense32(s, 1, H), newDense32(b, 1, H), one).Value().Data().F32()
			for j, x := range part {
				if full[a*H*d+j] != x {
					t.Fatalf("%v: segment %d differs at %d: %v vs %v", mode, i, j, full[a*H*d+j], x)
				}
			}
		}
	}
}

// TestAttendCached checks that prefill + step-by-step decoding with a KV
// cache reproduces Attention's forward rows.
func TestAttendCached(t *testing.T) {
	const T = 37
	for _, c := range []struct{ h, kv, d int }{{1, 1, 1}, {4, 2, 8}, {3, 1, 7}, {6, 6, 16}} {
		for _, mode := range allModes {
			t.Run(fmt.Sprintf("h%d_kv%d_d%d_%v", c.h, c.kv, c.d, mode), func(t *testing.T) {
				r := newRand(1500)
				qw, kw := c.h*c.d, c.kv*c.d
				q := randn(r, T*qw, 1)
				k := randn(r, T*kw, 1)
				v := randn(r, T*kw, 1)
				s := uniform(r, c.h, 0.3, 1)
				b := uniform(r, c.h, -0.3, 0.3)
				cfg := AttentionConfig{Heads: c.h, KVHeads: c.kv, HeadDim: c.d, Variant: mode}
				want := Attention(newDense32(q, T, qw), newDense32(k, T, kw), newDense32(v, T, kw),
					newDense32(s, 1, c.h), newDense32(b, 1, c.h), cfg).Value().Data().F32()
				sv, bv := usedParams(mode, s, b)
				got := make([]float32, T*qw)
				// Prefill 20 rows, then a chunk of 5, then one row at a time.
				steps := []int{20, 5}
				for n := 25; n < T; n++ {
					steps = append(steps, 1)
				}
				past := 0
				for _, n := range steps {
					// The cache only holds past+n rows.
					AttendCached(got[past*qw:(past+n)*qw], q[past*qw:(past+n)*qw], k[:(past+n)*kw], v[:(past+n)*kw], 0, past, n, sv, bv, cfg)
					past += n
				}
				worst := 0.0
				for i := range want {
					worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
				}
				if worst > 1e-6 {
					t.Errorf("AttendCached differs from Attention by %g", worst)
				}
			})
		}
	}
}

func TestAttentionConfigValidate(t *testing.T) {
	ok := AttentionConfig{Heads: 4, KVHeads: 2, HeadDim: 8, Variant: attnscale.SSMax, Segments: []int{0, 3}}
	if err := ok.Validate(10); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	bad := map[string]AttentionConfig{
		"heads":       {Heads: 0, KVHeads: 1, HeadDim: 8},
		"kv divide":   {Heads: 4, KVHeads: 3, HeadDim: 8},
		"headdim":     {Heads: 4, KVHeads: 4},
		"variant":     {Heads: 1, KVHeads: 1, HeadDim: 1, Variant: "flash"},
		"window":      {Heads: 1, KVHeads: 1, HeadDim: 1, Window: -1},
		"first seg":   {Heads: 1, KVHeads: 1, HeadDim: 1, Segments: []int{1, 3}},
		"unsorted":    {Heads: 1, KVHeads: 1, HeadDim: 1, Segments: []int{0, 5, 5}},
		"seg too big": {Heads: 1, KVHeads: 1, HeadDim: 1, Segments: []int{0, 10}},
	}
	for name, c := range bad {
		if err := c.Validate(10); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
}

func BenchmarkAttention(b *testing.B) {
	const T, H, d = 1024, 6, 64
	r := newRand(1)
	for _, mode := range []attnscale.Variant{attnscale.Softmax, attnscale.SSMax} {
		for _, pass := range []string{"forward", "forward+backward"} {
			b.Run(fmt.Sprintf("T%d_h%d_d%d_%v_%s", T, H, d, mode, pass), func(b *testing.B) {
				q := nn.NewParam(newDense32(randn(r, T*H*d, 1), T, H*d))
				k := nn.NewParam(newDense32(randn(r, T*H*d, 1), T, H*d))
				v := nn.NewParam(newDense32(randn(r, T*H*d, 1), T, H*d))
				s := nn.NewParam(newDense32(uniform(r, H, 0.3, 1), 1, H))
				grad := newDense32(randn(r, T*H*d, 1), T, H*d)
				cfg := AttentionConfig{Heads: H, KVHeads: H, HeadDim: d, Variant: mode}
				b.ResetTimer()
				var cm cpuMeter
				cm.start()
				defer cm.stop(b)
				for i := 0; i < b.N; i++ {
					y := Attention(q, k, v, s, nil, cfg)
					if pass != "forward" {
						backwardWith(b, y, grad.Data().F32())
						for _, p := range []*nn.Param{q, k, v, s} {
							p.ZeroGrad()
						}
					}
				}
				b.ReportMetric(float64(T)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
			})
		}
	}
}

// TestAttentionQKVRoPE checks the fused forms against finite differences
// of the reference: AttentionQKV (q, k, v side by side) and RoPE applied
// inside Attention.
func TestAttentionQKVRoPE(t *testing.T) {
	for i, c := range attentionCases {
		if c.hd%2 != 0 {
			continue
		}
		for _, mode := range []attnscale.Variant{attnscale.Softmax, attnscale.Bias} {
			t.Run(fmt.Sprintf("T%d_h%d_kv%d_d%d_%v", c.rows, c.heads, c.kvHeads, c.hd, mode), func(t *testing.T) {
				r := newRand(uint64(1600 + i))
				pos := make([]int, c.rows)
				for j := range pos {
					pos[j] = r.IntN(50)
				}
				cfg := AttentionConfig{Heads: c.heads, KVHeads: c.kvHeads, HeadDim: c.hd, Variant: mode, Segments: c.segments,
					RoPE: &RoPEConfig{Theta: 500, Positions: pos}}
				qw, kw := c.heads*c.hd, c.kvHeads*c.hd
				w := qw + 2*kw
				ins := []input{{name: "qkv", data: randn(r, c.rows*w, 1), rows: c.rows, cols: w}}
				if mode.HasS() {
					ins = append(ins, input{name: "s", data: uniform(r, c.heads, 0.2, 1.2), rows: 1, cols: c.heads})
					ins = append(ins, input{name: "b", data: uniform(r, c.heads, -0.5, 0.5), rows: c.heads, cols: 1})
				}
				split := func(x []float64) (q, k, v []float64) {
					for t := 0; t < c.rows; t++ {
						row := x[t*w : (t+1)*w]
						q = append(q, row[:qw]...)
						k = append(k, row[qw:qw+kw]...)
						v = append(v, row[qw+kw:]...)
					}
					return ropeRef(q, c.rows, c.heads, c.hd, pos, 500), ropeRef(k, c.rows, c.kvHeads, c.hd, pos, 500), v
				}
				checkOp(t, uint64(i), ins,
					func(x []mat.Tensor) mat.Tensor {
						var s, b mat.Tensor
						if mode.HasS() {
							s, b = x[1], x[2]
						}
						return AttentionQKV(x[0], s, b, cfg)
					},
					func(x [][]float64) []float64 {
						var s, b []float64
						if mode.HasS() {
							s, b = x[1], x[2]
						}
						q, k, v := split(x[0])
						plain := cfg
						plain.RoPE = nil
						return attentionRef(q, k, v, s, b, c.rows, plain)
					})
			})
		}
	}
}

// TestAttentionFusedMatchesComposition: AttentionQKV with RoPE gives the
// output and gradients of Columns + RoPE + Attention bit for bit, and
// Attention with RoPE those of RoPE + Attention.
func TestAttentionFusedMatchesComposition(t *testing.T) {
	const T, H, KVH, d = 45, 4, 2, 8
	segs := []int{0, 20, 21}
	r := newRand(1700)
	pos := []int(nil)
	for _, a := range []int{0, 20, 21} {
		e := T
		if a == 0 {
			e = 20
		} else if a == 20 {
			e = 21
		}
		for t := a; t < e; t++ {
			pos = append(pos, t-a)
		}
	}
	qw, kw := H*d, KVH*d
	w := qw + 2*kw
	x := randn(r, T*w, 1)
	sv := uniform(r, H, 0.3, 1)
	g := randn(r, T*qw, 1)
	cfg := AttentionConfig{Heads: H, KVHeads: KVH, HeadDim: d, Variant: attnscale.SSMax, Segments: segs}
	run := func(fused bool) (out, dx, ds []float32) {
		p := nn.NewParam(newDense32(x, T, w))
		s := nn.NewParam(newDense32(sv, 1, H))
		var y mat.Tensor
		if fused {
			c := cfg
			c.RoPE = &RoPEConfig{Theta: 1e4, Positions: pos}
			y = AttentionQKV(p, s, nil, c)
		} else {
			q := RoPE(Columns(p, 0, qw), H, d, pos, 1e4)
			k := RoPE(Columns(p, qw, qw+kw), KVH, d, pos, 1e4)
			v := Columns(p, qw+kw, w)
			y = Attention(q, k, v, s, nil, cfg)
		}
		backwardWith(t, y, g)
		return y.Value().Data().F32(), grad32(p), grad32(s)
	}
	o1, dx1, ds1 := run(false)
	o2, dx2, ds2 := run(true)
	for i := range o1 {
		if o1[i] != o2[i] {
			t.Fatalf("output %d: composition %v, fused %v", i, o1[i], o2[i])
		}
	}
	for i := range dx1 {
		if dx1[i] != dx2[i] {
			t.Fatalf("qkv gradient %d: composition %v, fused %v", i, dx1[i], dx2[i])
		}
	}
	for i := range ds1 {
		if ds1[i] != ds2[i] {
			t.Fatalf("s gradient %d: composition %v, fused %v", i, ds1[i], ds2[i])
		}
	}
}

// TestAttendCachedLongCache: decoding over a long cache (read directly,
// without packing it for gemm) agrees with Attention to float32 rounding.
func TestAttendCachedLongCache(t *testing.T) {
	const T, H, KVH, d = attendDirectKeys + 40, 4, 2, 16
	r := newRand(1550)
	qw, kw := H*d, KVH*d
	q, k, v := randn(r, T*qw, 1), randn(r, T*kw, 1), randn(r, T*kw, 1)
	s, b := uniform(r, H, 0.3, 1), uniform(r, H, -0.3, 0.3)
	for _, mode := range allModes {
		cfg := AttentionConfig{Heads: H, KVHeads: KVH, HeadDim: d, Variant: mode}
		want := Attention(newDense32(q, T, qw), newDense32(k, T, kw), newDense32(v, T, kw),
			newDense32(s, 1, H), newDense32(b, 1, H), cfg).Value().Data().F32()
		for _, n := range []int{1, attendDirectRows} {
			past := T - n
			got := make([]float32, n*qw)
			AttendCached(got, q[past*qw:], k, v, 0, past, n, s, b, cfg)
			for i, x := range got {
				w := want[past*qw+i]
				if math.Abs(float64(x-w)) > 1e-5*math.Max(1, math.Abs(float64(w))) {
					t.Fatalf("%v, %d rows: value %d is %v, Attention gives %v", mode, n, i, x, w)
				}
			}
		}
	}
}
