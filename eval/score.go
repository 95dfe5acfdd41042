// Package eval measures language models: per-token loss of a sequence
// (score), loss against context length, needle-in-a-haystack retrieval and
// the attention paid to the needle.
package eval

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/ssmax/ssmax/kernels"
	"github.com/ssmax/ssmax/model"
)

// Score is the next-token negative log-likelihood of a token sequence.
type Score struct {
	// Tokens is the number of tokens scored (predictions: len(ids) - 1 in
	// one window).
	Tokens int `json:"tokens"`
	// MeanLoss is the mean NLL in nats over the scored tokens; Perplexity
	// is exp(MeanLoss).
	MeanLoss   float64 `json:"mean_loss"`
	Perplexity float64 `json:"perplexity"`
	// NLL[i] is -log p(ids[i+1] | context), the context being ids[:i+1]
	// in one window, or the part of it in the window that scored ids[i+1]
	// (ScoreStrided); NaN (JSON null) for a token no window scored.
	NLL NLLs `json:"nll"`
	// Windows is the number of forward passes (windows) the score took;
	// Window and Stride are their length and step (ScoreStrided).
	Windows int `json:"windows"`
	Window  int `json:"window"`
	Stride  int `json:"stride"`
}

// NLLs are per-token losses whose NaN entries (tokens not scored) are JSON
// nulls.
type NLLs []float64

// MarshalJSON writes NaN as null.
func (n NLLs) MarshalJSON() ([]byte, error) {
	if n == nil {
		return []byte("null"), nil
	}
	b := make([]byte, 0, 2+20*len(n))
	b = append(b, '[')
	for i, x := range n {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(x) {
			b = append(b, "null"...)
			continue
		}
		v, err := json.Marshal(x)
		if err != nil {
			return nil, err
		}
		b = append(b, v...)
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads null as NaN.
func (n *NLLs) UnmarshalJSON(b []byte) error {
	var raw []*float64
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw == nil {
		*n = nil
		return nil
	}
	out := make(NLLs, len(raw))
	for i, p := range raw {
		out[i] = math.NaN()
		if p != nil {
			out[i] = *p
		}
	}
	*n = out
	return nil
}

// ScoreTokens computes the next-token NLL of every position of ids, one
// document, with the model's attention.
func ScoreTokens(m *model.Model, ids []int) (*Score, error) {
	if len(ids) < 2 {
		return nil, fmt.Errorf("score: need at least 2 tokens, got %d", len(ids))
	}
	nll, err := TokenNLL(m, model.Input{IDs: ids})
	if err != nil {
		return nil, err
	}
	nll = nll[:len(ids)-1]
	s := &Score{Tokens: len(nll), NLL: nll, Windows: 1, Window: len(ids), Stride: len(ids)}
	for _, x := range nll {
		s.MeanLoss += x
	}
	s.MeanLoss /= float64(len(nll))
	s.Perplexity = math.Exp(s.MeanLoss)
	return s, nil
}

// TokenNLL returns, for every position i of in, -log p(in.IDs[i+1]) from the
// logits at i; the last position of each segment, which has no next token
// in its document, gets NaN.
func TokenNLL(m *model.Model, in model.Input) ([]float64, error) {
	T := len(in.IDs)
	targets := make([]int, T)
	for t := range targets {
		if t+1 < T {
			targets[t] = in.IDs[t+1]
		}
	}
	if T > 0 {
		targets[T-1] = -1
	}
	for _, s := range in.Segments {
		if s > 0 && s <= T {
			targets[s-1] = -1
		}
	}
	return targetNLL(m, in, targets)
}

// targetNLL returns -log p(targets[i]) from the logits at every position i
// of in, NaN where targets[i] < 0.
func targetNLL(m *model.Model, in model.Input, targets []int) ([]float64, error) {
	T := len(in.IDs)
	if len(targets) != T {
		return nil, fmt.Errorf("%d targets for %d tokens", len(targets), T)
	}
	for i, t := range targets {
		if t >= m.Spec.Vocab {
			return nil, fmt.Errorf("target %d at position %d is outside the vocabulary of %d", t, i, m.Spec.Vocab)
		}
	}
	h, err := m.Hidden(in)
	if err != nil {
		return nil, err
	}
	// The fused kernel projects a block of positions onto the vocabulary at
	// a time: no [tokens, vocab] matrix. The head may be a weight held in
	// its stored dtype.
	return kernels.HeadNLL(h, m.HeadParam(), targets, float32(m.Spec.FinalSoftcap)), nil
}
