package kernels

import (
	"fmt"
	"math"
	"strings"
)

// Mode selects how attention logits are scaled as a function of the number
// of keys n that a query sees.
type Mode int

const (
	// Softmax is standard attention: the logit scale is 1.
	Softmax Mode = iota
	// SSMax is Scalable-Softmax: the logit scale is s·ln(n) with a trainable
	// per-head s.
	SSMax
	// Fixed uses the parameter-free scale ln(n).
	Fixed
	// Bias uses s·ln(n) + b with trainable per-head s and b.
	Bias
)

var modeNames = [...]string{Softmax: "softmax", SSMax: "ssmax", Fixed: "fixed", Bias: "bias"}

// String returns the lower-case name of the mode ("softmax", "ssmax",
// "fixed", "bias").
func (m Mode) String() string {
	if m >= 0 && int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Valid reports whether m is one of the defined modes.
func (m Mode) Valid() bool { return m >= Softmax && m <= Bias }

// UsesS reports whether the mode reads the per-head scale parameter s.
func (m Mode) UsesS() bool { return m == SSMax || m == Bias }

// UsesB reports whether the mode reads the per-head bias parameter b.
func (m Mode) UsesB() bool { return m == Bias }

// ParseMode parses a mode name as produced by Mode.String (case-insensitive,
// surrounding spaces ignored).
func ParseMode(name string) (Mode, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for m, s := range modeNames {
		if s == n {
			return Mode(m), nil
		}
	}
	return Softmax, fmt.Errorf("kernels: unknown attention mode %q (want one of softmax, ssmax, fixed, bias)", name)
}

// MarshalText implements encoding.TextMarshaler.
func (m Mode) MarshalText() ([]byte, error) {
	if !m.Valid() {
		return nil, fmt.Errorf("kernels: invalid attention mode %d", int(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *Mode) UnmarshalText(text []byte) error {
	v, err := ParseMode(string(text))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Scale returns the logit scale of a query that sees n keys:
// s·ln(n) for SSMax, ln(n) for Fixed, s·ln(n)+b for Bias and 1 for Softmax
// (and for any unknown mode). n < 1 is treated as 1. It is the single
// definition of the scale used by Attention, its backward pass and
// AttendCached.
func Scale(mode Mode, s, b float32, n int) float32 {
	switch mode {
	case SSMax:
		return float32(float64(s) * logN(n))
	case Fixed:
		return float32(logN(n))
	case Bias:
		return float32(float64(s)*logN(n) + float64(b))
	default:
		return 1
	}
}

// logN returns ln(max(n, 1)).
func logN(n int) float64 {
	if n <= 1 {
		return 0
	}
	return math.Log(float64(n))
}
