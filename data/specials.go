package data

import "encoding/json"

// flag reads a boolean such as add_bos_token from the config files;
// present is false when no file sets it to a boolean.
func (sc *specialConfig) flag(name string) (v, present bool) {
	for _, m := range sc.files {
		if raw, ok := m[name]; ok {
			if json.Unmarshal(raw, &v) == nil && string(raw) != "null" {
				return v, true
			}
		}
	}
	return false, false
}

// settleBOS applies tokenizer_config.json's add_bos_token / add_eos_token
// to the post-processor and returns the BOS id.
//
// When either flag is set, the single-sequence template becomes
// [bos] $A [eos] as transformers' LlamaTokenizerFast.update_post_processor
// (and its copies for Gemma, CodeLlama, ...) rebuilds it; an absent flag
// keeps what the tokenizer.json template did. BOS is then the first token
// the post-processor adds (-1 if none); without a post-processor that adds
// tokens it is namedBOS, the bos_token of the config files.
func settleBOS(sc *specialConfig, post *postProcessor, namedBOS, eos int) int {
	addBOS, hasBOS := sc.flag("add_bos_token")
	addEOS, hasEOS := sc.flag("add_eos_token")
	if hasBOS || hasEOS {
		if !hasBOS {
			addBOS = len(post.prefix) > 0
		}
		if !hasEOS {
			addEOS = len(post.suffix) > 0
		}
		p := postProcessor{set: true}
		if addBOS && namedBOS >= 0 {
			p.prefix = []int{namedBOS}
		}
		if addEOS && eos >= 0 {
			p.suffix = []int{eos}
		}
		*post = p
	}
	if !post.set {
		return namedBOS
	}
	if len(post.prefix) > 0 {
		return post.prefix[0]
	}
	return -1
}

// resolveNamed returns the id of the special token a config field names:
// configID when no file names it or the name is unknown, -1 when it is
// explicitly null.
func (sc *specialConfig) resolveNamed(field string, lookup func(string) (int, bool), configID int) int {
	name, present := sc.special(field)
	if !present {
		return configID
	}
	if name == "" {
		return -1
	}
	if id, ok := lookup(name); ok {
		return id
	}
	return configID
}
