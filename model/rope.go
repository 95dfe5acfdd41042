package model

import (
	"sync"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/kernels"
)

// ropeTables caches the inverse frequencies of a model's rotary
// embeddings: they depend on the layer's RoPE (global or local) and, for
// dynamic and LongRoPE scaling only, on the length of the sequence.
type ropeTables struct {
	mu     sync.Mutex
	scale  float64 // rope_theta multiplier (evaluation beyond the training length)
	tables map[ropeKey]ropeTable
}

type ropeKey struct {
	rope   *arch.RoPE
	seqLen int // 0 when the frequencies do not depend on it
}

type ropeTable struct {
	invFreq []float64
	factor  float64
}

// lengthDependent reports whether the frequencies change with the sequence
// length.
func lengthDependent(r *arch.RoPE) bool {
	return r.Scaling != nil && (r.Scaling.Type == arch.RoPEDynamic || r.Scaling.Type == arch.RoPELongRoPE)
}

// get returns the frequencies and attention factor of r for a forward pass
// whose longest document has seqLen tokens.
func (t *ropeTables) get(r *arch.RoPE, seqLen int) ropeTable {
	key := ropeKey{rope: r}
	if lengthDependent(r) {
		key.seqLen = seqLen
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if tab, ok := t.tables[key]; ok {
		return tab
	}
	scaled := *r
	if t.scale > 0 {
		scaled.Theta *= t.scale
	}
	f, a := scaled.Frequencies(seqLen)
	tab := ropeTable{invFreq: f, factor: a}
	if t.tables == nil {
		t.tables = map[ropeKey]ropeTable{}
	}
	t.tables[key] = tab
	return tab
}

// ropeConfig is the rotary embedding of layer l for rows at positions pos
// in a forward pass whose longest document has seqLen tokens.
func (m *Model) ropeConfig(l int, pos []int, seqLen int) *kernels.RoPEConfig {
	r := m.Spec.LayerRoPE(l)
	tab := m.rope.get(r, seqLen)
	return &kernels.RoPEConfig{InvFreq: tab.invFreq, Dim: r.Dim, AttnFactor: tab.factor, Positions: pos}
}

// ScaleRoPETheta multiplies every rope_theta of the model by x (the
// paper's evaluation beyond the training length used 50), in addition to
// Options.RoPEThetaScale.
func (m *Model) ScaleRoPETheta(x float64) {
	m.rope.mu.Lock()
	defer m.rope.mu.Unlock()
	if m.rope.scale == 0 {
		m.rope.scale = 1
	}
	m.rope.scale *= x
	m.rope.tables = nil
}

// RoPEThetaScale is the factor applied to every rope_theta (1 when none).
func (m *Model) RoPEThetaScale() float64 {
	m.rope.mu.Lock()
	defer m.rope.mu.Unlock()
	if m.rope.scale == 0 {
		return 1
	}
	return m.rope.scale
}
