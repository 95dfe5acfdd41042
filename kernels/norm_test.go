package kernels

import (
	"fmt"
	"testing"

	"github.com/nlpodyssey/spago/mat"
)

var normShapes = [][2]int{{1, 1}, {1, 7}, {7, 33}, {33, 7}, {300, 130}}

func TestLayerNorm(t *testing.T) {
	for i, d := range normShapes {
		for _, vec := range []string{"row", "col"} {
			t.Run(fmt.Sprintf("%dx%d_%s", d[0], d[1], vec), func(t *testing.T) {
				r := newRand(uint64(400 + i))
				rows, dim := d[0], d[1]
				gr, gc := 1, dim
				if vec == "col" {
					gr, gc = dim, 1
				}
				// A per-row offset exercises the mean subtraction.
				x := randn(r, rows*dim, 1)
				for j := range x {
					x[j] += float32(j/dim) * 0.5
				}
				ins := []input{
					{name: "x", data: x, rows: rows, cols: dim},
					{name: "gamma", data: uniform(r, dim, 0.5, 1.5), rows: gr, cols: gc},
					{name: "beta", data: randn(r, dim, 0.5), rows: gr, cols: gc},
				}
				const eps = 1e-5
				checkOp(t, uint64(i), ins,
					func(x []mat.Tensor) mat.Tensor { return LayerNorm(x[0], x[1], x[2], eps) },
					func(x [][]float64) []float64 { return layerNormRef(x[0], x[1], x[2], rows, dim, float64(float32(eps))) })
			})
		}
	}
}

func TestRMSNorm(t *testing.T) {
	for i, d := range normShapes {
		t.Run(fmt.Sprintf("%dx%d", d[0], d[1]), func(t *testing.T) {
			r := newRand(uint64(500 + i))
			rows, dim := d[0], d[1]
			ins := []input{
				{name: "x", data: randn(r, rows*dim, 1), rows: rows, cols: dim},
				{name: "gamma", data: uniform(r, dim, 0.5, 1.5), rows: 1, cols: dim},
			}
			const eps = 1e-6
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor { return RMSNorm(x[0], x[1], eps) },
				func(x [][]float64) []float64 { return rmsNormRef(x[0], x[1], rows, dim, float64(float32(eps))) })
		})
	}
}

func TestHeadRMSNorm(t *testing.T) {
	cases := []struct{ rows, heads, hd int }{{1, 1, 1}, {7, 3, 7}, {33, 4, 8}, {7, 1, 33}}
	for i, c := range cases {
		t.Run(fmt.Sprintf("T%d_h%d_d%d", c.rows, c.heads, c.hd), func(t *testing.T) {
			r := newRand(uint64(600 + i))
			ins := []input{
				{name: "x", data: randn(r, c.rows*c.heads*c.hd, 1), rows: c.rows, cols: c.heads * c.hd},
				{name: "gamma", data: uniform(r, c.hd, 0.5, 1.5), rows: c.hd, cols: 1},
			}
			const eps = 1e-6
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor { return HeadRMSNorm(x[0], x[1], c.heads, c.hd, eps) },
				// Each head slice is a contiguous row of headDim values.
				func(x [][]float64) []float64 {
					return rmsNormRef(x[0], x[1], c.rows*c.heads, c.hd, float64(float32(eps)))
				})
		})
	}
}

// rmsNormOffsetRef is rmsNormRef with the gain offset+γ.
func rmsNormOffsetRef(x, g []float64, rows, dim int, eps, offset float64) []float64 {
	gain := make([]float64, len(g))
	for j, v := range g {
		gain[j] = offset + v
	}
	return rmsNormRef(x, gain, rows, dim, eps)
}

func TestRMSNormOffset(t *testing.T) {
	for i, d := range normShapes {
		for _, offset := range []float32{1, -0.5} {
			t.Run(fmt.Sprintf("%dx%d_offset%v", d[0], d[1], offset), func(t *testing.T) {
				r := newRand(uint64(520 + i))
				rows, dim := d[0], d[1]
				ins := []input{
					{name: "x", data: randn(r, rows*dim, 1), rows: rows, cols: dim},
					// Gemma's weights are near 0: the gain is near the offset.
					{name: "gamma", data: uniform(r, dim, -0.3, 0.3), rows: 1, cols: dim},
				}
				const eps = 1e-6
				checkOp(t, uint64(i), ins,
					func(x []mat.Tensor) mat.Tensor { return RMSNormOffset(x[0], x[1], eps, offset) },
					func(x [][]float64) []float64 {
						return rmsNormOffsetRef(x[0], x[1], rows, dim, float64(float32(eps)), float64(offset))
					})
			})
		}
	}
}

func TestHeadRMSNormOffset(t *testing.T) {
	cases := []struct{ rows, heads, hd int }{{1, 1, 1}, {7, 3, 7}, {33, 4, 8}}
	for i, c := range cases {
		t.Run(fmt.Sprintf("T%d_h%d_d%d", c.rows, c.heads, c.hd), func(t *testing.T) {
			r := newRand(uint64(620 + i))
			ins := []input{
				{name: "x", data: randn(r, c.rows*c.heads*c.hd, 1), rows: c.rows, cols: c.heads * c.hd},
				{name: "gamma", data: uniform(r, c.hd, -0.3, 0.3), rows: c.hd, cols: 1},
			}
			const eps, offset = 1e-6, 1
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor { return HeadRMSNormOffset(x[0], x[1], c.heads, c.hd, eps, offset) },
				func(x [][]float64) []float64 {
					return rmsNormOffsetRef(x[0], x[1], c.rows*c.heads, c.hd, float64(float32(eps)), offset)
				})
		})
	}
}

// TestRMSNormOffsetFloat32Gain: the gain is offset+γ rounded to float32
// (as Hugging Face's Gemma computes it), and offset 0 is RMSNorm bit for
// bit.
func TestRMSNormOffsetFloat32Gain(t *testing.T) {
	const rows, dim = 5, 16
	r := newRand(640)
	x := randn(r, rows*dim, 1)
	g := randn(r, dim, 1e-3) // small: 1+γ loses bits in float32
	gain := make([]float32, dim)
	for j, v := range g {
		gain[j] = 1 + v
	}
	a := RMSNormOffset(newDense32(x, rows, dim), newDense32(g, 1, dim), 1e-6, 1).Value().Data().F32()
	b := RMSNorm(newDense32(x, rows, dim), newDense32(gain, 1, dim), 1e-6).Value().Data().F32()
	c := RMSNormOffset(newDense32(x, rows, dim), newDense32(gain, 1, dim), 1e-6, 0).Value().Data().F32()
	for i := range a {
		if a[i] != b[i] || c[i] != b[i] {
			t.Fatalf("value %d: RMSNormOffset(γ, 1) %v, RMSNorm(1+γ) %v, RMSNormOffset(1+γ, 0) %v", i, a[i], b[i], c[i])
		}
	}
}
