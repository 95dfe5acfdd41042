package data

import (
	"fmt"
	"math"
	"sort"
)

// Stream is an ordered sequence of document spans over a TokenSource,
// read as their concatenation. Each span is a document (or a piece of one);
// its last token has no target in a Batch.
type Stream struct {
	src   TokenSource
	spans []Span
	cum   []int // cum[i] is the stream offset of spans[i]; len(spans)+1 entries
}

// NewStream returns the stream of spans over src. Spans must be non-empty
// and inside src; they need not be sorted or contiguous.
func NewStream(src TokenSource, spans []Span) (*Stream, error) {
	s := &Stream{src: src, spans: spans, cum: make([]int, len(spans)+1)}
	for i, sp := range spans {
		if sp.Start < 0 || sp.End > src.Len() || sp.Start >= sp.End {
			return nil, fmt.Errorf("span %d [%d, %d) is empty or outside %d tokens", i, sp.Start, sp.End, src.Len())
		}
		s.cum[i+1] = s.cum[i] + sp.Len()
	}
	return s, nil
}

// Len returns the number of tokens in the stream.
func (s *Stream) Len() int { return s.cum[len(s.spans)] }

// NumDocs returns the number of spans.
func (s *Stream) NumDocs() int { return len(s.spans) }

// Spans returns the stream's spans (offsets into Source); do not modify.
func (s *Stream) Spans() []Span { return s.spans }

// Source returns the underlying tokens.
func (s *Stream) Source() TokenSource { return s.src }

// ReadSpan returns the tokens of a span of Source.
func (s *Stream) ReadSpan(sp Span) []int {
	out := make([]int, sp.Len())
	s.src.Read(out, sp.Start)
	return out
}

// spanAt returns the index of the span holding stream offset off.
func (s *Stream) spanAt(off int) int {
	return sort.Search(len(s.spans), func(i int) bool { return s.cum[i+1] > off })
}

// read copies stream tokens [off, off+len(dst)) into dst.
func (s *Stream) read(dst []int, off int) {
	for k := s.spanAt(off); len(dst) > 0; k++ {
		in := off - s.cum[k]
		n := min(len(dst), s.spans[k].Len()-in)
		s.src.Read(dst[:n], s.spans[k].Start+in)
		dst, off = dst[n:], off+n
	}
}

// SplitDataset splits d deterministically into train and validation
// streams. With two or more documents the split is by document: a
// seed-determined random round(valFraction × docs) documents (at least one
// each side when valFraction > 0) go to validation, both sides keeping
// corpus order. With a single document (a huge text or token file without
// EOS) the last round(valFraction × tokens) tokens are the validation set.
// valFraction 0 gives an empty validation stream.
func SplitDataset(d *Dataset, valFraction float64, seed uint64) (train, val *Stream, err error) {
	if math.IsNaN(valFraction) || valFraction < 0 || valFraction >= 1 {
		return nil, nil, fmt.Errorf("validation fraction %v not in [0, 1)", valFraction)
	}
	docs := d.Docs
	if len(docs) == 0 {
		return nil, nil, ErrEmptyCorpus
	}
	var tr, va []Span
	switch {
	case valFraction == 0:
		tr = docs
	case len(docs) >= 2:
		nVal := min(max(int(math.Round(valFraction*float64(len(docs)))), 1), len(docs)-1)
		perm := make([]int32, len(docs))
		for i := range perm {
			perm[i] = int32(i)
		}
		rng := newSplitMix(mix64(seed ^ 0x5EED5EED5EED5EED))
		isVal := make([]bool, len(docs))
		for i := 0; i < nVal; i++ { // partial Fisher-Yates
			j := i + rng.intn(len(docs)-i)
			perm[i], perm[j] = perm[j], perm[i]
			isVal[perm[i]] = true
		}
		for i, sp := range docs {
			if isVal[i] {
				va = append(va, sp)
			} else {
				tr = append(tr, sp)
			}
		}
	default:
		sp := docs[0]
		if sp.Len() < 2 {
			return nil, nil, fmt.Errorf("cannot split a %d-token corpus", sp.Len())
		}
		nVal := min(max(int(math.Round(valFraction*float64(sp.Len()))), 1), sp.Len()-1)
		cut := sp.End - nVal
		tr, va = []Span{{sp.Start, cut}}, []Span{{cut, sp.End}}
	}
	if train, err = NewStream(d.Tokens, tr); err != nil {
		return nil, nil, err
	}
	if val, err = NewStream(d.Tokens, va); err != nil {
		return nil, nil, err
	}
	return train, val, nil
}

// LongDocuments returns the spans of s at least minLen tokens long, in
// order, for evaluating loss against context length. Only whole documents
// qualify: concatenating unrelated documents would not test long-range
// context. Read them with s.ReadSpan.
func LongDocuments(s *Stream, minLen int) []Span {
	var out []Span
	for _, sp := range s.spans {
		if sp.Len() >= minLen {
			out = append(out, sp)
		}
	}
	return out
}
