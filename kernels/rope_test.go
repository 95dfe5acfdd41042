package kernels

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/nlpodyssey/spago/mat"
)

func TestRoPE(t *testing.T) {
	cases := []struct {
		rows, heads, hd int
		pos             string // "nil", "random", "large"
		theta           float64
	}{
		{1, 1, 2, "nil", 10000},
		{7, 3, 8, "random", 10000},
		{33, 4, 34, "random", 500000},
		{33, 1, 64, "large", 10000},
		{7, 2, 6, "nil", 1e6},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("T%d_h%d_d%d_%s", c.rows, c.heads, c.hd, c.pos), func(t *testing.T) {
			r := newRand(uint64(900 + i))
			var pos []int
			switch c.pos {
			case "random":
				pos = make([]int, c.rows)
				for j := range pos {
					pos[j] = r.IntN(100)
				}
			case "large":
				pos = make([]int, c.rows)
				for j := range pos {
					pos[j] = 100000 + 997*j
				}
			}
			ins := []input{{name: "x", data: randn(r, c.rows*c.heads*c.hd, 1), rows: c.rows, cols: c.heads * c.hd}}
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor { return RoPE(x[0], c.heads, c.hd, pos, c.theta) },
				func(x [][]float64) []float64 { return ropeRef(x[0], c.rows, c.heads, c.hd, pos, c.theta) })
		})
	}
}

// TestRoPEWith checks partial rotation, given frequencies and the
// attention factor against the reference, with gradients (the backward
// pass is the transpose: the inverse rotation times AttnFactor).
func TestRoPEWith(t *testing.T) {
	cases := []struct {
		name            string
		rows, heads, hd int
		cfg             RoPEConfig
		large           bool // positions beyond the shared tables
	}{
		{"full_theta", 7, 3, 8, RoPEConfig{Theta: 1e4}, false},
		{"partial_theta", 9, 2, 10, RoPEConfig{Theta: 1e4, Dim: 4}, false},
		{"partial_invfreq_factor", 9, 3, 12, RoPEConfig{Dim: 6, InvFreq: []float64{1, 0.31, 0.017}, AttnFactor: 1.2}, false},
		{"odd_head_partial", 5, 2, 7, RoPEConfig{Theta: 500, Dim: 2, AttnFactor: 0.8}, false},
		{"factor_only", 6, 1, 6, RoPEConfig{Theta: 1e6, AttnFactor: 1.5}, false},
		{"large_positions", 5, 2, 8, RoPEConfig{Dim: 4, InvFreq: []float64{0.5, 1e-3}, AttnFactor: 1.1}, true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRand(uint64(950 + i))
			pos := make([]int, c.rows)
			for j := range pos {
				pos[j] = r.IntN(200)
				if c.large {
					pos[j] = 1<<17 + 31*j
				}
			}
			ins := []input{{name: "x", data: randn(r, c.rows*c.heads*c.hd, 1), rows: c.rows, cols: c.heads * c.hd}}
			checkOp(t, uint64(i), ins,
				func(x []mat.Tensor) mat.Tensor { return RoPEWith(x[0], c.heads, c.hd, pos, c.cfg) },
				func(x [][]float64) []float64 { return ropeRefWith(x[0], c.rows, c.heads, c.hd, pos, c.cfg) })
		})
	}
}

// TestRoPEWithPositions: nil positions fall back to cfg.Positions, and
// RoPE is RoPEWith with Theta only.
func TestRoPEWithPositions(t *testing.T) {
	const T, H, d = 6, 2, 8
	r := newRand(970)
	x := randn(r, T*H*d, 1)
	pos := []int{5, 3, 9, 0, 2, 7}
	a := RoPEWith(newDense32(x, T, H*d), H, d, nil, RoPEConfig{Theta: 1e4, Positions: pos}).Value().Data().F32()
	b := RoPE(newDense32(x, T, H*d), H, d, pos, 1e4).Value().Data().F32()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("value %d: RoPEWith %v, RoPE %v", i, a[i], b[i])
		}
	}
}

// TestRoPEWithErrors: invalid configurations are refused by Forward.
func TestRoPEWithErrors(t *testing.T) {
	x := newMatrix(2, 8)
	for name, c := range map[string]RoPEConfig{
		"odd dim":      {Theta: 1e4, Dim: 3},
		"dim too big":  {Theta: 1e4, Dim: 6},
		"invfreq size": {InvFreq: []float64{1}},
		"invfreq nan":  {InvFreq: []float64{1, math.NaN()}},
		"no theta":     {},
		"factor":       {Theta: 1e4, AttnFactor: -1},
	} {
		f := &ropeFn{x: x, heads: 2, headDim: 4, theta: c.Theta, invFreq: c.InvFreq, dim: c.Dim, factor: c.AttnFactor}
		if _, err := f.Forward(); err == nil || !strings.Contains(err.Error(), "kernels.RoPE") {
			t.Errorf("%s: error %v", name, err)
		}
	}
}
