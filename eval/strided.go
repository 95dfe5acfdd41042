package eval

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/model"
)

// Window is one forward pass of strided scoring: the tokens [Begin, End)
// of the sequence are fed (positions restart at Begin) and the tokens
// [From, End) are scored, each predicted from the tokens of the window
// before it.
type Window struct {
	Begin, End, From int
}

// Windows returns the windows that Hugging Face's perplexity guide
// (https://huggingface.co/docs/transformers/perplexity) evaluates for a
// sequence of n tokens with windows of maxLength tokens and step stride:
//
//	for begin in range(0, n, stride):
//	    end = min(begin + maxLength, n)
//	    trg_len = end - prev_end
//	    labels = ids[begin:end], the first len - trg_len set to -100
//	    ... the model shifts labels by one: window index 0 is never scored
//	    prev_end = end
//	    if end == n: break
//
// so window k scores the tokens [max(prev_end, begin+1), end): each token
// once when stride <= maxLength (the first token of the sequence never;
// with stride == maxLength also no window's first token, which has no
// context in its window), and tokens between windows never when stride >
// maxLength. A window may score nothing (a last window of one token).
func Windows(n, maxLength, stride int) []Window {
	var out []Window
	prevEnd := 0
	for begin := 0; begin < n; begin += stride {
		end := min(begin+maxLength, n)
		out = append(out, Window{Begin: begin, End: end, From: max(prevEnd, begin+1)})
		prevEnd = end
		if end == n {
			break
		}
	}
	return out
}

// ScoreStrided scores ids with the sliding windows of Windows(len(ids),
// maxLength, stride): one forward pass per window, each token's NLL taken
// from the window that scores it, the mean over every scored token.
//
// The set of scored tokens is exactly the guide's. Its final average
// differs slightly when windows overlap (stride < maxLength): the guide
// weights each window's mean loss by its number of labels less one, which
// is the number of tokens it scored only for the first window, while here
// every scored token counts once. A cancelled ctx stops it between windows.
func ScoreStrided(ctx context.Context, m *model.Model, ids []int, maxLength, stride int) (*Score, error) {
	if len(ids) < 2 {
		return nil, fmt.Errorf("score: need at least 2 tokens, got %d", len(ids))
	}
	if maxLength < 2 {
		return nil, fmt.Errorf("score: window of %d tokens: want at least 2", maxLength)
	}
	if stride < 1 {
		return nil, fmt.Errorf("score: stride %d: want at least 1", stride)
	}
	wins := Windows(len(ids), maxLength, stride)
	s := &Score{NLL: make(NLLs, len(ids)-1), Windows: len(wins), Window: maxLength, Stride: stride}
	for i := range s.NLL {
		s.NLL[i] = math.NaN()
	}
	var sum float64
	for _, w := range wins {
		if w.From >= w.End {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		in := ids[w.Begin:w.End]
		targets := make([]int, len(in))
		for j := range targets {
			targets[j] = -1
			if p := w.Begin + j + 1; p >= w.From && p < w.End {
				targets[j] = ids[p]
			}
		}
		nll, err := targetNLL(m, model.Input{IDs: in}, targets)
		if err != nil {
			return nil, fmt.Errorf("window [%d, %d): %w", w.Begin, w.End, err)
		}
		for p := w.From; p < w.End; p++ {
			x := nll[p-1-w.Begin]
			s.NLL[p-1] = x
			sum += x
			s.Tokens++
		}
	}
	if s.Tokens == 0 {
		return nil, fmt.Errorf("score: no token scored (windows of %d, stride %d, %d tokens)", maxLength, stride, len(ids))
	}
	s.MeanLoss = sum / float64(s.Tokens)
	s.Perplexity = math.Exp(s.MeanLoss)
	return s, nil
}

// ScoreOptions are the options of ssmax score. Exactly one of TokensFile,
// Text and DataFile gives the sequence.
type ScoreOptions struct {
	// Model is the checkpoint (a directory, or a .safetensors file with
	// ModelConfig).
	Model, ModelConfig string
	// TokensFile holds whitespace-separated token ids, scored as they are.
	TokensFile string
	// Text, or the whole content of DataFile, is encoded with the
	// tokenizer's special tokens (EncodeSpecial, as Hugging Face's
	// tokenizer(text) does) and scored as one document.
	Text, DataFile string
	// Tokenizer is "auto" (or ""; the checkpoint's), "bytes" or a
	// tokenizer path; see data.LoadModelTokenizer.
	Tokenizer string
	// Window is the length of a window (0: the model's context), Stride
	// the step between windows (0: Window); NoWindow scores the whole
	// sequence in one forward pass.
	Window, Stride int
	NoWindow       bool
	// RoPEThetaScale multiplies RoPE theta (0 means 1).
	RoPEThetaScale float64
}

// RunScore reads the sequence o names and scores it with the model:
// ScoreStrided with o's window and stride, or ScoreTokens with NoWindow.
func RunScore(ctx context.Context, o ScoreOptions) (*Score, error) {
	sources := 0
	for _, s := range []string{o.TokensFile, o.Text, o.DataFile} {
		if s != "" {
			sources++
		}
	}
	if sources != 1 {
		return nil, fmt.Errorf("score needs one of --tokens FILE, --text TEXT or --data FILE")
	}
	if o.Window < 0 || o.Stride < 0 {
		return nil, fmt.Errorf("--window %d, --stride %d: want positive values (0: the default)", o.Window, o.Stride)
	}
	var ids []int
	var err error
	if o.TokensFile != "" {
		if ids, err = ReadTokenIDs(o.TokensFile); err != nil {
			return nil, err
		}
	}
	var tok data.Tokenizer
	if o.TokensFile == "" {
		dir := o.Model
		if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
			dir = filepath.Dir(dir)
		}
		if tok, err = data.LoadModelTokenizer(dir, o.Tokenizer); err != nil {
			return nil, fmt.Errorf("--model %s: %w", o.Model, err)
		}
		text := o.Text
		if o.DataFile != "" {
			raw, err := os.ReadFile(o.DataFile)
			if err != nil {
				return nil, err
			}
			text = string(raw)
		}
		ids = tok.EncodeSpecial(text)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	scale := o.RoPEThetaScale
	if scale == 0 {
		scale = 1
	}
	m, err := model.Open(o.Model, o.ModelConfig, model.Options{RoPEThetaScale: scale, Inference: true})
	if err != nil {
		return nil, err
	}
	if tok != nil && tok.VocabSize() > m.Spec.Vocab {
		return nil, fmt.Errorf("--model %s: tokenizer %s has %d ids but the model's vocabulary is %d", o.Model, tok.Name(), tok.VocabSize(), m.Spec.Vocab)
	}
	src := o.TokensFile
	if o.DataFile != "" {
		src = o.DataFile
	}
	wrap := func(err error) error {
		if src != "" {
			return fmt.Errorf("%s: %w", src, err)
		}
		return fmt.Errorf("--text: %w", err)
	}
	if o.NoWindow {
		s, err := ScoreTokens(m, ids)
		if err != nil {
			return nil, wrap(err)
		}
		return s, nil
	}
	window := o.Window
	if window == 0 {
		if window = m.Spec.Context; window <= 0 {
			return nil, fmt.Errorf("--model %s: the config gives no context length; set --window or --no-window", o.Model)
		}
	}
	stride := o.Stride
	if stride == 0 {
		stride = window
	}
	s, err := ScoreStrided(ctx, m, ids, window, stride)
	if err != nil {
		return nil, wrap(err)
	}
	return s, nil
}

// ReadTokenIDs reads whitespace-separated non-negative integers.
func ReadTokenIDs(path string) ([]int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fields := strings.Fields(string(raw))
	ids := make([]int, len(fields))
	for i, f := range fields {
		v, err := strconv.Atoi(f)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%s: token %d: %q is not a token id", path, i, f)
		}
		ids[i] = v
	}
	return ids, nil
}
