package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
)

// tokenModel is a tokenizer.json model: it turns one pre-tokenized word
// into ids.
type tokenModel interface {
	tokenize(word string, out []int) []int
	token(id int) (string, bool)
	id(token string) (int, bool)
	size() int // one more than the largest id
}

// hfBPE is the tokenizer.json BPE model over characters: each character
// (with continuing_subword_prefix / end_of_word_suffix) is a symbol, a
// character outside the vocab becomes its "<0xNN>" byte tokens
// (byte_fallback) or the unknown token (consecutive ones fused with
// fuse_unk), and merges apply by rank.
type hfBPE struct {
	vocab        map[string]int32
	tokens       []string
	merges       *bpeModel // only its merge table is used
	unk          int32
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string
	suffix       string
	byteTok      [256]int32
	cache        *wordCache
}

type hfBPEJSON struct {
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Dropout                 *float64        `json:"dropout"`
}

func newHFBPE(raw json.RawMessage) (*hfBPE, error) {
	var c hfBPEJSON
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if c.Dropout != nil && *c.Dropout > 0 {
		return nil, fmt.Errorf("model: BPE dropout %v is not supported", *c.Dropout)
	}
	if len(c.Vocab) == 0 {
		return nil, errors.New("model: empty vocab")
	}
	merges, err := parseJSONMerges(c.Merges)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	m := &hfBPE{
		vocab: make(map[string]int32, len(c.Vocab)), unk: -1, fuseUnk: c.FuseUnk,
		byteFallback: c.ByteFallback, ignoreMerges: c.IgnoreMerges,
		merges: &bpeModel{merges: make(map[uint64]mergeRule, len(merges))},
		cache:  newWordCache(1 << 16),
	}
	if c.ContinuingSubwordPrefix != nil {
		m.prefix = *c.ContinuingSubwordPrefix
	}
	if c.EndOfWordSuffix != nil {
		m.suffix = *c.EndOfWordSuffix
	}
	maxID := -1
	for tok, id := range c.Vocab {
		if id < 0 || id > math.MaxInt32-1 {
			return nil, fmt.Errorf("model: token %q has id %d", tok, id)
		}
		maxID = max(maxID, id)
	}
	if maxID >= 2*len(c.Vocab)+1<<16 {
		return nil, fmt.Errorf("model: id %d is too large for a vocab of %d", maxID, len(c.Vocab))
	}
	m.tokens = make([]string, maxID+1)
	for tok, id := range c.Vocab {
		m.vocab[tok] = int32(id)
		m.tokens[id] = tok
	}
	for i := range m.byteTok {
		m.byteTok[i] = -1
		if id, ok := m.vocab[fmt.Sprintf("<0x%02X>", i)]; ok {
			m.byteTok[i] = id
		}
	}
	if c.UnkToken != nil {
		id, ok := m.vocab[*c.UnkToken]
		if !ok {
			return nil, fmt.Errorf("model: unk_token %q is not in the vocab", *c.UnkToken)
		}
		m.unk = id
	}
	for rank, mg := range merges {
		a, okA := m.vocab[mg[0]]
		b, okB := m.vocab[mg[1]]
		ab := mg[0] + mg[1]
		if m.prefix != "" && len(mg[1]) >= len(m.prefix) && mg[1][:len(m.prefix)] == m.prefix {
			ab = mg[0] + mg[1][len(m.prefix):]
		}
		c, okC := m.vocab[ab]
		if !okA || !okB || !okC {
			return nil, fmt.Errorf("model: merge %d %q %q: token not in vocab", rank, mg[0], mg[1])
		}
		k := pairKey(a, b)
		if _, dup := m.merges.merges[k]; !dup {
			m.merges.merges[k] = mergeRule{rank: int32(rank), id: c}
		}
	}
	return m, nil
}

func (m *hfBPE) size() int { return len(m.tokens) }

func (m *hfBPE) token(id int) (string, bool) {
	if id < 0 || id >= len(m.tokens) {
		return "", false
	}
	if _, ok := m.vocab[m.tokens[id]]; !ok || m.vocab[m.tokens[id]] != int32(id) {
		return "", false
	}
	return m.tokens[id], true
}

func (m *hfBPE) id(tok string) (int, bool) {
	id, ok := m.vocab[tok]
	return int(id), ok
}

func (m *hfBPE) tokenize(w string, out []int) []int {
	if w == "" {
		return out
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[w]; ok {
			return append(out, int(id))
		}
	}
	cacheable := len(w) <= maxCachedWord
	if cacheable {
		if ids, ok := m.cache.get(w); ok {
			for _, id := range ids {
				out = append(out, int(id))
			}
			return out
		}
	}
	syms := make([]int32, 0, len(w))
	unk, unkOpen := int32(-1), false
	for i := 0; i < len(w); {
		_, n := utf8.DecodeRuneInString(w[i:])
		s := w[i : i+n]
		if i > 0 && m.prefix != "" {
			s = m.prefix + s
		}
		if i+n == len(w) && m.suffix != "" {
			s += m.suffix
		}
		if id, ok := m.vocab[s]; ok {
			if unkOpen {
				syms = append(syms, unk)
				unkOpen = false
			}
			syms = append(syms, id)
		} else if fb, ok := m.fallback(s); ok {
			// As Hugging Face does, a pending unknown token is not
			// flushed before byte tokens: it follows them.
			syms = append(syms, fb...)
		} else if m.unk >= 0 {
			if unkOpen && !m.fuseUnk {
				syms = append(syms, unk)
			}
			unk, unkOpen = m.unk, true
		}
		i += n
	}
	if unkOpen {
		syms = append(syms, unk)
	}
	if len(syms) <= shortWord {
		syms = m.merges.mergeShort(syms)
	} else {
		syms = m.merges.mergeHeap(syms)
	}
	if cacheable {
		m.cache.put(w, append([]int32(nil), syms...))
	}
	for _, id := range syms {
		out = append(out, int(id))
	}
	return out
}

// fallback returns the byte tokens of s when byte_fallback is on and all
// of them are in the vocab.
func (m *hfBPE) fallback(s string) ([]int32, bool) {
	if !m.byteFallback {
		return nil, false
	}
	ids := make([]int32, len(s))
	for i := 0; i < len(s); i++ {
		if ids[i] = m.byteTok[s[i]]; ids[i] < 0 {
			return nil, false
		}
	}
	return ids, true
}

// hfUnigram is the tokenizer.json Unigram model: SentencePiece's optimized
// Viterbi with float64 scores over every vocab entry, the unknown node
// scoring min_score - 10, runs of unknown pieces fused, and unknown pieces
// spelled as "<0xNN>" tokens with byte_fallback.
type hfUnigram struct {
	tokens       []string
	scores       []float64
	ids          map[string]int32
	trie         *byteTrie
	unk          int32
	minScore     float64
	byteFallback bool
}

type hfUnigramJSON struct {
	Vocab        [][2]json.RawMessage `json:"vocab"`
	UnkID        *int                 `json:"unk_id"`
	ByteFallback bool                 `json:"byte_fallback"`
}

func newHFUnigram(raw json.RawMessage) (*hfUnigram, error) {
	var c hfUnigramJSON
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if len(c.Vocab) == 0 {
		return nil, errors.New("model: empty vocab")
	}
	m := &hfUnigram{ids: make(map[string]int32, len(c.Vocab)), trie: newByteTrie(), unk: -1, minScore: math.Inf(1), byteFallback: c.ByteFallback}
	for i, e := range c.Vocab {
		var tok string
		var score float64
		if err := json.Unmarshal(e[0], &tok); err != nil {
			return nil, fmt.Errorf("model: vocab %d: %w", i, err)
		}
		if err := json.Unmarshal(e[1], &score); err != nil {
			return nil, fmt.Errorf("model: vocab %d: %w", i, err)
		}
		m.tokens = append(m.tokens, tok)
		m.scores = append(m.scores, score)
		m.ids[tok] = int32(i)
		m.trie.add(tok, int32(i))
		m.minScore = min(m.minScore, score)
	}
	if c.UnkID != nil {
		if *c.UnkID < 0 || *c.UnkID >= len(m.tokens) {
			return nil, fmt.Errorf("model: unk_id %d outside the vocab", *c.UnkID)
		}
		m.unk = int32(*c.UnkID)
	}
	return m, nil
}

func (m *hfUnigram) size() int { return len(m.tokens) }

func (m *hfUnigram) token(id int) (string, bool) {
	if id < 0 || id >= len(m.tokens) {
		return "", false
	}
	return m.tokens[id], true
}

func (m *hfUnigram) id(tok string) (int, bool) {
	id, ok := m.ids[tok]
	return int(id), ok
}

func (m *hfUnigram) tokenize(s string, out []int) []int {
	if s == "" {
		return out
	}
	type node struct {
		id     int32
		score  float64
		starts int
	}
	best := make([]node, len(s)+1)
	for i := range best {
		best[i].starts = -1
	}
	unkScore := m.minScore - 10
	for start := 0; start < len(s); {
		till := best[start].score
		_, mblen := utf8.DecodeRuneInString(s[start:])
		single := false
		m.trie.prefixes(s[start:], func(id int32, n int) {
			target := &best[start+n]
			cand := m.scores[id] + till
			if target.starts < 0 || cand > target.score {
				*target = node{id: id, score: cand, starts: start}
			}
			if n == mblen {
				single = true
			}
		})
		if !single {
			target := &best[start+mblen]
			cand := unkScore + till
			if target.starts < 0 || cand > target.score {
				*target = node{id: m.unk, score: cand, starts: start}
			}
		}
		start += mblen
	}
	// Backtrack, fusing runs of unknown pieces.
	var pieces []string
	unkEnd := -1
	for end := len(s); end > 0; {
		n := best[end]
		if n.id == m.unk && m.unk >= 0 {
			if unkEnd < 0 {
				unkEnd = end
			}
		} else {
			if unkEnd >= 0 {
				pieces = append(pieces, s[end:unkEnd])
				unkEnd = -1
			}
			pieces = append(pieces, s[n.starts:end])
		}
		end = n.starts
	}
	if unkEnd >= 0 {
		pieces = append(pieces, s[:unkEnd])
	}
	for i := len(pieces) - 1; i >= 0; i-- {
		p := pieces[i]
		if id, ok := m.ids[p]; ok {
			out = append(out, int(id))
			continue
		}
		if m.byteFallback {
			var ids []int
			for j := 0; j < len(p); j++ {
				id, ok := m.ids[fmt.Sprintf("<0x%02X>", p[j])]
				if !ok {
					ids = nil
					break
				}
				ids = append(ids, int(id))
			}
			if ids != nil {
				out = append(out, ids...)
				continue
			}
		}
		if m.unk >= 0 {
			out = append(out, int(m.unk))
		}
	}
	return out
}
