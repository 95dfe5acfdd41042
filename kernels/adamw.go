package kernels

import "math"

// AdamW holds the constants of one AdamW update, as float32: spago's
// Adam(W) rounds its float64 hyper-parameters to float32 before use.
type AdamW struct {
	// Factor scales the gradient first (1: unscaled).
	Factor float32
	// Beta1, OneMinusBeta1, Beta2 and OneMinusBeta2 are β1, 1−β1, β2 and
	// 1−β2, each rounded from its float64 value.
	Beta1, OneMinusBeta1, Beta2, OneMinusBeta2 float32
	// Eps is ε, Alpha the step size α, Lambda the weight decay λ.
	Eps, Alpha, Lambda float32
	// Decay applies the weight decay (spago skips the term when λ is 0).
	Decay bool
}

// Step applies the update to the weights w with gradients g, first moments
// v and second moments m (all as long as w), each value through float32
// operations rounded one by one, in this order:
//
//	g *= Factor
//	v = v·β1 + g·(1−β1)
//	m = m·β2 + (g·g)·(1−β2)
//	d = v / (√m + ε)            (+ w·λ when Decay)
//	w = w − d·α
//
// It reports whether every updated weight is finite. On AVX2 the loop runs
// eight values at a time with the same operations (VSQRTPS is √ correctly
// rounded to float32, as float32(math.Sqrt(float64(x))) is), so the results
// are the same bit for bit (TestAdamWStep).
func (a *AdamW) Step(w, g, v, m []float32) (finite bool) {
	g, v, m = g[:len(w)], v[:len(w)], m[:len(w)]
	done, vecFinite := 0, true
	if useVec {
		done, vecFinite = adamWVec(a, w, g, v, m)
	}
	goFinite := a.stepGo(w[done:], g[done:], v[done:], m[done:])
	return vecFinite && goFinite
}

// stepGo is Step's Go loop.
func (a *AdamW) stepGo(w, g, v, m []float32) (finite bool) {
	g, v, m = g[:len(w)], v[:len(w)], m[:len(w)]
	nonFinite := 0
	for i, wi := range w {
		gi := g[i]
		if a.Factor != 1 {
			gi = float32(gi * a.Factor)
		}
		vi := float32(v[i]*a.Beta1) + float32(gi*a.OneMinusBeta1)
		mi := float32(m[i]*a.Beta2) + float32(float32(gi*gi)*a.OneMinusBeta2)
		d := vi / (float32(math.Sqrt(float64(mi))) + a.Eps)
		if a.Decay {
			d = d + float32(wi*a.Lambda)
		}
		nw := wi - float32(d*a.Alpha)
		w[i] = nw
		v[i], m[i] = vi, mi
		if math.Float32bits(nw)&0x7f800000 == 0x7f800000 { // all exponent bits set: Inf or NaN
			nonFinite++
		}
	}
	return nonFinite == 0
}
