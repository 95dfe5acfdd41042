package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// TokenizerKey is the config.json key with which ssmax records that a model
// it trained reads bytes ("bytes"), so later commands pick the same
// tokenizer.
const TokenizerKey = "ssmax_tokenizer"

// ModelConfigIDs are the special token ids of a checkpoint's config.json
// (-1 when absent).
type ModelConfigIDs struct {
	EOS, BOS  int
	Tokenizer string // the TokenizerKey value, "" when absent
}

// ReadModelConfigIDs reads eos_token_id (an int or a list, whose first
// entry is taken), bos_token_id and TokenizerKey from dir/config.json; a
// missing config.json gives -1, -1, "".
func ReadModelConfigIDs(dir string) (ModelConfigIDs, error) {
	ids := ModelConfigIDs{EOS: -1, BOS: -1}
	p := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return ids, nil
	}
	if err != nil {
		return ids, err
	}
	var c struct {
		EOS       json.RawMessage `json:"eos_token_id"`
		BOS       json.RawMessage `json:"bos_token_id"`
		Tokenizer *string         `json:"ssmax_tokenizer"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return ids, fmt.Errorf("%s: %w", p, err)
	}
	if ids.EOS, err = configTokenID(c.EOS); err != nil {
		return ids, fmt.Errorf("%s: eos_token_id: %w", p, err)
	}
	if ids.BOS, err = configTokenID(c.BOS); err != nil {
		return ids, fmt.Errorf("%s: bos_token_id: %w", p, err)
	}
	if c.Tokenizer != nil {
		ids.Tokenizer = *c.Tokenizer
	}
	return ids, nil
}

// configTokenID reads null, an int or a list of ints (the first one).
func configTokenID(raw json.RawMessage) (int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return -1, nil
	}
	var id int
	if err := json.Unmarshal(raw, &id); err == nil {
		return id, nil
	}
	var list []int
	if err := json.Unmarshal(raw, &list); err != nil {
		return -1, fmt.Errorf("neither an id nor a list of ids")
	}
	if len(list) == 0 {
		return -1, nil
	}
	return list[0], nil
}

// LoadModelTokenizer loads the tokenizer of a model directory from its
// config.json and tokenizer files only (no weights are read).
//
// kind "auto" (or "") is the byte tokenizer when config.json has
// "ssmax_tokenizer": "bytes", else the checkpoint's tokenizer files:
// tokenizer.json, else vocab.json + merges.txt, else tokenizer.model. kind
// "bytes" is the byte tokenizer; any other kind is a path to a
// tokenizer.json, a tokenizer.model or a directory holding them. The byte
// tokenizer's EOS is config.json's eos_token_id (-1 when absent); other
// tokenizers use eos_token_id and bos_token_id when their own files do not
// name the token.
func LoadModelTokenizer(dir, kind string) (Tokenizer, error) {
	ids, err := ReadModelConfigIDs(dir)
	if err != nil {
		return nil, err
	}
	if (kind == "" || kind == "auto") && ids.Tokenizer != "" {
		kind = ids.Tokenizer
	}
	if kind == "" {
		kind = "auto"
	}
	return LoadTokenizer(dir, kind, ids.EOS, ids.BOS)
}
