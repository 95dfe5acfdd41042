package data

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// hfTokenizer is a tokenizer.json pipeline: added tokens split the input,
// then each other piece is normalized, pre-tokenized into words and
// tokenized by the model; the post-processor adds special tokens and the
// decoder chain turns token strings back into text.
type hfTokenizer struct {
	name      string
	normalize textNormalizer
	pre       preTokenizer
	model     tokenModel
	added     *addedVocab
	post      postProcessor
	decoder   tokenDecoder
	eos, bos  int
	vocabSize int
}

// hfAddedTokenJSON is an entry of tokenizer.json's added_tokens.
type hfAddedTokenJSON struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized *bool  `json:"normalized"`
	Special    bool   `json:"special"`
}

// hfAdded is an added token.
type hfAdded struct {
	id                         int
	content                    string
	lstrip, rstrip, singleWord bool
	special                    bool
}

// addedVocab matches added tokens: those with normalized=false in the raw
// text, the others in the normalized text (by their normalized content).
type addedVocab struct {
	raw, norm *byteTrie
	tokens    []hfAdded
	byID      map[int]*hfAdded
}

func newAddedVocab(list []hfAddedTokenJSON, normalize textNormalizer) *addedVocab {
	v := &addedVocab{byID: map[int]*hfAdded{}}
	var normalized []bool
	for _, a := range list {
		if a.Content == "" {
			continue
		}
		v.tokens = append(v.tokens, hfAdded{id: a.ID, content: a.Content, lstrip: a.LStrip, rstrip: a.RStrip, singleWord: a.SingleWord, special: a.Special})
		// AddedToken's default: special tokens are not normalized.
		normalized = append(normalized, (a.Normalized == nil && !a.Special) || (a.Normalized != nil && *a.Normalized))
	}
	for i := range v.tokens {
		a := &v.tokens[i]
		v.byID[a.id] = a
		key := a.content
		trie := &v.raw
		if normalized[i] {
			trie = &v.norm
			if normalize != nil {
				key = normalize(key)
			}
		}
		if key == "" {
			continue
		}
		if *trie == nil {
			*trie = newByteTrie()
		}
		(*trie).add(key, int32(i))
	}
	return v
}

// isWordRune is Hugging Face's is_word_character for single_word tokens.
func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) || r == '_' }

// split cuts s into text pieces (id -1) and added tokens, leftmost-longest
// and non-overlapping, honouring single_word, lstrip and rstrip as
// AddedVocabulary::find_matches does. emit gets the byte offset of each
// piece in s.
func (v *addedVocab) split(trie *byteTrie, s string, emit func(piece string, id int, off int)) {
	if trie == nil || s == "" {
		if s != "" {
			emit(s, -1, 0)
		}
		return
	}
	start := 0
	for i := 0; i < len(s); {
		idx, n := trie.longest(s[i:])
		if n == 0 {
			i++
			continue
		}
		a := &v.tokens[idx]
		mStart, mStop := i, i+n
		i = mStop
		if a.singleWord {
			before, _ := utf8.DecodeLastRuneInString(s[:mStart])
			after, _ := utf8.DecodeRuneInString(s[mStop:])
			if (mStart > 0 && isWordRune(before)) || (mStop < len(s) && isWordRune(after)) {
				continue
			}
		}
		if a.lstrip {
			mStart = max(len(strings.TrimRightFunc(s[:mStart], isSpaceRune)), start)
		}
		if a.rstrip {
			mStop = len(s) - len(strings.TrimLeftFunc(s[mStop:], isSpaceRune))
			i = mStop
		}
		if start < mStart {
			emit(s[start:mStart], -1, start)
		}
		emit(s[mStart:mStop], a.id, mStart)
		start = mStop
	}
	if start < len(s) {
		emit(s[start:], -1, start)
	}
}

// hfFile is the part of tokenizer.json the pipeline reads.
type hfFile struct {
	AddedTokens   []hfAddedTokenJSON `json:"added_tokens"`
	Normalizer    json.RawMessage    `json:"normalizer"`
	PreTokenizer  json.RawMessage    `json:"pre_tokenizer"`
	PostProcessor json.RawMessage    `json:"post_processor"`
	Decoder       json.RawMessage    `json:"decoder"`
	Model         json.RawMessage    `json:"model"`
}

// parseHFTokenizer builds the pipeline of a tokenizer.json (without EOS/BOS
// resolution, see finishSpecials).
func parseHFTokenizer(raw []byte) (*hfTokenizer, error) {
	var f hfFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, err
	}
	t := &hfTokenizer{eos: -1, bos: -1}
	var err error
	if t.normalize, err = parseTextNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	if t.pre, _, err = parsePreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if t.post, err = parsePostProcessor(f.PostProcessor); err != nil {
		return nil, err
	}
	if t.decoder, err = parseDecoder(f.Decoder); err != nil {
		return nil, err
	}
	var mt struct {
		Type string `json:"type"`
	}
	if len(f.Model) == 0 {
		return nil, fmt.Errorf("no model")
	}
	if err := json.Unmarshal(f.Model, &mt); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	switch mt.Type {
	case "BPE", "":
		t.name = "bpe"
		if t.model, err = newHFBPE(f.Model); err != nil {
			return nil, err
		}
	case "Unigram":
		t.name = "unigram"
		if t.model, err = newHFUnigram(f.Model); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("model type %q is not supported (BPE and Unigram are)", mt.Type)
	}
	t.added = newAddedVocab(f.AddedTokens, t.normalize)
	t.vocabSize = t.model.size()
	for _, a := range t.added.tokens {
		if a.id < 0 || a.id >= 1<<26 {
			return nil, fmt.Errorf("added token %q has id %d", a.content, a.id)
		}
		t.vocabSize = max(t.vocabSize, a.id+1)
	}
	return t, nil
}

func (t *hfTokenizer) Name() string   { return t.name }
func (t *hfTokenizer) VocabSize() int { return t.vocabSize }
func (t *hfTokenizer) EOS() int       { return t.eos }
func (t *hfTokenizer) BOS() int       { return t.bos }

// lookup returns the id of a token: an added token's, else the model's.
func (t *hfTokenizer) lookup(name string) (int, bool) {
	for _, a := range t.added.tokens {
		if a.content == name {
			return a.id, true
		}
	}
	return t.model.id(name)
}

// Encode tokenizes text without the post-processor's special tokens.
// Invalid UTF-8 is read as U+FFFD (tokenizer.json pipelines work on text).
func (t *hfTokenizer) Encode(text string) []int {
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	out := make([]int, 0, len(text)/3+1)
	t.added.split(t.added.raw, text, func(seg string, id int, off int) {
		if id >= 0 {
			out = append(out, id)
			return
		}
		if t.normalize != nil {
			seg = t.normalize(seg)
		}
		t.added.split(t.added.norm, seg, func(sub string, id int, off2 int) {
			if id >= 0 {
				out = append(out, id)
				return
			}
			first := off == 0 && off2 == 0
			if t.pre == nil {
				out = t.model.tokenize(sub, out)
				return
			}
			t.pre.pretokenize(sub, first, func(w string, _ bool) { out = t.model.tokenize(w, out) })
		})
	})
	return out
}

// EncodeSpecial is Encode with the post-processor's special tokens.
func (t *hfTokenizer) EncodeSpecial(text string) []int { return t.post.apply(t.Encode(text)) }

// TokenStrings returns the added token or vocab string of each id.
func (t *hfTokenizer) TokenStrings(ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i], _ = t.tokenString(id)
	}
	return out
}

func (t *hfTokenizer) tokenString(id int) (string, bool) {
	if a, ok := t.added.byID[id]; ok {
		return a.content, true
	}
	return t.model.token(id)
}

// Decode runs the decoder chain over the token strings of ids (special
// tokens included); without a decoder the tokens are joined by spaces.
func (t *hfTokenizer) Decode(ids []int) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if s, ok := t.tokenString(id); ok {
			toks = append(toks, s)
		}
	}
	if t.decoder == nil {
		return strings.Join(toks, " ")
	}
	return strings.Join(t.decoder(toks), "")
}
