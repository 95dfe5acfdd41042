package kernels

import (
	"math"

	"github.com/ssmax/ssmax/attnscale"
)

// Straightforward float64 reference implementations used by the tests.

func matmulRef(a, b []float64, m, n, k int, transA, transB bool) []float64 {
	c := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			s := 0.0
			for p := 0; p < k; p++ {
				av := a[i*k+p]
				if transA {
					av = a[p*m+i]
				}
				bv := b[p*n+j]
				if transB {
					bv = b[j*k+p]
				}
				s += av * bv
			}
			c[i*n+j] = s
		}
	}
	return c
}

func linearRef(x, w, bias []float64, rows, in, out int, inOut bool) []float64 {
	y := matmulRef(x, w, rows, out, in, false, !inOut)
	if bias != nil {
		for t := 0; t < rows; t++ {
			for j := 0; j < out; j++ {
				y[t*out+j] += bias[j]
			}
		}
	}
	return y
}

func addRef(a, b []float64) []float64 {
	y := make([]float64, len(a))
	for i := range a {
		y[i] = a[i] + b[i]
	}
	return y
}

func layerNormRef(x, g, b []float64, rows, dim int, eps float64) []float64 {
	y := make([]float64, len(x))
	for t := 0; t < rows; t++ {
		r := x[t*dim : (t+1)*dim]
		mu := 0.0
		for _, v := range r {
			mu += v
		}
		mu /= float64(dim)
		va := 0.0
		for _, v := range r {
			va += (v - mu) * (v - mu)
		}
		va /= float64(dim)
		for j, v := range r {
			y[t*dim+j] = (v-mu)/math.Sqrt(va+eps)*g[j] + b[j]
		}
	}
	return y
}

func rmsNormRef(x, g []float64, rows, dim int, eps float64) []float64 {
	y := make([]float64, len(x))
	for t := 0; t < rows; t++ {
		r := x[t*dim : (t+1)*dim]
		ms := 0.0
		for _, v := range r {
			ms += v * v
		}
		ms /= float64(dim)
		for j, v := range r {
			y[t*dim+j] = v / math.Sqrt(ms+eps) * g[j]
		}
	}
	return y
}

func geluRef(x []float64) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*v*v*v)))
	}
	return y
}

// activationRef is act(x), or act(x)·up when up is not nil, from the
// PyTorch definitions (transformers' ACT2FN).
func activationRef(act Activation, x, up []float64) []float64 {
	f := activationRefs[act]
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = f(v)
		if up != nil {
			y[i] *= up[i]
		}
	}
	return y
}

var activationRefs = map[Activation]func(float64) float64{
	SiLU: func(v float64) float64 { return v / (1 + math.Exp(-v)) },
	GELU: func(v float64) float64 { return 0.5 * v * (1 + math.Erf(v/math.Sqrt2)) },
	GELUTanh: func(v float64) float64 {
		return 0.5 * v * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(v+0.044715*math.Pow(v, 3))))
	},
	GELUFast: func(v float64) float64 {
		return 0.5 * v * (1 + math.Tanh(v*0.7978845608*(1+0.044715*v*v)))
	},
	QuickGELU: func(v float64) float64 { return v / (1 + math.Exp(-1.702*v)) },
	ReLU:      func(v float64) float64 { return math.Max(v, 0) },
}

func siluGateRef(g, u []float64) []float64 {
	y := make([]float64, len(g))
	for i := range g {
		y[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
	}
	return y
}

// ropeRef is ropeRefWith with plain RoPE (every dim, theta's frequencies).
func ropeRef(x []float64, rows, heads, hd int, pos []int, theta float64) []float64 {
	return ropeRefWith(x, rows, heads, hd, pos, RoPEConfig{Theta: theta})
}

// ropeRefWith rotates every head of x (rows × heads·hd) by its position
// (pos[t], or t when pos is nil), rotate-half, as cfg says: the first Dim
// dims rotated, InvFreq (or Theta's frequencies over Dim), cos and sin
// times AttnFactor.
func ropeRefWith(x []float64, rows, heads, hd int, pos []int, cfg RoPEConfig) []float64 {
	dim := cfg.Dim
	if dim == 0 {
		dim = hd
	}
	half := dim / 2
	factor := cfg.AttnFactor
	if factor == 0 {
		factor = 1
	}
	y := append([]float64(nil), x...)
	for t := 0; t < rows; t++ {
		p := t
		if pos != nil {
			p = pos[t]
		}
		for h := 0; h < heads; h++ {
			o := t*heads*hd + h*hd
			for i := 0; i < half; i++ {
				fr := math.Pow(cfg.Theta, -2*float64(i)/float64(dim))
				if cfg.InvFreq != nil {
					fr = cfg.InvFreq[i]
				}
				ang := float64(p) * fr
				c, s := math.Cos(ang)*factor, math.Sin(ang)*factor
				y[o+i] = x[o+i]*c - x[o+i+half]*s
				y[o+i+half] = x[o+i+half]*c + x[o+i]*s
			}
		}
	}
	return y
}

func embeddingRef(table []float64, ids []int, d int) []float64 {
	y := make([]float64, 0, len(ids)*d)
	for _, id := range ids {
		y = append(y, table[id*d:(id+1)*d]...)
	}
	return y
}

func crossEntropyRef(logits []float64, targets []int, classes int) []float64 {
	sum, n := 0.0, 0
	for t, tg := range targets {
		if tg < 0 {
			continue
		}
		r := logits[t*classes : (t+1)*classes]
		m := math.Inf(-1)
		for _, v := range r {
			m = math.Max(m, v)
		}
		s := 0.0
		for _, v := range r {
			s += math.Exp(v - m)
		}
		sum += m + math.Log(s) - r[tg]
		n++
	}
	if n == 0 {
		return []float64{0}
	}
	return []float64{sum / float64(n)}
}

// attentionRef builds, for every head, the full masked [T,T] score matrix,
// with cfg's window, scale, soft cap and RoPE (ropeRefWith).
func attentionRef(q, k, v, s, b []float64, rows int, cfg AttentionConfig) []float64 {
	H, KVH, d := cfg.Heads, cfg.KVHeads, cfg.HeadDim
	if r := cfg.RoPE; r != nil {
		q = ropeRefWith(q, rows, H, d, r.Positions, *r)
		k = ropeRefWith(k, rows, KVH, d, r.Positions, *r)
	}
	scale := 1 / math.Sqrt(float64(d))
	if cfg.Scale != 0 {
		scale = float64(cfg.Scale)
	}
	group := H / KVH
	seg := make([]int, rows) // segment index per row
	for t := range seg {
		for i, a := range cfg.Segments {
			if a <= t {
				seg[t] = i
			}
		}
	}
	start := func(t int) int {
		if len(cfg.Segments) == 0 {
			return 0
		}
		return cfg.Segments[seg[t]]
	}
	out := make([]float64, rows*H*d)
	for h := 0; h < H; h++ {
		kvh := h / group
		scores := make([]float64, rows*rows)
		for t := 0; t < rows; t++ {
			n := float64(t - start(t) + 1)
			if cfg.Window > 0 {
				n = math.Min(n, float64(cfg.Window))
			}
			c := 1.0
			switch cfg.Variant {
			case attnscale.SSMax:
				c = s[h] * math.Log(n)
			case attnscale.Fixed:
				c = math.Log(n)
			case attnscale.Bias:
				c = s[h]*math.Log(n) + b[h]
			}
			for j := 0; j < rows; j++ {
				if j > t || seg[j] != seg[t] || cfg.Window > 0 && t-j >= cfg.Window {
					scores[t*rows+j] = math.Inf(-1)
					continue
				}
				z := 0.0
				for i := 0; i < d; i++ {
					z += q[t*H*d+h*d+i] * k[j*KVH*d+kvh*d+i]
				}
				z *= scale
				scores[t*rows+j] = c * z
				if C := float64(cfg.Softcap); C > 0 {
					scores[t*rows+j] = C * math.Tanh(c*z/C)
				}
			}
		}
		for t := 0; t < rows; t++ {
			row := scores[t*rows : (t+1)*rows]
			m := math.Inf(-1)
			for _, l := range row {
				m = math.Max(m, l)
			}
			sum := 0.0
			for j, l := range row {
				row[j] = math.Exp(l - m)
				sum += row[j]
			}
			for j := range row {
				p := row[j] / sum
				if p == 0 {
					continue // masked
				}
				for i := 0; i < d; i++ {
					out[t*H*d+h*d+i] += p * v[j*KVH*d+kvh*d+i]
				}
			}
		}
	}
	return out
}
