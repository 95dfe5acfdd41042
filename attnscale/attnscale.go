// Package attnscale is the one definition of how SSMax scales attention
// logits: the variants, the factor for a query that sees n keys, and the
// initial values of s. Every package that needs one of these (arch,
// convert, kernels, model, finetune, eval) uses this package, so the
// variants cannot drift apart.
package attnscale

import (
	"fmt"
	"math"
	"strings"
)

// Variant selects how a layer scales its attention logits as a function of
// the number of keys n that a query sees. Its text form is what
// config.json's "ssmax" object and the command-line flags use.
type Variant string

// The attention variants.
const (
	// Softmax is standard attention: the factor is 1.
	Softmax Variant = "softmax"
	// SSMax is Scalable-Softmax: the factor is s·ln(n) with a learned s per head.
	SSMax Variant = "ssmax"
	// Fixed is the parameter-free factor ln(n).
	Fixed Variant = "fixed"
	// Bias is s·ln(n) + b with learned s and b per head.
	Bias Variant = "bias"
)

// SSMaxVariants lists the SSMax variants (every variant but Softmax) in the
// order they are documented.
var SSMaxVariants = []Variant{SSMax, Fixed, Bias}

// Variants lists every variant, softmax first.
var Variants = []Variant{Softmax, SSMax, Fixed, Bias}

// Parse parses a variant name (case-insensitive, surrounding spaces
// ignored).
func Parse(name string) (Variant, error) {
	n := Variant(strings.ToLower(strings.TrimSpace(name)))
	for _, v := range Variants {
		if v == n {
			return v, nil
		}
	}
	return "", fmt.Errorf("unknown attention variant %q (want softmax, ssmax, fixed or bias)", name)
}

// ParseSSMax parses the name of an SSMax variant: ssmax, fixed or bias
// (softmax is refused: it is the absence of SSMax).
func ParseSSMax(name string) (Variant, error) {
	v, err := Parse(name)
	if err != nil || v == Softmax {
		return "", fmt.Errorf("unknown SSMax variant %q (want ssmax, fixed or bias)", name)
	}
	return v, nil
}

// Valid reports whether v is one of the defined variants.
func (v Variant) Valid() bool {
	switch v {
	case Softmax, SSMax, Fixed, Bias:
		return true
	}
	return false
}

// IsSSMax reports whether v scales logits by a function of n (every
// variant but Softmax).
func (v Variant) IsSSMax() bool { return v == SSMax || v == Fixed || v == Bias }

// HasS reports whether the variant has a learned s per head.
func (v Variant) HasS() bool { return v == SSMax || v == Bias }

// HasB reports whether the variant has a learned b per head.
func (v Variant) HasB() bool { return v == Bias }

// String returns the variant's name.
func (v Variant) String() string { return string(v) }

// Factor returns the logit factor of a query that sees n keys: s·ln(n)
// (SSMax), ln(n) (Fixed), s·ln(n)+b (Bias) and 1 (Softmax and anything
// else). n < 1 counts as 1. It is the single definition of the scale used
// by training, evaluation, decoding with a KV cache and attention probes.
func Factor(v Variant, s, b float32, n int) float32 {
	switch v {
	case SSMax:
		return float32(float64(s) * LogN(n))
	case Fixed:
		return float32(LogN(n))
	case Bias:
		return float32(float64(s)*LogN(n) + float64(b))
	default:
		return 1
	}
}

// LogN returns ln(max(n, 1)): the SSMax length term.
func LogN(n int) float64 {
	if n <= 1 {
		return 0
	}
	return math.Log(float64(n))
}

// MatchS is the s of the "match" initialisation for training length L,
// 1/ln(L): at n = L the SSMax factor is 1, so the model equals softmax
// there (flatter below L, sharper above).
func MatchS(trainLen int) float64 { return 1 / math.Log(float64(trainLen)) }

// Values returns per-head values (one per head, e.g. calibrated) as the
// float32 of an SSMax parameter.
func Values(perHead []float64) []float32 {
	x := make([]float32, len(perHead))
	for i, v := range perHead {
		x[i] = float32(v)
	}
	return x
}

// PerHead returns heads copies of v as float32: the initial value of a
// per-head SSMax parameter.
func PerHead(heads int, v float64) []float32 {
	x := make([]float32, heads)
	for i := range x {
		x[i] = float32(v)
	}
	return x
}
