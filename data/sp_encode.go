package data

import (
	"container/heap"
	"math"
)

// spResult is one piece of a SentencePiece model's output: a substring of
// the normalized text and its id (the unknown id when not in the vocab).
type spResult struct {
	piece string
	id    int32
}

// oneCharLen is SentencePiece's string_util::OneCharLen: the UTF-8 length
// announced by a leading byte (1 for continuation bytes), capped by n.
func oneCharLen(c byte, n int) int {
	l := int("\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x02\x02\x03\x04"[c>>4])
	return min(l, n)
}

// spSymbolPair is a candidate merge in SentencePiece's BPE.
type spSymbolPair struct {
	left, right int
	score       float32
	size        int
}

// spAgenda orders pairs by score (highest first), then leftmost.
type spAgenda []spSymbolPair

func (a spAgenda) Len() int { return len(a) }
func (a spAgenda) Less(i, j int) bool {
	if a[i].score != a[j].score {
		return a[i].score > a[j].score
	}
	return a[i].left < a[j].left
}
func (a spAgenda) Swap(i, j int) { a[i], a[j] = a[j], a[i] }
func (a *spAgenda) Push(x any)   { *a = append(*a, x.(spSymbolPair)) }
func (a *spAgenda) Pop() any {
	old := *a
	x := old[len(old)-1]
	*a = old[:len(old)-1]
	return x
}

type spSymbol struct {
	prev, next int
	freeze     bool
	start, end int // the symbol's bytes in the normalized text
}

// encodeBPE is bpe::Model::SampleEncode without dropout: the normalized text
// is cut into characters (user-defined symbols whole and frozen), and the
// adjacent pair whose concatenation is the best-scoring piece is merged
// until none is left; merged UNUSED pieces are split back into their parts.
func (t *spTokenizer) encodeBPE(s string, out []spResult) []spResult {
	if s == "" {
		return out
	}
	syms := make([]spSymbol, 0, len(s))
	for i := 0; i < len(s); {
		_, l := t.norm.user.longest(s[i:])
		freeze := l > 0
		if !freeze {
			l = oneCharLen(s[i], len(s)-i)
		}
		idx := len(syms)
		syms = append(syms, spSymbol{prev: idx - 1, next: idx + 1, freeze: freeze, start: i, end: i + l})
		i += l
	}
	syms[len(syms)-1].next = -1
	var agenda spAgenda
	revMerge := map[string][2]string{}
	add := func(l, r int) {
		if l < 0 || r < 0 || syms[l].freeze || syms[r].freeze {
			return
		}
		piece := s[syms[l].start:syms[r].end]
		id, ok := t.pieceID[piece]
		if !ok {
			return
		}
		heap.Push(&agenda, spSymbolPair{left: l, right: r, score: t.scores[id], size: len(piece)})
		if t.types[id] == spUnused {
			revMerge[piece] = [2]string{s[syms[l].start:syms[l].end], s[syms[r].start:syms[r].end]}
		}
	}
	for i := 1; i < len(syms); i++ {
		add(i-1, i)
	}
	for agenda.Len() > 0 {
		top := heap.Pop(&agenda).(spSymbolPair)
		l, r := &syms[top.left], &syms[top.right]
		if l.start == l.end || r.start == r.end || (l.end-l.start)+(r.end-r.start) != top.size {
			continue
		}
		l.end = r.end // r directly follows l: their bytes are contiguous
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = top.left
		}
		r.start, r.end = 0, 0
		add(l.prev, top.left)
		add(top.left, l.next)
	}
	var resegment func(w string)
	resegment = func(w string) {
		id := t.pieceToID(w)
		if id < 0 || t.types[id] != spUnused {
			out = append(out, spResult{w, id})
			return
		}
		p, ok := revMerge[w]
		if !ok {
			out = append(out, spResult{w, id})
			return
		}
		resegment(p[0])
		resegment(p[1])
	}
	for i := 0; i >= 0; i = syms[i].next {
		resegment(s[syms[i].start:syms[i].end])
	}
	return out
}

// spUnkPenalty is unigram::kUnkPenalty.
const spUnkPenalty float32 = 10.0

// encodeUnigram is unigram::Model::EncodeOptimized: Viterbi over the
// pieces that start at each character, with an unknown node of score
// min_score - 10 for a character no piece covers alone. Scores are summed
// in float32 as SentencePiece does (user-defined pieces score
// length*max_score - 0.1 in float64 before being stored).
func (t *spTokenizer) encodeUnigram(s string, out []spResult) []spResult {
	if s == "" {
		return out
	}
	type node struct {
		id     int32
		score  float32
		starts int
	}
	best := make([]node, len(s)+1)
	for i := range best {
		best[i] = node{id: -1, starts: -1}
	}
	best[0].score = 0
	unkScore := t.minScore - spUnkPenalty
	for start := 0; start < len(s); {
		till := best[start].score
		mblen := oneCharLen(s[start], len(s)-start)
		single := false
		t.trie.prefixes(s[start:], func(id int32, n int) {
			if t.types[id] == spUnused {
				return
			}
			target := &best[start+n]
			var cand float64
			if t.types[id] == spUserDefined {
				cand = float64(float32(n)*t.maxScore) - 0.1 + float64(till)
			} else {
				cand = float64(t.scores[id] + till)
			}
			if target.starts == -1 || cand > float64(target.score) {
				target.score = float32(cand)
				target.starts = start
				target.id = id
			}
			if n == mblen {
				single = true
			}
		})
		if !single {
			target := &best[start+mblen]
			cand := unkScore + till
			if target.starts == -1 || cand > target.score {
				target.score = cand
				target.starts = start
				target.id = t.unk
			}
		}
		start += mblen
	}
	first := len(out)
	for end := len(s); end > 0; {
		n := best[end]
		out = append(out, spResult{s[n.starts:end], n.id})
		end = n.starts
	}
	for i, j := first, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// spScoreBounds returns the minimum and maximum score of the NORMAL pieces
// as SentencePiece's unigram model computes them (initialised to FLT_MAX
// and FLT_MIN, the smallest positive float).
func spScoreBounds(pieces []spPiece) (lo, hi float32) {
	lo, hi = math.MaxFloat32, 0x1p-126 // FLT_MAX, FLT_MIN
	for _, p := range pieces {
		if p.typ == spNormal {
			lo = min(lo, p.score)
			hi = max(hi, p.score)
		}
	}
	return lo, hi
}
