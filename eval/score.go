// Package eval measures language models: per-token loss of a sequence
// (score), loss against context length, needle-in-a-haystack retrieval and
// the attention paid to the needle.
package eval

import (
	"fmt"
	"math"

	"github.com/nlpodyssey/spago/mat"
	"github.com/ssmax/ssmax/kernels"
	"github.com/ssmax/ssmax/model"
)

// Score is the next-token negative log-likelihood of a token sequence.
type Score struct {
	// Tokens is the number of tokens scored (predictions: len(ids) - 1).
	Tokens int `json:"tokens"`
	// MeanLoss is the mean NLL in nats; Perplexity is exp(MeanLoss).
	MeanLoss   float64 `json:"mean_loss"`
	Perplexity float64 `json:"perplexity"`
	// NLL[i] is -log p(ids[i+1] | ids[:i+1]).
	NLL []float64 `json:"nll"`
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
	s := &Score{Tokens: len(nll), NLL: nll}
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
	hv := h.Value().(*mat.Dense[float32]).Data().F32()
	head := m.HeadParam().Value().(*mat.Dense[float32]).Data().F32()
	// The fused kernel projects a block of positions onto the vocabulary at
	// a time: no [tokens, vocab] matrix.
	return kernels.LinearNLLSoftcap(hv, head, T, m.Spec.Hidden, m.Spec.Vocab, targets, float32(m.Spec.FinalSoftcap)), nil
}
