package kernels

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/nlpodyssey/spago/nn"
	"github.com/ssmax/ssmax/attnscale"
)

// segPositions returns every row's position within its segment.
func segPositions(rows int, segs []int) []int {
	pos := make([]int, rows)
	a := 0
	for t := range pos {
		for _, s := range segs {
			if s <= t {
				a = s
			}
		}
		pos[t] = t - a
	}
	return pos
}

// featureConfig returns the scale, soft cap and RoPE of the attention
// feature tests, varied with the variant so that every variant meets a
// soft cap and a partial RoPE somewhere.
func featureConfig(cfg AttentionConfig, i int, pos []int) AttentionConfig {
	rope := &RoPEConfig{Dim: 4, InvFreq: []float64{0.9, 0.13}, AttnFactor: 1.3, Positions: pos}
	switch i % 4 {
	case 0:
		cfg.Scale = 0.3
	case 1:
		cfg.Softcap = 2
		cfg.RoPE = rope
	case 2:
		cfg.Scale, cfg.Softcap = 0.5, 1.5
	case 3:
		cfg.Softcap = 3
		cfg.RoPE = rope
	}
	return cfg
}

// checkAttentionFeatures runs checkOpWith on Attention with cfg against
// attentionRef, for q, k, v and the s, b the variant uses.
//
// With Window 1 every query attends to its own key only: the output is v
// whatever q, k, s and b, whose gradients are then rounding noise (the
// relative check of checkOpWith is meaningless against a zero finite
// difference). They are made constants, and TestAttentionWindowOne checks
// that their gradients are negligible.
func checkAttentionFeatures(t *testing.T, seed uint64, rows int, cfg AttentionConfig, fdElems int) {
	t.Helper()
	r := newRand(seed)
	qw, kw := cfg.Heads*cfg.HeadDim, cfg.KVHeads*cfg.HeadDim
	one := cfg.Window == 1
	ins := []input{
		{name: "q", data: randn(r, rows*qw, 1), rows: rows, cols: qw, noGrad: one},
		{name: "k", data: randn(r, rows*kw, 1), rows: rows, cols: kw, noGrad: one},
		{name: "v", data: randn(r, rows*kw, 1), rows: rows, cols: kw},
	}
	if cfg.Variant.HasS() {
		ins = append(ins, input{name: "s", data: uniform(r, cfg.Heads, 0.4, 1.2), rows: 1, cols: cfg.Heads, noGrad: one})
	}
	if cfg.Variant.HasB() {
		ins = append(ins, input{name: "b", data: uniform(r, cfg.Heads, -0.5, 0.5), rows: cfg.Heads, cols: 1, noGrad: one})
	}
	checkAttention(t, seed, ins, rows, cfg, checkOpts{fdElems: fdElems})
}

// TestAttentionWindow checks sliding windows (W in {1, 2, 5, T−1, T, > T})
// over packed segments and GQA with every variant, Scale, Softcap and a
// partial RoPE with given frequencies and attention factor: forward
// against attentionRef, gradients of q, k, v, s, b against finite
// differences.
func TestAttentionWindow(t *testing.T) {
	const T, H, KVH, d = 13, 4, 2, 6
	segs := []int{0, 4, 5} // a one-row segment, and a segment longer than small windows
	pos := segPositions(T, segs)
	for wi, W := range []int{1, 2, 5, T - 1, T, T + 4} {
		for vi, mode := range allModes {
			cfg := AttentionConfig{Heads: H, KVHeads: KVH, HeadDim: d, Variant: mode, Segments: segs, Window: W}
			cfg = featureConfig(cfg, vi+wi, pos)
			name := fmt.Sprintf("W%d_%v_scale%v_cap%v_rope%v", W, mode, cfg.Scale, cfg.Softcap, cfg.RoPE != nil)
			t.Run(name, func(t *testing.T) { checkAttentionFeatures(t, uint64(2000+10*wi+vi), T, cfg, 0) })
		}
	}
}

// TestAttentionWindowOne: with a window of 1 the output is v and the
// gradients of q, k, s and b are zero up to rounding.
func TestAttentionWindowOne(t *testing.T) {
	const T, H, KVH, d = 70, 4, 2, 8
	r := newRand(2050)
	q := nn.NewParam(newDense32(randn(r, T*H*d, 1), T, H*d))
	k := nn.NewParam(newDense32(randn(r, T*KVH*d, 1), T, KVH*d))
	vv := randn(r, T*KVH*d, 1)
	v := nn.NewParam(newDense32(vv, T, KVH*d))
	s := nn.NewParam(newDense32(uniform(r, H, 0.3, 1), 1, H))
	b := nn.NewParam(newDense32(uniform(r, H, -0.3, 0.3), 1, H))
	cfg := AttentionConfig{Heads: H, KVHeads: KVH, HeadDim: d, Variant: attnscale.Bias, Window: 1, Softcap: 2, Segments: []int{0, 30}}
	y := Attention(q, k, v, s, b, cfg)
	backwardWith(t, y, randn(r, T*H*d, 1))
	out := y.Value().Data().F32()
	for t0 := 0; t0 < T; t0++ {
		for h := 0; h < H; h++ {
			for i := 0; i < d; i++ {
				if w, g := vv[t0*KVH*d+(h/2)*d+i], out[t0*H*d+h*d+i]; math.Abs(float64(w-g)) > 1e-6 {
					t.Fatalf("row %d head %d: output %v, v %v", t0, h, g, w)
				}
			}
		}
	}
	for name, p := range map[string]*nn.Param{"q": q, "k": k, "s": s, "b": b} {
		if m := maxAbs(f64(grad32(p))); m > 1e-5 {
			t.Errorf("gradient of %s up to %g, want ~0", name, m)
		}
	}
}

// TestAttentionWindowLong: windows across the kernel's blocks (64 query
// rows, 256-key forward chunks, 64-row backward tiles), where blocks of
// keys are skipped; a subset of the gradients is checked.
func TestAttentionWindowLong(t *testing.T) {
	const T, H, KVH, d = 320, 2, 1, 6
	segs := []int{0, 290} // a segment crossing a forward chunk boundary
	pos := segPositions(T, segs)
	for wi, W := range []int{5, 70, 257} {
		mode := allModes[(wi+1)%len(allModes)]
		cfg := AttentionConfig{Heads: H, KVHeads: KVH, HeadDim: d, Variant: mode, Segments: segs, Window: W}
		cfg = featureConfig(cfg, wi, pos)
		name := fmt.Sprintf("W%d_%v_scale%v_cap%v_rope%v", W, mode, cfg.Scale, cfg.Softcap, cfg.RoPE != nil)
		t.Run(name, func(t *testing.T) { checkAttentionFeatures(t, uint64(2100+wi), T, cfg, 20) })
	}
}

// TestAttentionFeaturesNoWindow: Scale, Softcap and partial RoPE without a
// window, on the shapes of TestAttention.
func TestAttentionFeaturesNoWindow(t *testing.T) {
	for i, c := range attentionCases {
		if c.hd < 4 {
			continue // the partial RoPE rotates 4 dims
		}
		for _, vi := range []int{i % 4, (i + 1) % 4} { // every variant with each feature over the cases
			mode := allModes[vi]
			cfg := AttentionConfig{Heads: c.heads, KVHeads: c.kvHeads, HeadDim: c.hd, Variant: mode, Segments: c.segments}
			cfg = featureConfig(cfg, vi, segPositions(c.rows, c.segments))
			t.Run(fmt.Sprintf("T%d_h%d_kv%d_d%d_%v", c.rows, c.heads, c.kvHeads, c.hd, mode), func(t *testing.T) {
				checkAttentionFeatures(t, uint64(2200+10*i+vi), c.rows, cfg, 0)
			})
		}
	}
}

// TestAttentionWindowCovering: a window covering every segment gives
// Attention without a window, bit for bit, forward and backward.
func TestAttentionWindowCovering(t *testing.T) {
	const T, H, KVH, d = 150, 4, 2, 8
	segs := []int{0, 100}
	r := newRand(2300)
	q, k, v := randn(r, T*H*d, 1), randn(r, T*KVH*d, 1), randn(r, T*KVH*d, 1)
	sv := uniform(r, H, 0.3, 1)
	g := randn(r, T*H*d, 1)
	run := func(W int) [][]float32 {
		qp, kp, vp := nn.NewParam(newDense32(q, T, H*d)), nn.NewParam(newDense32(k, T, KVH*d)), nn.NewParam(newDense32(v, T, KVH*d))
		sp := nn.NewParam(newDense32(sv, 1, H))
		y := Attention(qp, kp, vp, sp, nil, AttentionConfig{Heads: H, KVHeads: KVH, HeadDim: d, Variant: attnscale.SSMax, Segments: segs, Window: W, Softcap: 5})
		backwardWith(t, y, g)
		return [][]float32{y.Value().Data().F32(), grad32(qp), grad32(kp), grad32(vp), grad32(sp)}
	}
	want := run(0)
	for _, W := range []int{100, 101, 1000} {
		got := run(W)
		for i := range want {
			for j := range want[i] {
				if got[i][j] != want[i][j] {
					t.Fatalf("W=%d: result %d differs at %d: %v vs %v", W, i, j, got[i][j], want[i][j])
				}
			}
		}
	}
}

// TestAttentionQKVGQA: AttentionQKV over a fused [q | k | v] input with
// grouped-query widths (Heads·HeadDim, KVHeads·HeadDim, KVHeads·HeadDim)
// gives Attention on the split inputs bit for bit, output and gradients,
// with a window, soft cap and partial RoPE.
func TestAttentionQKVGQA(t *testing.T) {
	const T, H, KVH, d = 90, 6, 2, 8
	segs := []int{0, 70}
	qw, kw := H*d, KVH*d
	w := qw + 2*kw
	r := newRand(2400)
	x := randn(r, T*w, 1)
	sv, bv := uniform(r, H, 0.3, 1), uniform(r, H, -0.3, 0.3)
	g := randn(r, T*qw, 1)
	cfg := AttentionConfig{Heads: H, KVHeads: KVH, HeadDim: d, Variant: attnscale.Bias, Segments: segs, Window: 20, Softcap: 4,
		RoPE: &RoPEConfig{Dim: 4, InvFreq: []float64{0.7, 0.05}, AttnFactor: 1.1, Positions: segPositions(T, segs)}}
	cols := func(a, b int) []float32 {
		var out []float32
		for t := 0; t < T; t++ {
			out = append(out, x[t*w+a:t*w+b]...)
		}
		return out
	}
	// Fused.
	p := nn.NewParam(newDense32(x, T, w))
	s1, b1 := nn.NewParam(newDense32(sv, 1, H)), nn.NewParam(newDense32(bv, 1, H))
	y1 := AttentionQKV(p, s1, b1, cfg)
	backwardWith(t, y1, g)
	// Split.
	q := nn.NewParam(newDense32(cols(0, qw), T, qw))
	k := nn.NewParam(newDense32(cols(qw, qw+kw), T, kw))
	v := nn.NewParam(newDense32(cols(qw+kw, w), T, kw))
	s2, b2 := nn.NewParam(newDense32(sv, 1, H)), nn.NewParam(newDense32(bv, 1, H))
	y2 := Attention(q, k, v, s2, b2, cfg)
	backwardWith(t, y2, g)
	same := func(what string, a, b []float32) {
		t.Helper()
		if len(a) != len(b) {
			t.Fatalf("%s: %d vs %d values", what, len(a), len(b))
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s differs at %d: fused %v, split %v", what, i, a[i], b[i])
			}
		}
	}
	same("output", y1.Value().Data().F32(), y2.Value().Data().F32())
	dx := grad32(p)
	split := func(a, b int) []float32 {
		var out []float32
		for t := 0; t < T; t++ {
			out = append(out, dx[t*w+a:t*w+b]...)
		}
		return out
	}
	same("q gradient", split(0, qw), grad32(q))
	same("k gradient", split(qw, qw+kw), grad32(k))
	same("v gradient", split(qw+kw, w), grad32(v))
	same("s gradient", grad32(s1), grad32(s2))
	same("b gradient", grad32(b1), grad32(b2))
}

// TestAttendCachedWindow feeds a document in chunks of 1 and of 5 rows to
// AttendCached with a bounded cache (rows older than W−1 positions
// dropped between calls, so cacheStart > 0), and compares with the rows of
// Attention: window, Scale, soft cap and partially rotated q and k
// (rotated by RoPEWith for AttendCached, by Attention itself from cfg.RoPE).
// The long window exercises the direct path over a long cache.
func TestAttendCachedWindow(t *testing.T) {
	const H, KVH, d = 4, 2, 8
	rope := RoPEConfig{Dim: 6, InvFreq: []float64{1, 0.2, 0.01}, AttnFactor: 1.2}
	for _, c := range []struct {
		T, W    int
		softcap float32
		scale   float32
	}{
		{40, 0, 3, 0},
		{40, 1, 0, 0.4},
		{60, 7, 3, 0},
		{60, 16, 2, 0.3},
		{330, 260, 4, 0}, // a cache of 259+n rows: attendDirect for single rows
	} {
		for _, mode := range allModes {
			for _, chunk := range []int{1, 5} {
				t.Run(fmt.Sprintf("T%d_W%d_cap%v_%v_chunk%d", c.T, c.W, c.softcap, mode, chunk), func(t *testing.T) {
					T := c.T
					r := newRand(2500)
					qw, kw := H*d, KVH*d
					q, k, v := randn(r, T*qw, 1), randn(r, T*kw, 1), randn(r, T*kw, 1)
					s, b := uniform(r, H, 0.3, 1), uniform(r, H, -0.3, 0.3)
					cfg := AttentionConfig{Heads: H, KVHeads: KVH, HeadDim: d, Variant: mode, Window: c.W, Softcap: c.softcap, Scale: c.scale}
					full := cfg
					full.RoPE = &rope
					want := Attention(newDense32(q, T, qw), newDense32(k, T, kw), newDense32(v, T, kw),
						newDense32(s, 1, H), newDense32(b, 1, H), full).Value().Data().F32()
					qr := RoPEWith(newDense32(q, T, qw), H, d, nil, rope).Value().Data().F32()
					kr := RoPEWith(newDense32(k, T, kw), KVH, d, nil, rope).Value().Data().F32()
					sv, bv := usedParams(mode, s, b)
					got := make([]float32, T*qw)
					var kc, vc []float32 // the cache: positions cacheStart … past−1
					cacheStart, past := 0, 0
					for past < T {
						n := min(chunk, T-past)
						kc = append(kc, kr[past*kw:(past+n)*kw]...)
						vc = append(vc, v[past*kw:(past+n)*kw]...)
						AttendCached(got[past*qw:(past+n)*qw], qr[past*qw:(past+n)*qw], kc, vc, cacheStart, past, n, sv, bv, cfg)
						past += n
						if c.W > 0 { // keep the last W−1 positions
							if drop := past - (c.W - 1) - cacheStart; drop > 0 {
								kc = append([]float32(nil), kc[drop*kw:]...)
								vc = append([]float32(nil), vc[drop*kw:]...)
								cacheStart += drop
							}
						}
					}
					if c.W > 0 && T > c.W && cacheStart == 0 {
						t.Fatal("the cache was never trimmed")
					}
					for i, x := range got {
						w := want[i]
						if math.Abs(float64(x-w)) > 2e-6*math.Max(1, math.Abs(float64(w))) {
							t.Fatalf("row %d: AttendCached gives %v, Attention %v", i/qw, x, w)
						}
					}
				})
			}
		}
	}
}

// TestAttendCachedShortCache: a cache that does not hold a key a query
// needs is a panic naming AttendCached.
func TestAttendCachedShortCache(t *testing.T) {
	cfg := AttentionConfig{Heads: 1, KVHeads: 1, HeadDim: 2, Window: 4}
	kv := make([]float32, 2*10)
	for name, f := range map[string]func(){
		"window": func() { AttendCached(make([]float32, 2), make([]float32, 2), kv, kv, 4, 6, 1, nil, nil, cfg) }, // needs position 3
		"no window": func() {
			AttendCached(make([]float32, 2), make([]float32, 2), kv, kv, 1, 6, 1, nil, nil, AttentionConfig{Heads: 1, KVHeads: 1, HeadDim: 2})
		},
		"short": func() { AttendCached(make([]float32, 2), make([]float32, 2), kv[:6], kv, 3, 6, 1, nil, nil, cfg) }, // 4 rows needed
	} {
		func() {
			defer func() {
				r := recover()
				if s, ok := r.(string); !ok || !strings.Contains(s, "kernels.AttendCached") {
					t.Errorf("%s: panic %v", name, r)
				}
			}()
			f()
		}()
	}
	// The cache that is exactly enough works.
	AttendCached(make([]float32, 2), make([]float32, 2), kv[:8], kv[:8], 3, 6, 1, nil, nil, cfg)
}

// TestAttentionConfigValidateFeatures: the new fields are checked.
func TestAttentionConfigValidateFeatures(t *testing.T) {
	base := AttentionConfig{Heads: 2, KVHeads: 1, HeadDim: 8}
	good := []func(*AttentionConfig){
		func(c *AttentionConfig) { c.Window = 4 },
		func(c *AttentionConfig) { c.Scale, c.Softcap = 0.1, 50 },
		func(c *AttentionConfig) { c.RoPE = &RoPEConfig{Theta: 1e4, Dim: 4} },
		func(c *AttentionConfig) { c.RoPE = &RoPEConfig{InvFreq: []float64{1, 2, 3, 4}, AttnFactor: 1.2} },
	}
	bad := map[string]func(*AttentionConfig){
		"window":        func(c *AttentionConfig) { c.Window = -2 },
		"softcap":       func(c *AttentionConfig) { c.Softcap = -1 },
		"softcap nan":   func(c *AttentionConfig) { c.Softcap = float32(math.NaN()) },
		"scale":         func(c *AttentionConfig) { c.Scale = -0.5 },
		"rope odd dim":  func(c *AttentionConfig) { c.RoPE = &RoPEConfig{Theta: 1e4, Dim: 3} },
		"rope big dim":  func(c *AttentionConfig) { c.RoPE = &RoPEConfig{Theta: 1e4, Dim: 10} },
		"rope neg dim":  func(c *AttentionConfig) { c.RoPE = &RoPEConfig{Theta: 1e4, Dim: -2} },
		"rope invfreq":  func(c *AttentionConfig) { c.RoPE = &RoPEConfig{InvFreq: []float64{1, 2}} },
		"rope theta":    func(c *AttentionConfig) { c.RoPE = &RoPEConfig{} },
		"rope factor":   func(c *AttentionConfig) { c.RoPE = &RoPEConfig{Theta: 1e4, AttnFactor: -1} },
		"rope odd head": func(c *AttentionConfig) { c.HeadDim = 7; c.RoPE = &RoPEConfig{Theta: 1e4} },
	}
	for i, f := range good {
		c := base
		f(&c)
		if err := c.Validate(5); err != nil {
			t.Errorf("good config %d: %v", i, err)
		}
	}
	for name, f := range bad {
		c := base
		f(&c)
		if err := c.Validate(5); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
}

// BenchmarkAttentionWindow: a window of 256 over T = 4096 against full
// causal attention (the window skips the key blocks outside it), forward
// and forward+backward, in tokens/s.
func BenchmarkAttentionWindow(b *testing.B) {
	const T, H, KVH, d = 4096, 4, 2, 64
	r := newRand(1)
	q := nn.NewParam(newDense32(randn(r, T*H*d, 1), T, H*d))
	k := nn.NewParam(newDense32(randn(r, T*KVH*d, 1), T, KVH*d))
	v := nn.NewParam(newDense32(randn(r, T*KVH*d, 1), T, KVH*d))
	grad := randn(r, T*H*d, 1)
	for _, W := range []int{0, 256} {
		for _, pass := range []string{"forward", "forward+backward"} {
			b.Run(fmt.Sprintf("T%d_W%d_%s", T, W, pass), func(b *testing.B) {
				cfg := AttentionConfig{Heads: H, KVHeads: KVH, HeadDim: d, Window: W}
				for i := 0; i < b.N; i++ {
					y := Attention(q, k, v, nil, nil, cfg)
					if pass != "forward" {
						backwardWith(b, y, grad)
						for _, p := range []*nn.Param{q, k, v} {
							p.ZeroGrad()
						}
					}
				}
				b.ReportMetric(float64(T)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
			})
		}
	}
}
