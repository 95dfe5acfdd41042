package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// finish resolves added tokens and EOS/BOS and sets the derived fields.
// guessSpecials also registers named or config EOS/BOS tokens that look like
// "<...>" as added tokens (vocab.json layouts have no added_tokens list).
func (t *bpeTokenizer) finish(added []addedToken, dir string, configEOS, configBOS int, guessSpecials bool) error {
	sc, err := readSpecialConfig(dir)
	if err != nil {
		return err
	}
	t.addedContent = make(map[int32]string)
	haveAdded := map[string]bool{}
	addTok := func(a addedToken) {
		if a.content == "" || haveAdded[a.content] {
			return
		}
		haveAdded[a.content] = true
		added = append(added, a)
	}
	all := added
	added = nil
	for _, a := range all {
		addTok(a)
	}
	lookup := func(name string) (int, bool) {
		for _, a := range added {
			if a.content == name {
				return int(a.id), true
			}
		}
		id, ok := t.model.vocab[name]
		return int(id), ok
	}
	if guessSpecials {
		for content, id := range sc.addedDecoder {
			addTok(addedToken{id: int32(id), content: content})
		}
		for _, name := range sc.namedSpecials() {
			if id, ok := lookup(name); ok {
				addTok(addedToken{id: int32(id), content: name})
			}
		}
	}
	t.eos = sc.resolveNamed("eos_token", lookup, configEOS)
	t.bos = settleBOS(sc, &t.post, sc.resolveNamed("bos_token", lookup, configBOS), t.eos)
	if guessSpecials {
		for _, id := range []int{t.eos, t.bos} {
			if id >= 0 && id < len(t.model.tokens) {
				s := t.model.tokens[id]
				if len(s) > 2 && s[0] == '<' && s[len(s)-1] == '>' {
					addTok(addedToken{id: int32(id), content: s})
				}
			}
		}
	}
	t.vocabSize = len(t.model.tokens)
	for _, a := range added {
		t.addedContent[a.id] = a.content
		t.vocabSize = max(t.vocabSize, int(a.id)+1)
	}
	t.added = newAddedMatcher(added)
	t.cache = newWordCache(1 << 16)
	if t.eos >= t.vocabSize || t.bos >= t.vocabSize {
		return fmt.Errorf("%s: EOS %d or BOS %d outside the tokenizer's %d ids", dir, t.eos, t.bos, t.vocabSize)
	}
	return nil
}

// specialConfig holds tokenizer_config.json and special_tokens_map.json.
type specialConfig struct {
	files        []map[string]json.RawMessage // tokenizer_config first
	addedDecoder map[string]int
}

func readSpecialConfig(dir string) (*specialConfig, error) {
	sc := &specialConfig{addedDecoder: map[string]int{}}
	for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		p := filepath.Join(dir, name)
		raw, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		sc.files = append(sc.files, m)
		if d, ok := m["added_tokens_decoder"]; ok {
			var dec map[string]struct {
				Content string `json:"content"`
			}
			if err := json.Unmarshal(d, &dec); err != nil {
				return nil, fmt.Errorf("%s: added_tokens_decoder: %w", p, err)
			}
			for idStr, v := range dec {
				var id int
				if _, err := fmt.Sscan(idStr, &id); err == nil && v.Content != "" {
					sc.addedDecoder[v.Content] = id
				}
			}
		}
	}
	return sc, nil
}

// tokenName decodes a special token given as a string, {"content": ...} or
// null ("" for null).
func tokenName(raw json.RawMessage) (string, bool) {
	var s *string
	if err := json.Unmarshal(raw, &s); err == nil {
		if s == nil {
			return "", true
		}
		return *s, true
	}
	var o struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &o); err == nil {
		return o.Content, true
	}
	return "", false
}

// special returns the token named by field in the first file that has it;
// present is false when no file mentions it.
func (sc *specialConfig) special(field string) (name string, present bool) {
	for _, m := range sc.files {
		if raw, ok := m[field]; ok {
			if name, ok := tokenName(raw); ok {
				return name, true
			}
		}
	}
	return "", false
}

func (sc *specialConfig) namedSpecials() []string {
	var out []string
	for _, f := range []string{"eos_token", "bos_token", "unk_token", "pad_token"} {
		if n, ok := sc.special(f); ok && n != "" {
			out = append(out, n)
		}
	}
	for _, m := range sc.files {
		var list []json.RawMessage
		if raw, ok := m["additional_special_tokens"]; ok && json.Unmarshal(raw, &list) == nil {
			for _, r := range list {
				if n, ok := tokenName(r); ok && n != "" {
					out = append(out, n)
				}
			}
		}
	}
	return out
}

// loadVocabMerges loads the GPT-2 layout: vocab.json, merges.txt and
// optionally added_tokens.json.
func loadVocabMerges(vocabPath, mergesPath, dir string, configEOS, configBOS int) (Tokenizer, error) {
	raw, err := os.ReadFile(vocabPath)
	if err != nil {
		return nil, err
	}
	var vocab map[string]int
	if err := json.Unmarshal(raw, &vocab); err != nil {
		return nil, fmt.Errorf("%s: %w", vocabPath, err)
	}
	merges, err := readMergesTxt(mergesPath)
	if err != nil {
		return nil, err
	}
	model, err := newBPEModel(vocab, merges, "", false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mergesPath, err)
	}
	t := &bpeTokenizer{model: model, pre: gpt2Splitter{}, fastSplit: true}
	sc, err := readSpecialConfig(dir)
	if err != nil {
		return nil, err
	}
	for _, m := range sc.files {
		if raw, ok := m["add_prefix_space"]; ok {
			_ = json.Unmarshal(raw, &t.addPrefixSpace)
			break
		}
	}
	var added []addedToken
	p := filepath.Join(dir, "added_tokens.json")
	if raw, err := os.ReadFile(p); err == nil {
		var at map[string]int
		if err := json.Unmarshal(raw, &at); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		for content, id := range at {
			added = append(added, addedToken{id: int32(id), content: content})
		}
	}
	if err := t.finish(added, dir, configEOS, configBOS, true); err != nil {
		return nil, err
	}
	return t, nil
}

func readMergesTxt(path string) ([][2]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out [][2]string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), "\r")
		if s == "" || (line == 1 && strings.HasPrefix(s, "#version")) {
			continue
		}
		a, b, ok := strings.Cut(s, " ")
		if !ok || strings.Contains(b, " ") {
			return nil, fmt.Errorf("%s:%d: want two tokens separated by one space", path, line)
		}
		out = append(out, [2]string{a, b})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}
