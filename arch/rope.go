package arch

import (
	"fmt"
	"math"
	"slices"
)

// RoPE is a rotary position embedding as Hugging Face's
// modeling_rope_utils computes it: inverse frequencies over the first Dim
// dimensions of each head (rotate-half pairs i and i+Dim/2), possibly
// rescaled, and an attention factor that multiplies cos and sin.
type RoPE struct {
	// Theta is the base (rope_theta).
	Theta float64 `json:"theta"`
	// Dim is the number of rotated dimensions per head (even; head_dim,
	// or less with partial rotary embeddings).
	Dim int `json:"dim"`
	// Scaling is nil for plain RoPE.
	Scaling *RoPEScaling `json:"scaling,omitempty"`
	// MaxPositions is the model's max_position_embeddings (dynamic and
	// longrope scaling compare sequence lengths with it).
	MaxPositions int `json:"max_positions"`
}

// RoPE scaling types.
const (
	RoPELinear   = "linear"
	RoPEDynamic  = "dynamic"
	RoPELlama3   = "llama3"
	RoPEYaRN     = "yarn"
	RoPELongRoPE = "longrope"
)

// ropeTypes lists the supported scaling types.
var ropeTypes = []string{RoPELinear, RoPEDynamic, RoPELlama3, RoPEYaRN, RoPELongRoPE}

// RoPEScaling is a rope_scaling / rope_parameters entry other than the
// default, with the keys Hugging Face reads for each type.
type RoPEScaling struct {
	Type   string  `json:"rope_type"`
	Factor float64 `json:"factor,omitempty"`
	// llama3
	LowFreqFactor  float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor float64 `json:"high_freq_factor,omitempty"`
	// OriginalMaxPositions is original_max_position_embeddings (llama3,
	// yarn, longrope).
	OriginalMaxPositions int `json:"original_max_position_embeddings,omitempty"`
	// yarn
	AttentionFactor *float64 `json:"attention_factor,omitempty"`
	BetaFast        float64  `json:"beta_fast,omitempty"`
	BetaSlow        float64  `json:"beta_slow,omitempty"`
	MScale          float64  `json:"mscale,omitempty"`
	MScaleAllDim    float64  `json:"mscale_all_dim,omitempty"`
	Truncate        *bool    `json:"truncate,omitempty"`
	// longrope
	ShortFactor []float64 `json:"short_factor,omitempty"`
	LongFactor  []float64 `json:"long_factor,omitempty"`
}

// validate checks a scaling entry for a rotary dimension dim.
func (sc *RoPEScaling) validate(dim int) error {
	if !slices.Contains(ropeTypes, sc.Type) {
		return fmt.Errorf("%w rope scaling type %q (supported: linear, dynamic, llama3, yarn, longrope)", ErrUnsupported, sc.Type)
	}
	needFactor := sc.Type != RoPELongRoPE
	if needFactor && !(sc.Factor >= 1) {
		return fmt.Errorf("%w: rope scaling %s: factor must be at least 1, got %g", ErrConfig, sc.Type, sc.Factor)
	}
	switch sc.Type {
	case RoPELlama3:
		if !(sc.LowFreqFactor > 0) || !(sc.HighFreqFactor > sc.LowFreqFactor) || sc.OriginalMaxPositions <= 0 {
			return fmt.Errorf("%w: rope scaling llama3 needs low_freq_factor > 0, high_freq_factor > low_freq_factor and original_max_position_embeddings (got %g, %g, %d)",
				ErrConfig, sc.LowFreqFactor, sc.HighFreqFactor, sc.OriginalMaxPositions)
		}
	case RoPELongRoPE:
		if len(sc.ShortFactor) != dim/2 || len(sc.LongFactor) != dim/2 {
			return fmt.Errorf("%w: rope scaling longrope needs short_factor and long_factor of %d values (rotary dim %d / 2), got %d and %d",
				ErrConfig, dim/2, dim, len(sc.ShortFactor), len(sc.LongFactor))
		}
	}
	return nil
}

// Frequencies returns the inverse frequencies (Dim/2 values) and the
// attention factor a forward pass uses when the longest position it sees
// is seqLen-1. Only dynamic and longrope scaling depend on seqLen: as in
// transformers, dynamic NTK recomputes the base once sequences exceed
// max_position_embeddings, and longrope switches from its short to its long
// factors beyond original_max_position_embeddings.
func (r *RoPE) Frequencies(seqLen int) (invFreq []float64, attnFactor float64) {
	dim := r.Dim
	base := r.Theta
	plain := func(base float64) []float64 {
		f := make([]float64, dim/2)
		for i := range f {
			f[i] = 1 / math.Pow(base, float64(2*i)/float64(dim))
		}
		return f
	}
	sc := r.Scaling
	if sc == nil {
		return plain(base), 1
	}
	switch sc.Type {
	case RoPELinear:
		f := plain(base)
		for i := range f {
			f[i] /= sc.Factor
		}
		return f, 1
	case RoPEDynamic:
		maxPos := r.MaxPositions
		if seqLen <= maxPos {
			return plain(base), 1
		}
		b := base * math.Pow(sc.Factor*float64(seqLen)/float64(maxPos)-(sc.Factor-1), float64(dim)/float64(dim-2))
		return plain(b), 1
	case RoPELlama3:
		return llama3Frequencies(plain(base), sc), 1
	case RoPEYaRN:
		return yarnFrequencies(r, sc)
	case RoPELongRoPE:
		return longRoPEFrequencies(r, sc, seqLen)
	}
	return plain(base), 1
}

// llama3Frequencies applies Llama 3.1's smooth frequency scaling.
func llama3Frequencies(f []float64, sc *RoPEScaling) []float64 {
	old := float64(sc.OriginalMaxPositions)
	lowWavelen := old / sc.LowFreqFactor
	highWavelen := old / sc.HighFreqFactor
	out := make([]float64, len(f))
	for i, inv := range f {
		wavelen := 2 * math.Pi / inv
		switch {
		case wavelen < highWavelen:
			out[i] = inv
		case wavelen > lowWavelen:
			out[i] = inv / sc.Factor
		default:
			smooth := (old/wavelen - sc.LowFreqFactor) / (sc.HighFreqFactor - sc.LowFreqFactor)
			out[i] = (1-smooth)*inv/sc.Factor + smooth*inv
		}
	}
	return out
}

// yarnMScale is YaRN's get_mscale.
func yarnMScale(scale, mscale float64) float64 {
	if scale <= 1 {
		return 1
	}
	return 0.1*mscale*math.Log(scale) + 1
}

// yarnFrequencies blends interpolated and extrapolated frequencies with
// YaRN's linear ramp and returns its attention factor.
func yarnFrequencies(r *RoPE, sc *RoPEScaling) ([]float64, float64) {
	dim := float64(r.Dim)
	factor := sc.Factor
	origMax := r.MaxPositions
	if sc.OriginalMaxPositions > 0 {
		origMax = sc.OriginalMaxPositions
	}
	var attn float64
	switch {
	case sc.AttentionFactor != nil:
		attn = *sc.AttentionFactor
	case sc.MScale != 0 && sc.MScaleAllDim != 0:
		attn = yarnMScale(factor, sc.MScale) / yarnMScale(factor, sc.MScaleAllDim)
	default:
		attn = yarnMScale(factor, 1)
	}
	betaFast, betaSlow := sc.BetaFast, sc.BetaSlow
	if betaFast == 0 {
		betaFast = 32
	}
	if betaSlow == 0 {
		betaSlow = 1
	}
	correctionDim := func(rotations float64) float64 {
		return dim * math.Log(float64(origMax)/(rotations*2*math.Pi)) / (2 * math.Log(r.Theta))
	}
	low, high := correctionDim(betaFast), correctionDim(betaSlow)
	if sc.Truncate == nil || *sc.Truncate {
		low, high = math.Floor(low), math.Ceil(high)
	}
	low, high = math.Max(low, 0), math.Min(high, dim-1)
	if low == high {
		high += 0.001
	}
	out := make([]float64, r.Dim/2)
	for i := range out {
		posFreq := math.Pow(r.Theta, float64(2*i)/dim)
		extrapolation := 1 / posFreq
		interpolation := 1 / (factor * posFreq)
		ramp := math.Min(math.Max((float64(i)-low)/(high-low), 0), 1)
		extrapolationFactor := 1 - ramp
		out[i] = interpolation*(1-extrapolationFactor) + extrapolation*extrapolationFactor
	}
	return out, attn
}

// longRoPEFrequencies is Phi-3's LongRoPE: per-frequency rescaling factors,
// short below original_max_position_embeddings and long beyond, with an
// attention factor from the context extension.
func longRoPEFrequencies(r *RoPE, sc *RoPEScaling, seqLen int) ([]float64, float64) {
	origMax := r.MaxPositions
	if sc.OriginalMaxPositions > 0 {
		origMax = sc.OriginalMaxPositions
	}
	factor := sc.Factor
	if factor == 0 {
		factor = float64(r.MaxPositions) / float64(origMax)
	}
	attn := 1.0
	switch {
	case sc.AttentionFactor != nil:
		attn = *sc.AttentionFactor
	case factor > 1:
		attn = math.Sqrt(1 + math.Log(factor)/math.Log(float64(origMax)))
	}
	ext := sc.ShortFactor
	if seqLen > origMax {
		ext = sc.LongFactor
	}
	out := make([]float64, r.Dim/2)
	for i := range out {
		out[i] = 1 / (ext[i] * math.Pow(r.Theta, float64(2*i)/float64(r.Dim)))
	}
	return out, attn
}
