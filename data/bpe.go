package data

import (
	"container/heap"
	"hash/maphash"
	"math"
	"sort"
	"strings"
	"sync"
	"unicode"
)

// mergeRule is the result of merging an adjacent pair of tokens.
type mergeRule struct{ rank, id int32 }

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// bpeModel is a byte-level BPE vocabulary and merge table. Tokens are raw
// byte strings (the byte-level unicode form is decoded at load time).
type bpeModel struct {
	tokens       []string         // id → raw bytes ("" for ids without a vocab entry)
	vocab        map[string]int32 // raw bytes → id
	byteIDs      [256]int32       // id of each single byte, -1 if absent
	merges       map[uint64]mergeRule
	ignoreMerges bool  // a pre-token found whole in the vocab is emitted directly
	unk          int32 // -1 when none: bytes missing from the vocab are dropped
}

// shortWord is the length up to which the quadratic merge loop is used; it
// is faster than the heap for the short pre-tokens that dominate text.
const shortWord = 48

// encodeWord appends the BPE ids of one pre-token to out.
func (m *bpeModel) encodeWord(word string, out []int) []int {
	if m.ignoreMerges {
		if id, ok := m.vocab[word]; ok {
			return append(out, int(id))
		}
	}
	var buf [shortWord]int32
	syms := buf[:0]
	if len(word) > shortWord {
		syms = make([]int32, 0, len(word))
	}
	for i := 0; i < len(word); i++ {
		id := m.byteIDs[word[i]]
		if id < 0 {
			id = m.unk
		}
		if id >= 0 {
			syms = append(syms, id)
		}
	}
	if len(syms) <= shortWord {
		syms = m.mergeShort(syms)
	} else {
		syms = m.mergeHeap(syms)
	}
	for _, id := range syms {
		out = append(out, int(id))
	}
	return out
}

// mergeShort repeatedly merges the lowest-ranked adjacent pair (leftmost on
// ties) in O(n²).
func (m *bpeModel) mergeShort(syms []int32) []int32 {
	if len(syms) < 2 {
		return syms
	}
	var rbuf [shortWord]mergeRule
	rules := rbuf[:0]
	if len(syms)-1 > shortWord {
		rules = make([]mergeRule, 0, len(syms)-1)
	}
	rules = rules[:len(syms)-1]
	none := mergeRule{rank: math.MaxInt32, id: -1}
	for i := range rules {
		if r, ok := m.merges[pairKey(syms[i], syms[i+1])]; ok {
			rules[i] = r
		} else {
			rules[i] = none
		}
	}
	for len(syms) > 1 {
		best := -1
		bestRank := int32(math.MaxInt32)
		for i, r := range rules {
			if r.rank < bestRank {
				best, bestRank = i, r.rank
			}
		}
		if best < 0 {
			break
		}
		syms[best] = rules[best].id
		syms = append(syms[:best+1], syms[best+2:]...)
		rules = append(rules[:best], rules[best+1:]...)
		if best > 0 {
			if r, ok := m.merges[pairKey(syms[best-1], syms[best])]; ok {
				rules[best-1] = r
			} else {
				rules[best-1] = none
			}
		}
		if best < len(rules) {
			if r, ok := m.merges[pairKey(syms[best], syms[best+1])]; ok {
				rules[best] = r
			} else {
				rules[best] = none
			}
		}
	}
	return syms
}

// mergeCand is a candidate merge of the symbol at pos with its successor.
type mergeCand struct {
	rank, pos   int32
	left, right int32
	id          int32
}

type candHeap []mergeCand

func (h candHeap) Len() int { return len(h) }
func (h candHeap) Less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].pos < h[j].pos
}
func (h candHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *candHeap) Push(x any)   { *h = append(*h, x.(mergeCand)) }
func (h *candHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// mergeHeap is mergeShort in O(n log n) for long pre-tokens: symbols form a
// linked list and candidate merges sit in a heap ordered by (rank, position).
func (m *bpeModel) mergeHeap(syms []int32) []int32 {
	n := len(syms)
	if n < 2 {
		return syms
	}
	prev := make([]int32, n)
	next := make([]int32, n)
	for i := range syms {
		prev[i], next[i] = int32(i-1), int32(i+1)
	}
	next[n-1] = -1
	h := make(candHeap, 0, n)
	push := func(p int32) {
		if p < 0 || next[p] < 0 {
			return
		}
		q := next[p]
		if r, ok := m.merges[pairKey(syms[p], syms[q])]; ok {
			heap.Push(&h, mergeCand{rank: r.rank, pos: p, left: syms[p], right: syms[q], id: r.id})
		}
	}
	for i := 0; i < n-1; i++ {
		if r, ok := m.merges[pairKey(syms[i], syms[i+1])]; ok {
			h = append(h, mergeCand{rank: r.rank, pos: int32(i), left: syms[i], right: syms[i+1], id: r.id})
		}
	}
	heap.Init(&h)
	dead := make([]bool, n)
	for h.Len() > 0 {
		c := heap.Pop(&h).(mergeCand)
		p := c.pos
		q := next[p]
		if dead[p] || q < 0 || syms[p] != c.left || syms[q] != c.right {
			continue // stale
		}
		syms[p] = c.id
		dead[q] = true
		next[p] = next[q]
		if next[q] >= 0 {
			prev[next[q]] = p
		}
		if prev[p] >= 0 {
			push(prev[p])
		}
		push(p)
	}
	out := syms[:0]
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, syms[i])
	}
	return out
}

// wordCache is a bounded, sharded, concurrency-safe cache of pre-token → ids.
// A full shard is simply cleared.
type wordCache struct {
	seed     maphash.Seed
	perShard int
	shards   [32]cacheShard
}

type cacheShard struct {
	mu sync.Mutex
	m  map[string][]int32
}

// maxCachedWord bounds the key length; longer pre-tokens rarely repeat.
const maxCachedWord = 64

func newWordCache(entries int) *wordCache {
	c := &wordCache{seed: maphash.MakeSeed(), perShard: max(1, entries/32)}
	for i := range c.shards {
		c.shards[i].m = make(map[string][]int32)
	}
	return c
}

func (c *wordCache) shard(w string) *cacheShard {
	return &c.shards[maphash.String(c.seed, w)%uint64(len(c.shards))]
}

func (c *wordCache) get(w string) ([]int32, bool) {
	s := c.shard(w)
	s.mu.Lock()
	ids, ok := s.m[w]
	s.mu.Unlock()
	return ids, ok
}

func (c *wordCache) put(w string, ids []int32) {
	s := c.shard(w)
	s.mu.Lock()
	if len(s.m) >= c.perShard {
		clear(s.m)
	}
	s.m[strings.Clone(w)] = ids // clone: w may point into a large document
	s.mu.Unlock()
}

// addedToken is a token matched verbatim in the input before BPE.
type addedToken struct {
	id             int32
	content        string
	lstrip, rstrip bool
}

// addedMatcher finds added (special) tokens in text: leftmost, then longest.
type addedMatcher struct {
	first  [256]bool
	lens   []int // distinct content lengths, decreasing
	byText map[string]*addedToken
}

func newAddedMatcher(toks []addedToken) *addedMatcher {
	if len(toks) == 0 {
		return nil
	}
	m := &addedMatcher{byText: make(map[string]*addedToken, len(toks))}
	seen := map[int]bool{}
	for i := range toks {
		t := &toks[i]
		m.first[t.content[0]] = true
		m.byText[t.content] = t
		if !seen[len(t.content)] {
			seen[len(t.content)] = true
			m.lens = append(m.lens, len(t.content))
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(m.lens)))
	return m
}

// find returns the position and token of the next match at or after from.
func (m *addedMatcher) find(s string, from int) (int, *addedToken) {
	if m == nil {
		return -1, nil
	}
	for i := from; i < len(s); i++ {
		if !m.first[s[i]] {
			continue
		}
		for _, n := range m.lens {
			if i+n <= len(s) {
				if t, ok := m.byText[s[i:i+n]]; ok {
					return i, t
				}
			}
		}
	}
	return -1, nil
}

// bpeTokenizer is a byte-level BPE tokenizer. It is safe for concurrent use.
type bpeTokenizer struct {
	model          *bpeModel
	pre            splitter
	normalize      func(string) string // nil: identity
	addPrefixSpace bool
	added          *addedMatcher
	addedContent   map[int32]string // id → content of added tokens
	eos, bos       int
	vocabSize      int
	cache          *wordCache
	fastSplit      bool // pre-tokenizer is a hand-written one (see chunkable)
	post           postProcessor
}

// EncodeSpecial is Encode with the post-processor's special tokens.
func (t *bpeTokenizer) EncodeSpecial(text string) []int { return t.post.apply(t.Encode(text)) }

// TokenStrings returns added tokens as their content and vocab tokens in
// their byte-level spelling (e.g. "Ġhello").
func (t *bpeTokenizer) TokenStrings(ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		if c, ok := t.addedContent[int32(id)]; ok {
			out[i] = c
		} else if id >= 0 && id < len(t.model.tokens) {
			if _, ok := t.model.vocab[t.model.tokens[id]]; ok {
				out[i] = byteLevel.encode([]byte(t.model.tokens[id]))
			}
		}
	}
	return out
}

func (t *bpeTokenizer) Name() string   { return "bpe" }
func (t *bpeTokenizer) VocabSize() int { return t.vocabSize }
func (t *bpeTokenizer) EOS() int       { return t.eos }
func (t *bpeTokenizer) BOS() int       { return t.bos }

// Encode tokenizes text without adding BOS or EOS; added tokens that appear
// in the text (e.g. "<|endoftext|>") are encoded as themselves.
func (t *bpeTokenizer) Encode(text string) []int {
	out := make([]int, 0, len(text)/3+1)
	pos := 0
	for pos <= len(text) {
		i, tok := t.added.find(text, pos)
		if tok == nil {
			return t.encodeOrdinary(text[pos:], out)
		}
		seg := text[pos:i]
		if tok.lstrip {
			seg = strings.TrimRightFunc(seg, unicode.IsSpace)
		}
		out = t.encodeOrdinary(seg, out)
		out = append(out, int(tok.id))
		pos = i + len(tok.content)
		if tok.rstrip {
			pos = len(text) - len(strings.TrimLeftFunc(text[pos:], unicode.IsSpace))
		}
	}
	return out
}

func (t *bpeTokenizer) encodeOrdinary(s string, out []int) []int {
	if s == "" {
		return out
	}
	if t.normalize != nil {
		s = t.normalize(s)
	}
	if t.addPrefixSpace && !strings.HasPrefix(s, " ") {
		s = " " + s
	}
	t.pre.split(s, func(w string) { out = t.encodePiece(w, out) })
	return out
}

func (t *bpeTokenizer) encodePiece(w string, out []int) []int {
	m := t.model
	if len(w) == 1 {
		if id := m.byteIDs[w[0]]; id >= 0 {
			return append(out, int(id))
		}
	}
	if len(w) > maxCachedWord {
		return m.encodeWord(w, out)
	}
	if ids, ok := t.cache.get(w); ok {
		for _, id := range ids {
			out = append(out, int(id))
		}
		return out
	}
	start := len(out)
	out = m.encodeWord(w, out)
	ids := make([]int32, len(out)-start)
	for i, id := range out[start:] {
		ids[i] = int32(id)
	}
	t.cache.put(w, ids)
	return out
}

// Decode concatenates the bytes of the tokens; added tokens decode to their
// content and unknown ids are skipped. Invalid UTF-8 is kept as raw bytes.
func (t *bpeTokenizer) Decode(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		if c, ok := t.addedContent[int32(id)]; ok {
			b.WriteString(c)
		} else if id >= 0 && id < len(t.model.tokens) {
			b.WriteString(t.model.tokens[id])
		}
	}
	return b.String()
}

// chunkable reports whether the tokenizer's pre-tokenization is known to be
// unaffected by cutting text at safe line boundaries (see safeCut).
func (t *bpeTokenizer) chunkable() bool {
	return t.fastSplit && t.normalize == nil && !t.addPrefixSpace
}
