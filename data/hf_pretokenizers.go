package data

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// preTokenizer is a tokenizer.json pre-tokenizer: it cuts a normalized
// piece into words. first reports whether the piece starts the input text
// (Metaspace's prepend_scheme "first").
type preTokenizer interface {
	pretokenize(s string, first bool, emit func(w string, first bool))
}

// span is a piece of a string and whether it matched a delimiter pattern.
type span struct {
	start, end int
	match      bool
}

// splitBehavior is Hugging Face's SplitDelimiterBehavior.
type splitBehavior int

const (
	splitRemoved splitBehavior = iota
	splitIsolated
	splitMergedWithPrevious
	splitMergedWithNext
	splitContiguous
)

func parseSplitBehavior(s string) (splitBehavior, error) {
	switch strings.ToLower(s) {
	case "removed":
		return splitRemoved, nil
	case "isolated":
		return splitIsolated, nil
	case "mergedwithprevious", "merged_with_previous":
		return splitMergedWithPrevious, nil
	case "mergedwithnext", "merged_with_next":
		return splitMergedWithNext, nil
	case "contiguous":
		return splitContiguous, nil
	}
	return 0, fmt.Errorf("split behavior %q is not supported", s)
}

// applyBehavior turns match spans (covering s in order) into pieces as
// NormalizedString::split does; empty pieces are dropped.
func applyBehavior(spans []span, b splitBehavior, emit func(start, end int)) {
	var out []span
	prev := false
	switch b {
	case splitIsolated:
		out = spans
	case splitRemoved:
		for _, sp := range spans {
			if !sp.match {
				out = append(out, sp)
			}
		}
	case splitMergedWithPrevious:
		for _, sp := range spans {
			if sp.match && !prev && len(out) > 0 {
				out[len(out)-1].end = sp.end
			} else {
				out = append(out, span{sp.start, sp.end, false})
			}
			prev = sp.match
		}
	case splitMergedWithNext:
		for i := len(spans) - 1; i >= 0; i-- {
			sp := spans[i]
			if sp.match && !prev && len(out) > 0 {
				out[len(out)-1].start = sp.start
			} else {
				out = append(out, span{sp.start, sp.end, false})
			}
			prev = sp.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	case splitContiguous:
		for _, sp := range spans {
			if sp.match == prev && len(out) > 0 {
				out[len(out)-1].end = sp.end
			} else {
				out = append(out, span{sp.start, sp.end, false})
			}
			prev = sp.match
		}
	}
	for _, sp := range out {
		if sp.end > sp.start {
			emit(sp.start, sp.end)
		}
	}
}

// regexSpans returns the matches of re in s and the gaps between them.
func regexSpans(re *regexp2.Regexp, s string, invert bool) []span {
	var spans []span
	offs := runeOffsets(s)
	prev := 0
	m, err := re.FindRunesMatch([]rune(s))
	for err == nil && m != nil {
		a, e := offs[m.Index], offs[m.Index+m.Length]
		if a > prev {
			spans = append(spans, span{prev, a, invert})
		}
		spans = append(spans, span{a, e, !invert})
		prev = e
		m, err = re.FindNextMatch(m)
	}
	if prev < len(s) {
		spans = append(spans, span{prev, len(s), invert})
	}
	return spans
}

// stringSpans returns the occurrences of sep in s and the gaps between them.
func stringSpans(s, sep string) []span {
	var spans []span
	prev := 0
	for {
		i := strings.Index(s[prev:], sep)
		if i < 0 {
			break
		}
		if i > 0 {
			spans = append(spans, span{prev, prev + i, false})
		}
		spans = append(spans, span{prev + i, prev + i + len(sep), true})
		prev += i + len(sep)
	}
	if prev < len(s) {
		spans = append(spans, span{prev, len(s), false})
	}
	return spans
}

// metaspacePre is the Metaspace pre-tokenizer: spaces become the
// replacement, which is prepended (always, first: only at the start of the
// input, never) unless the piece already starts with it, and the piece is
// split before each replacement when split is set.
type metaspacePre struct {
	repl   string
	scheme string // "always", "first" or "never"
	split  bool
}

func (m metaspacePre) pretokenize(s string, first bool, emit func(string, bool)) {
	s = strings.ReplaceAll(s, " ", m.repl)
	if s != "" && !strings.HasPrefix(s, m.repl) && (m.scheme == "always" || (m.scheme == "first" && first)) {
		s = m.repl + s
	}
	if !m.split {
		if s != "" {
			emit(s, first)
		}
		return
	}
	applyBehavior(stringSpans(s, m.repl), splitMergedWithNext, func(a, b int) { emit(s[a:b], first && a == 0) })
}

// byteLevelPreTok is the ByteLevel pre-tokenizer: an optional prefix space,
// the GPT-2 regex split, and the bytes mapped to GPT-2's printable runes.
type byteLevelPreTok struct {
	addPrefixSpace bool
	split          splitter // nil without use_regex
}

func (p byteLevelPreTok) pretokenize(s string, first bool, emit func(string, bool)) {
	if p.addPrefixSpace && !strings.HasPrefix(s, " ") {
		s = " " + s
	}
	if p.split == nil {
		if s != "" {
			emit(byteLevel.encode([]byte(s)), first)
		}
		return
	}
	off := 0
	p.split.split(s, func(w string) {
		emit(byteLevel.encode([]byte(w)), first && off == 0)
		off += len(w)
	})
}

// splitPre is the Split pre-tokenizer.
type splitPre struct {
	re       *regexp2.Regexp
	behavior splitBehavior
	invert   bool
}

func (p splitPre) pretokenize(s string, first bool, emit func(string, bool)) {
	applyBehavior(regexSpans(p.re, s, p.invert), p.behavior, func(a, b int) { emit(s[a:b], first && a == 0) })
}

// splitterPre adapts a splitter (pieces concatenate to the input).
type splitterPre struct{ s splitter }

func (p splitterPre) pretokenize(s string, first bool, emit func(string, bool)) {
	off := 0
	p.s.split(s, func(w string) {
		emit(w, first && off == 0)
		off += len(w)
	})
}

// whitespaceSplitPre is WhitespaceSplit: words between whitespace.
type whitespaceSplitPre struct{}

func (whitespaceSplitPre) pretokenize(s string, first bool, emit func(string, bool)) {
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		if isSpaceRune(r) {
			i += w
			continue
		}
		j := i + w
		for j < len(s) {
			r, w := utf8.DecodeRuneInString(s[j:])
			if isSpaceRune(r) {
				break
			}
			j += w
		}
		emit(s[i:j], first && i == 0)
		i = j
	}
}

// sequencePre applies pre-tokenizers in turn to every piece.
type sequencePre []preTokenizer

func (q sequencePre) pretokenize(s string, first bool, emit func(string, bool)) {
	if len(q) == 0 {
		if s != "" {
			emit(s, first)
		}
		return
	}
	rest := q[1:]
	q[0].pretokenize(s, first, func(w string, f bool) { rest.pretokenize(w, f, emit) })
}

// hfPreTokenizerJSON is any tokenizer.json pre-tokenizer.
type hfPreTokenizerJSON struct {
	Type           string            `json:"type"`
	Replacement    string            `json:"replacement"`
	PrependScheme  string            `json:"prepend_scheme"`
	AddPrefixSpace *bool             `json:"add_prefix_space"`
	Split          *bool             `json:"split"`
	UseRegex       *bool             `json:"use_regex"`
	Pattern        *hfPattern        `json:"pattern"`
	Behavior       string            `json:"behavior"`
	Invert         bool              `json:"invert"`
	Individual     bool              `json:"individual_digits"`
	Pretokenizers  []json.RawMessage `json:"pretokenizers"`
}

// parsePreTokenizer builds a tokenizer.json pre-tokenizer: Metaspace,
// ByteLevel, Split, Digits, WhitespaceSplit, Whitespace and Sequences of
// them. null gives nil. byteLevel reports whether a ByteLevel is present.
func parsePreTokenizer(raw json.RawMessage) (p preTokenizer, byteLevelPresent bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false, nil
	}
	var c hfPreTokenizerJSON
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, false, fmt.Errorf("pre_tokenizer: %w", err)
	}
	switch c.Type {
	case "Metaspace":
		repl := c.Replacement
		if repl == "" {
			repl = spSpace
		}
		if utf8.RuneCountInString(repl) != 1 {
			return nil, false, fmt.Errorf("pre_tokenizer Metaspace: replacement %q is not one character", repl)
		}
		scheme := c.PrependScheme
		if scheme == "" {
			scheme = "always"
		}
		if c.AddPrefixSpace != nil && !*c.AddPrefixSpace {
			if c.PrependScheme != "" && scheme != "never" {
				return nil, false, fmt.Errorf("pre_tokenizer Metaspace: add_prefix_space false with prepend_scheme %q", scheme)
			}
			scheme = "never"
		}
		if scheme != "always" && scheme != "first" && scheme != "never" {
			return nil, false, fmt.Errorf("pre_tokenizer Metaspace: prepend_scheme %q", scheme)
		}
		return metaspacePre{repl: repl, scheme: scheme, split: c.Split == nil || *c.Split}, false, nil
	case "ByteLevel":
		p := byteLevelPreTok{addPrefixSpace: c.AddPrefixSpace != nil && *c.AddPrefixSpace}
		if c.UseRegex == nil || *c.UseRegex {
			p.split = gpt2Splitter{}
		}
		return p, true, nil
	case "Split":
		re, err := c.Pattern.compile()
		if err != nil {
			return nil, false, fmt.Errorf("pre_tokenizer Split: %w", err)
		}
		b, err := parseSplitBehavior(c.Behavior)
		if err != nil {
			return nil, false, fmt.Errorf("pre_tokenizer Split: %w", err)
		}
		return splitPre{re: re, behavior: b, invert: c.Invert}, false, nil
	case "Digits":
		return splitterPre{digitsSplitter{individual: c.Individual}}, false, nil
	case "WhitespaceSplit":
		return whitespaceSplitPre{}, false, nil
	case "Whitespace":
		re := regexp2.MustCompile(`\w+|[^\w\s]+`, regexp2.None)
		return splitPre{re: re, behavior: splitRemoved, invert: true}, false, nil
	case "Sequence":
		var q sequencePre
		bl := false
		for _, r := range c.Pretokenizers {
			p, b, err := parsePreTokenizer(r)
			if err != nil {
				return nil, false, err
			}
			if p != nil {
				q = append(q, p)
			}
			bl = bl || b
		}
		return q, bl, nil
	}
	return nil, false, fmt.Errorf("pre_tokenizer type %q is not supported", c.Type)
}

// isSpaceRune is Rust's char::is_whitespace (Unicode White_Space).
func isSpaceRune(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\v', '\f', '\r', 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}
