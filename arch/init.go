package arch

import (
	"fmt"
	"math"
	"strings"

	"github.com/ssmax/ssmax/attnscale"
)

// Initialisation strategies for new SSMax parameters.
const (
	// InitMatch sets s = 1/ln(L): SSMax equals softmax at n = L.
	InitMatch = "match"
	// InitConst sets s to a given value.
	InitConst = "const"
	// InitIdentity (bias variant) sets s = 0, b = 1: exactly the original model.
	InitIdentity = "identity"
)

// Inits lists the initialisation strategies.
var Inits = []string{InitMatch, InitConst, InitIdentity}

// InitRequest asks for the initial SSMax parameters of a variant.
type InitRequest struct {
	Variant attnscale.Variant
	Init    string
	// TrainLen is L for InitMatch; 0 takes Context.
	TrainLen int
	// Context is the model's training context.
	Context int
	// S is s for InitConst; B is b for the bias variant (default 0).
	S, B *float64
}

// InitValues are resolved initial values: every head starts at S (and B).
type InitValues struct {
	S, B     float64
	TrainLen int
}

// ResolveInit checks an initialisation request and returns the values.
func ResolveInit(r InitRequest) (InitValues, error) {
	v := InitValues{TrainLen: r.TrainLen}
	if v.TrainLen == 0 {
		v.TrainLen = r.Context
	}
	if _, err := attnscale.ParseSSMax(string(r.Variant)); err != nil {
		return v, err
	}
	if v.TrainLen < 2 {
		return v, fmt.Errorf("--train-len %d: must be at least 2 (ln(1) = 0)", v.TrainLen)
	}
	if r.B != nil && r.Variant != attnscale.Bias {
		return v, fmt.Errorf("--b sets the bias of the bias variant; variant %s has none", r.Variant)
	}
	if r.S != nil && r.Init != InitConst {
		return v, fmt.Errorf("--s sets s for --init const; init is %s", r.Init)
	}
	switch r.Init {
	case InitMatch:
		v.S = attnscale.MatchS(v.TrainLen)
	case InitConst:
		if r.S == nil {
			return v, fmt.Errorf("--init const needs --s VALUE")
		}
		v.S = *r.S
	case InitIdentity:
		if r.Variant != attnscale.Bias {
			return v, fmt.Errorf("--init identity needs --variant bias: only s*ln(n)+b can equal softmax (s=0, b=1) at every position; variant %s cannot", r.Variant)
		}
		if r.B != nil {
			return v, fmt.Errorf("--init identity sets b = 1; do not give --b")
		}
		v.S, v.B = 0, 1
	default:
		return v, fmt.Errorf("--init %q: want %s", r.Init, strings.Join(Inits, ", "))
	}
	if r.B != nil {
		v.B = *r.B
	}
	if math.IsNaN(v.S) || math.IsInf(v.S, 0) || math.IsNaN(v.B) || math.IsInf(v.B, 0) {
		return v, fmt.Errorf("s and b must be finite")
	}
	return v, nil
}

// NewSSMaxConfig is the config object recording an initialisation over layers.
func NewSSMaxConfig(r InitRequest, v InitValues, layers []int) *SSMaxConfig {
	sc := &SSMaxConfig{Variant: r.Variant, Init: r.Init, TrainLen: v.TrainLen, Layers: layers, KeyCount: KeyCountRule, Version: SSMaxFormatVersion}
	if r.Variant.HasS() {
		s := float64(float32(v.S))
		sc.SInit = &s
	}
	if r.Variant.HasB() {
		b := float64(float32(v.B))
		sc.BInit = &b
	}
	return sc
}
