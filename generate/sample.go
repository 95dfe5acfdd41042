package generate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// Sampling chooses how each next token is picked from the logits. The
// warpers run in Hugging Face's order: temperature, then top-k, then top-p.
type Sampling struct {
	// Temperature divides the logits; 0 is greedy decoding (argmax, the
	// lowest id on ties), and top-k and top-p are then ignored.
	Temperature float64
	// TopK keeps the tokens whose logit is at least the k-th largest (ties
	// at the boundary kept, as HF's TopKLogitsWarper); 0 keeps all.
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probability
	// reaches TopP (nucleus sampling, as HF's TopPLogitsWarper, keeping at
	// least one token); 0 or 1 keeps all.
	TopP float64
}

// Greedy reports whether s picks the argmax.
func (s Sampling) Greedy() bool { return s.Temperature == 0 }

// Validate checks the ranges.
func (s Sampling) Validate() error {
	switch {
	case s.Temperature < 0 || math.IsNaN(s.Temperature) || math.IsInf(s.Temperature, 0):
		return fmt.Errorf("temperature %v: want 0 (greedy) or a positive number", s.Temperature)
	case s.TopK < 0:
		return fmt.Errorf("top-k %d: want 0 (off) or a positive count", s.TopK)
	case !(s.TopP >= 0 && s.TopP <= 1):
		return fmt.Errorf("top-p %v: want a probability in (0, 1] (0 is off)", s.TopP)
	}
	return nil
}

// Argmax returns the index of the largest logit, the lowest on ties (NaN
// never wins).
func Argmax(logits []float32) int {
	best := 0
	for i, x := range logits {
		if x > logits[best] || (math.IsNaN(float64(logits[best])) && !math.IsNaN(float64(x))) {
			best = i
		}
	}
	return best
}

// Candidates returns the tokens sampling with s may pick from logits and
// their probabilities (summing to 1), most likely first (ties: lower id
// first): softmax of the logits divided by the temperature over the tokens
// that top-k and then top-p keep. Greedy sampling gives the argmax alone.
func Candidates(logits []float32, s Sampling) (ids []int, probs []float64) {
	if s.Greedy() {
		return []int{Argmax(logits)}, []float64{1}
	}
	z := make([]float64, len(logits))
	order := make([]int, 0, len(logits))
	for i, x := range logits {
		if math.IsNaN(float64(x)) {
			continue
		}
		z[i] = float64(x) / s.Temperature
		order = append(order, i)
	}
	if len(order) == 0 {
		return []int{0}, []float64{1}
	}
	sort.SliceStable(order, func(a, b int) bool { return z[order[a]] > z[order[b]] })
	// Top-k: every token whose score is at least the k-th largest.
	if k := s.TopK; k > 0 && k < len(order) {
		kth := z[order[k-1]]
		n := k
		for n < len(order) && z[order[n]] >= kth {
			n++
		}
		order = order[:n]
	}
	// Softmax over the kept tokens (the others are -inf).
	top := z[order[0]]
	if math.IsInf(top, -1) {
		return []int{order[0]}, []float64{1}
	}
	probs = make([]float64, len(order))
	var sum float64
	for i, id := range order {
		probs[i] = math.Exp(z[id] - top)
		sum += probs[i]
	}
	for i := range probs {
		probs[i] /= sum
	}
	// Top-p as HF's TopPLogitsWarper: from the least likely token up, the
	// cumulative probability; tokens where it is at most 1-p are removed,
	// the most likely one always kept.
	if p := s.TopP; p > 0 && p < 1 {
		n := len(order)
		var cum float64
		for i := len(order) - 1; i > 0; i-- {
			cum += probs[i]
			if cum <= 1-p {
				n = i
			} else {
				break
			}
		}
		order, probs = order[:n], probs[:n]
		sum = 0
		for _, q := range probs {
			sum += q
		}
		for i := range probs {
			probs[i] /= sum
		}
	}
	return order, probs
}

// Sampler picks next tokens with a seeded random source: the same seed and
// logits give the same tokens. It is not safe for concurrent use.
type Sampler struct {
	s   Sampling
	rng *rand.Rand
}

// NewSampler returns a sampler of s seeded with seed.
func NewSampler(s Sampling, seed uint64) *Sampler {
	return &Sampler{s: s, rng: rand.New(rand.NewPCG(seed, 0x73736d61782d6765))}
}

// Next picks a token from the logits of one position.
func (sm *Sampler) Next(logits []float32) int {
	if sm.s.Greedy() {
		return Argmax(logits)
	}
	ids, probs := Candidates(logits, sm.s)
	u := sm.rng.Float64()
	var cum float64
	for i, q := range probs {
		cum += q
		if u < cum {
			return ids[i]
		}
	}
	return ids[len(ids)-1]
}
