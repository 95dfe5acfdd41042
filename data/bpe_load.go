package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dlclark/regexp2"
)

// LoadTokenizer reads the tokenizer of a checkpoint directory with
// explicit config ids; [LoadModelTokenizer] reads them from config.json.
//
// kind "auto" (or "" or "bpe") loads dir/tokenizer.json, else
// dir/vocab.json + dir/merges.txt; kind "bytes" returns
// NewByteTokenizer(configEOS); any other kind is a path to a tokenizer.json
// (its directory is searched for tokenizer_config.json and
// special_tokens_map.json) or to a checkpoint directory.
//
// configEOS and configBOS are the checkpoint's config.json eos_token_id and
// bos_token_id (-1 if absent); they are used when the tokenizer files do not
// name the EOS or BOS token (a token explicitly set to null means none).
//
// Byte-level BPE (ByteLevel pre-tokenizer, optionally after Split
// regexes as in Llama-3 and Qwen2; GPT-2, Llama-3 and Qwen2 regexes run as
// hand-written equivalents, others through regexp2) uses a fast path; any
// other tokenizer.json (Metaspace, byte_fallback, Unigram, Prepend/Replace
// normalizers, ...) runs through the general pipeline (hfTokenizer), and a
// tokenizer.model through the SentencePiece implementation (spTokenizer).
// tokenizer_config.json's add_bos_token / add_eos_token override the
// post-processor template, as transformers' LlamaTokenizerFast does.
func LoadTokenizer(dir, kind string, configEOS, configBOS int) (Tokenizer, error) {
	switch kind {
	case "bytes":
		return NewByteTokenizer(configEOS), nil
	case "", "auto", "bpe":
		return loadTokenizerDir(dir, configEOS, configBOS)
	}
	fi, err := os.Stat(kind)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %q is not \"auto\", \"bytes\" or an existing path: %w", kind, err)
	}
	if fi.IsDir() {
		return loadTokenizerDir(kind, configEOS, configBOS)
	}
	if strings.HasSuffix(kind, ".model") {
		return loadSentencePieceDir(kind, filepath.Dir(kind), configEOS)
	}
	return loadTokenizerJSON(kind, filepath.Dir(kind), configEOS, configBOS)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func loadTokenizerDir(dir string, configEOS, configBOS int) (Tokenizer, error) {
	if p := filepath.Join(dir, "tokenizer.json"); exists(p) {
		return loadTokenizerJSON(p, dir, configEOS, configBOS)
	}
	v, m := filepath.Join(dir, "vocab.json"), filepath.Join(dir, "merges.txt")
	if exists(v) && exists(m) {
		return loadVocabMerges(v, m, dir, configEOS, configBOS)
	}
	if p := filepath.Join(dir, "tokenizer.model"); exists(p) {
		return loadSentencePieceDir(p, dir, configEOS)
	}
	return nil, fmt.Errorf("%s: no tokenizer files (tokenizer.json, vocab.json+merges.txt or tokenizer.model); use --tokenizer bytes for a byte-level model", dir)
}

// loadSentencePieceDir loads a tokenizer.model and applies dir's
// tokenizer_config.json / special_tokens_map.json: the eos_token and
// bos_token names, add_bos_token (default true, as the slow LlamaTokenizer)
// and add_eos_token (default false). EOS is the named eos_token, else the
// model's eos piece, else configEOS.
func loadSentencePieceDir(path, dir string, configEOS int) (Tokenizer, error) {
	t, err := loadSentencePiece(path)
	if err != nil {
		return nil, err
	}
	sc, err := readSpecialConfig(dir)
	if err != nil {
		return nil, err
	}
	lookup := func(name string) (int, bool) {
		id := t.pieceToID(name)
		return int(id), id >= 0 && t.pieces[id] == name
	}
	if t.eos < 0 {
		t.eos = configEOS
	}
	t.eos = sc.resolveNamed("eos_token", lookup, t.eos)
	t.bos = sc.resolveNamed("bos_token", lookup, t.bos)
	if v, ok := sc.flag("add_bos_token"); ok {
		t.addBOS = v
	}
	if v, ok := sc.flag("add_eos_token"); ok {
		t.addEOS = v
	}
	if t.eos >= t.VocabSize() || t.bos >= t.VocabSize() {
		return nil, fmt.Errorf("%s: EOS %d or BOS %d outside the tokenizer's %d ids", path, t.eos, t.bos, t.VocabSize())
	}
	return t, nil
}

// hfComponent is a normalizer or pre-tokenizer entry of tokenizer.json.
type hfComponent struct {
	Type           string            `json:"type"`
	AddPrefixSpace *bool             `json:"add_prefix_space"`
	UseRegex       *bool             `json:"use_regex"`
	Behavior       string            `json:"behavior"`
	Individual     bool              `json:"individual_digits"`
	Invert         bool              `json:"invert"`
	Pretokenizers  []json.RawMessage `json:"pretokenizers"`
	Normalizers    []json.RawMessage `json:"normalizers"`
	Pattern        *struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
}

type hfAddedToken struct {
	ID      int    `json:"id"`
	Content string `json:"content"`
	LStrip  bool   `json:"lstrip"`
	RStrip  bool   `json:"rstrip"`
	Special bool   `json:"special"`
}

type hfTokenizerFile struct {
	AddedTokens   []hfAddedToken  `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Model         struct {
		Type                    string          `json:"type"`
		Vocab                   json.RawMessage `json:"vocab"`
		Merges                  json.RawMessage `json:"merges"`
		UnkToken                *string         `json:"unk_token"`
		ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
		ByteFallback            bool            `json:"byte_fallback"`
		IgnoreMerges            bool            `json:"ignore_merges"`
	} `json:"model"`
}

var errSentencePiece = errors.New("SentencePiece")

func loadTokenizerJSON(path, dir string, configEOS, configBOS int) (Tokenizer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f hfTokenizerFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t, err := buildFromTokenizerJSON(&f)
	if err != nil {
		// Not plain byte-level BPE: the general pipeline (SentencePiece
		// conversions with Metaspace, byte_fallback, Unigram, ...).
		h, herr := parseHFTokenizer(raw)
		if herr != nil {
			return nil, fmt.Errorf("%s: %w", path, herr)
		}
		sc, err := readSpecialConfig(dir)
		if err != nil {
			return nil, err
		}
		h.eos = sc.resolveNamed("eos_token", h.lookup, configEOS)
		h.bos = settleBOS(sc, &h.post, sc.resolveNamed("bos_token", h.lookup, configBOS), h.eos)
		if h.eos >= h.vocabSize || h.bos >= h.vocabSize {
			return nil, fmt.Errorf("%s: EOS %d or BOS %d outside the tokenizer's %d ids", path, h.eos, h.bos, h.vocabSize)
		}
		return h, nil
	}
	if t.post, err = parsePostProcessor(f.PostProcessor); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	added := make([]addedToken, 0, len(f.AddedTokens))
	for _, a := range f.AddedTokens {
		if a.Content != "" {
			added = append(added, addedToken{id: int32(a.ID), content: a.Content, lstrip: a.LStrip, rstrip: a.RStrip})
		}
	}
	if err := t.finish(added, dir, configEOS, configBOS, false); err != nil {
		return nil, err
	}
	return t, nil
}

func buildFromTokenizerJSON(f *hfTokenizerFile) (*bpeTokenizer, error) {
	switch f.Model.Type {
	case "", "BPE":
	case "Unigram":
		return nil, errSentencePiece
	default:
		return nil, fmt.Errorf("model type %q is not supported (only byte-level BPE)", f.Model.Type)
	}
	if f.Model.ByteFallback {
		return nil, errSentencePiece
	}
	if p := f.Model.ContinuingSubwordPrefix; p != nil && *p != "" {
		return nil, fmt.Errorf("continuing_subword_prefix %q is not supported", *p)
	}
	if p := f.Model.EndOfWordSuffix; p != nil && *p != "" {
		return nil, fmt.Errorf("end_of_word_suffix %q is not supported", *p)
	}
	normalize, err := parseNormalizer(f.Normalizer)
	if err != nil {
		return nil, err
	}
	t := &bpeTokenizer{normalize: normalize}
	var pc preConfig
	if err := pc.parse(f.PreTokenizer); err != nil {
		return nil, err
	}
	if !pc.byteLevel {
		return nil, errSentencePiece // Metaspace or no pre-tokenizer: not byte-level
	}
	t.pre, t.addPrefixSpace, t.fastSplit = pc.splitter(), pc.addPrefixSpace, pc.fast()
	var vocab map[string]int
	if err := json.Unmarshal(f.Model.Vocab, &vocab); err != nil {
		return nil, fmt.Errorf("model.vocab: %w", err)
	}
	merges, err := parseJSONMerges(f.Model.Merges)
	if err != nil {
		return nil, err
	}
	unk := ""
	if f.Model.UnkToken != nil {
		unk = *f.Model.UnkToken
	}
	if t.model, err = newBPEModel(vocab, merges, unk, f.Model.IgnoreMerges); err != nil {
		return nil, err
	}
	return t, nil
}

// parseJSONMerges accepts merges as "a b" strings or as [a, b] pairs.
func parseJSONMerges(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, fmt.Errorf("merge %d %q: want two tokens separated by one space", i, s)
			}
			out[i] = [2]string{a, b}
		}
		return out, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("model.merges: neither strings nor pairs: %w", err)
	}
	out := make([][2]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, fmt.Errorf("merge %d: want a pair, got %d tokens", i, len(p))
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}

// preConfig collects a tokenizer.json pre-tokenizer.
type preConfig struct {
	splitters      []splitter
	byteLevel      bool
	addPrefixSpace bool
}

// fast reports whether there is a pre-tokenizer and every splitter is a
// hand-written one (no regexp2 fallback).
func (pc *preConfig) fast() bool {
	for _, s := range pc.splitters {
		if _, ok := s.(regexSplitter); ok {
			return false
		}
	}
	return len(pc.splitters) > 0
}

func (pc *preConfig) parse(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var c hfComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("pre_tokenizer: %w", err)
	}
	switch c.Type {
	case "Sequence":
		for _, p := range c.Pretokenizers {
			if err := pc.parse(p); err != nil {
				return err
			}
		}
	case "ByteLevel":
		pc.byteLevel = true
		if c.AddPrefixSpace != nil && *c.AddPrefixSpace {
			pc.addPrefixSpace = true
		}
		if c.UseRegex == nil || *c.UseRegex {
			return pc.add(gpt2Pattern)
		}
	case "Split":
		if c.Behavior != "Isolated" || c.Invert {
			return fmt.Errorf("pre_tokenizer Split with behavior %q invert %v is not supported (only Isolated)", c.Behavior, c.Invert)
		}
		switch {
		case c.Pattern != nil && c.Pattern.Regex != nil:
			return pc.add(*c.Pattern.Regex)
		case c.Pattern != nil && c.Pattern.String != nil:
			return pc.add(regexp2.Escape(*c.Pattern.String))
		default:
			return errors.New("pre_tokenizer Split without a pattern")
		}
	case "Digits":
		pc.splitters = append(pc.splitters, digitsSplitter{individual: c.Individual})
	case "Metaspace":
		return errSentencePiece
	default:
		return fmt.Errorf("pre_tokenizer type %q is not supported", c.Type)
	}
	return nil
}

func (pc *preConfig) add(pattern string) error {
	s, err := newSplitter(pattern)
	if err != nil {
		return err
	}
	pc.splitters = append(pc.splitters, s)
	return nil
}

func (pc *preConfig) splitter() splitter {
	if len(pc.splitters) == 1 {
		return pc.splitters[0]
	}
	return chainSplitter(pc.splitters)
}

// parseNormalizer builds the normalizer of a byte-level BPE tokenizer.json
// with the general pipeline's parser (parseTextNormalizer); SentencePiece's
// Prepend and Replace, anywhere in it, send the file to that pipeline
// instead (errSentencePiece).
func parseNormalizer(raw json.RawMessage) (func(string) string, error) {
	if sentencePieceNormalizer(raw) {
		return nil, errSentencePiece
	}
	return parseTextNormalizer(raw)
}

// sentencePieceNormalizer reports whether a normalizer (or a Sequence of
// them, at any depth) is SentencePiece's Prepend or Replace.
func sentencePieceNormalizer(raw json.RawMessage) bool {
	var c hfComponent
	if len(raw) == 0 || json.Unmarshal(raw, &c) != nil {
		return false
	}
	switch c.Type {
	case "Prepend", "Replace":
		return true
	case "Sequence":
		for _, n := range c.Normalizers {
			if sentencePieceNormalizer(n) {
				return true
			}
		}
	}
	return false
}

// newBPEModel builds a model from a byte-level vocab and merges.
func newBPEModel(vocab map[string]int, merges [][2]string, unk string, ignoreMerges bool) (*bpeModel, error) {
	if len(vocab) == 0 {
		return nil, errors.New("empty vocab")
	}
	maxID := -1
	for _, id := range vocab {
		if id < 0 {
			return nil, fmt.Errorf("negative token id %d", id)
		}
		maxID = max(maxID, id)
	}
	m := &bpeModel{
		tokens:       make([]string, maxID+1),
		vocab:        make(map[string]int32, len(vocab)),
		merges:       make(map[uint64]mergeRule, len(merges)),
		ignoreMerges: ignoreMerges,
		unk:          -1,
	}
	for i := range m.byteIDs {
		m.byteIDs[i] = -1
	}
	// The byte-level forms, to look merges up by their vocab spelling.
	for s, id := range vocab {
		b, _ := byteLevel.decode(s)
		m.tokens[id] = string(b)
		m.vocab[string(b)] = int32(id)
		if len(b) == 1 {
			if old := m.byteIDs[b[0]]; old < 0 || s == string(byteLevel.toRune[b[0]]) {
				m.byteIDs[b[0]] = int32(id)
			}
		}
	}
	if unk != "" {
		if id, ok := vocab[unk]; ok {
			m.unk = int32(id)
		}
	}
	for rank, mg := range merges {
		a, okA := vocab[mg[0]]
		b, okB := vocab[mg[1]]
		c, okC := vocab[mg[0]+mg[1]]
		if !okA || !okB || !okC {
			return nil, fmt.Errorf("merge %d %q %q: token not in vocab", rank, mg[0], mg[1])
		}
		k := pairKey(int32(a), int32(b))
		if _, dup := m.merges[k]; !dup {
			m.merges[k] = mergeRule{rank: int32(rank), id: int32(c)}
		}
	}
	return m, nil
}
