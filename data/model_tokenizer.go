package data

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ssmax/ssmax/checkpoint"
)

// TokenizerConfigKey is the config.json key under which ssmax records the
// tokenizer a model it trained reads ("bytes"), so later commands pick the
// same one.
const TokenizerConfigKey = "ssmax_tokenizer"

// LoadModelTokenizer loads the tokenizer of the checkpoint at dir (a
// directory, or a .safetensors file whose directory holds config.json).
// kind is as for LoadTokenizer; "auto" or "" first takes the kind recorded
// under TokenizerConfigKey. The EOS and BOS ids come from config.json. Only
// config.json and the tokenizer files are read, never the weights.
func LoadModelTokenizer(dir, kind string) (Tokenizer, error) {
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		dir = filepath.Dir(dir)
	}
	path := filepath.Join(dir, checkpoint.ConfigFile)
	cfg, err := checkpoint.ReadConfig(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer of %s: %w", dir, err)
	}
	if kind == "" || kind == "auto" {
		var recorded string
		if _, err := cfg.Decode(TokenizerConfigKey, &recorded); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if recorded != "" {
			kind = recorded
		}
	}
	ids := [2]int{-1, -1}
	for i, key := range []string{"eos_token_id", "bos_token_id"} {
		v, ok, err := cfg.Int(key)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if ok {
			ids[i] = v
		}
	}
	return LoadTokenizer(dir, kind, ids[0], ids[1])
}
