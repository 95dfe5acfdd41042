package generate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/model"
)

// RunOptions are the options of ssmax generate.
type RunOptions struct {
	// Model is the checkpoint directory.
	Model string
	// Tokenizer is "auto" (or ""; the checkpoint's files, or bytes when
	// ssmax trained it on bytes), "bytes", or a tokenizer path; see
	// data.LoadModelTokenizer.
	Tokenizer string
	// Prompt is the text to continue, encoded with the tokenizer's special
	// tokens (EncodeSpecial: a BOS where Hugging Face's tokenizer adds one).
	Prompt string
	// RoPEThetaScale multiplies RoPE theta (0 means 1).
	RoPEThetaScale float64
	Options
	// Logger, if not nil, receives a line describing the model and prompt.
	Logger *slog.Logger
}

// Run opens the model and its tokenizer, encodes the prompt and generates,
// streaming the text to out (nil: nothing is streamed). EOS ids are the
// tokenizer's and those of config.json and generation_config.json
// (eos_token_id, an id or a list), added to o.EOS. An empty prompt starts
// from the BOS token, else the EOS token (GPT-2's convention).
func Run(ctx context.Context, o RunOptions, out io.Writer) (*Result, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.MaxNewTokens < 1 {
		return nil, fmt.Errorf("--max-new-tokens %d: want at least 1", o.MaxNewTokens)
	}
	if err := o.Sampling.Validate(); err != nil {
		return nil, err
	}
	tok, err := data.LoadModelTokenizer(o.Model, o.Tokenizer)
	if err != nil {
		return nil, fmt.Errorf("--model %s: %w", o.Model, err)
	}
	eos, err := ConfigEOS(o.Model)
	if err != nil {
		return nil, fmt.Errorf("--model %s: %w", o.Model, err)
	}
	if id := tok.EOS(); id >= 0 && !slices.Contains(eos, id) {
		eos = append(eos, id)
	}
	for _, id := range o.EOS {
		if !slices.Contains(eos, id) {
			eos = append(eos, id)
		}
	}
	o.EOS = eos
	prompt := tok.EncodeSpecial(o.Prompt)
	if len(prompt) == 0 {
		switch {
		case tok.BOS() >= 0:
			prompt = []int{tok.BOS()}
		case tok.EOS() >= 0:
			prompt = []int{tok.EOS()}
		default:
			return nil, fmt.Errorf("empty prompt, and the %s tokenizer has no BOS or EOS token to start from", tok.Name())
		}
	}
	scale := o.RoPEThetaScale
	if scale == 0 {
		scale = 1
	}
	m, err := model.Open(o.Model, "", model.Options{RoPEThetaScale: scale, Inference: true})
	if err != nil {
		return nil, fmt.Errorf("--model %s: %w", o.Model, err)
	}
	if tok.VocabSize() > m.Spec.Vocab {
		return nil, fmt.Errorf("--model %s: tokenizer %s has %d ids but the model's vocabulary is %d", o.Model, tok.Name(), tok.VocabSize(), m.Spec.Vocab)
	}
	log.Info("generate", "model", o.Model, "family", m.Spec.Family, "attention", m.Attention(0).Variant.String(),
		"tokenizer", tok.Name(), "prompt_tokens", len(prompt), "eos", eos)
	limit, err := Capacity(m, len(prompt), o.MaxNewTokens)
	if err != nil {
		return nil, err
	}
	if limit < o.MaxNewTokens {
		log.Info("the model's context limits generation", "context", m.Spec.Context, "max_new_tokens", limit)
	}
	return Generate(ctx, m, tok, prompt, o.Options, out)
}

// ConfigEOS returns the eos_token_id values of dir's config.json and
// generation_config.json (each an id, a list of ids, or absent), without
// repeats, config.json's first.
func ConfigEOS(dir string) ([]int, error) {
	var ids []int
	for _, name := range []string{"config.json", "generation_config.json"} {
		p := filepath.Join(dir, name)
		raw, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var c struct {
			EOS json.RawMessage `json:"eos_token_id"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if len(c.EOS) == 0 || string(c.EOS) == "null" {
			continue
		}
		var one int
		var list []int
		if err := json.Unmarshal(c.EOS, &one); err == nil {
			list = []int{one}
		} else if err := json.Unmarshal(c.EOS, &list); err != nil {
			return nil, fmt.Errorf("%s: eos_token_id: neither an id nor a list of ids", p)
		}
		for _, id := range list {
			if id >= 0 && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}
