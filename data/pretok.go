package data

import (
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// Pre-tokenizer regexes with hand-written equivalents. They are matched
// exactly as regexp2 matches them (\s is unicode.IsSpace, \p{L} and \p{N}
// are Go's unicode tables, (?i) lower-cases with unicode.ToLower), which is
// what the differential tests check.
const (
	gpt2Pattern   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// splitter cuts text into pre-tokens; emit receives substrings of s that
// concatenate to s.
type splitter interface {
	split(s string, emit func(string))
}

// newSplitter returns the fast splitter for a known pattern, else a regexp2
// splitter (matches are pieces, and so are the gaps between them, as in the
// Hugging Face Split pre-tokenizer with behavior "Isolated").
func newSplitter(pattern string) (splitter, error) {
	switch pattern {
	case gpt2Pattern:
		return gpt2Splitter{}, nil
	case llama3Pattern:
		return llamaSplitter{maxDigits: 3}, nil
	case qwen2Pattern:
		return llamaSplitter{maxDigits: 1}, nil
	}
	return newRegexSplitter(pattern)
}

type charClass uint8

const (
	classOther charClass = iota
	classLetter
	classNumber
	classSpace
)

var asciiClass = func() (t [utf8.RuneSelf]charClass) {
	for c := 0; c < utf8.RuneSelf; c++ {
		t[c] = classOfRune(rune(c))
	}
	return t
}()

func classOfRune(r rune) charClass {
	switch {
	case unicode.IsSpace(r):
		return classSpace
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	}
	return classOther
}

// runeAt decodes the rune at s[i] (invalid bytes decode as utf8.RuneError
// of width 1, as Go's []rune conversion does) and classifies it.
func runeAt(s string, i int) (rune, int, charClass) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1, asciiClass[c]
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	return r, w, classOfRune(r)
}

// classRun returns the end of the run of runes of class k starting at i,
// taking at most max runes (max <= 0: unlimited).
func classRun(s string, i int, k charClass, max int) int {
	n := 0
	for i < len(s) {
		_, w, c := runeAt(s, i)
		if c != k {
			break
		}
		i += w
		n++
		if n == max {
			break
		}
	}
	return i
}

// contraction matches 's 't 're 've 'm 'll 'd at i, optionally ignoring
// ASCII case (no non-ASCII rune lower-cases to one of these letters).
func contraction(s string, i int, fold bool) int {
	if s[i] != '\'' || i+1 >= len(s) {
		return 0
	}
	lower := func(c byte) byte {
		if fold && c >= 'A' && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	switch lower(s[i+1]) {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v', 'l':
		if i+2 < len(s) {
			a, b := lower(s[i+1]), lower(s[i+2])
			if (a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l') {
				return 3
			}
		}
	}
	return 0
}

// spaceTail handles `\s+(?!\S)|\s+` at i (s[i] is whitespace): the whole run
// if it ends the text or is one rune long, else the run minus its last rune.
func spaceTail(s string, i int) int {
	j, last, n := i, i, 0
	for j < len(s) {
		_, w, c := runeAt(s, j)
		if c != classSpace {
			break
		}
		last = j
		j += w
		n++
	}
	if j == len(s) || n == 1 {
		return j
	}
	return last
}

// gpt2Splitter implements gpt2Pattern.
type gpt2Splitter struct{}

func (gpt2Splitter) split(s string, emit func(string)) {
	for i := 0; i < len(s); {
		j := gpt2Match(s, i)
		emit(s[i:j])
		i = j
	}
}

func gpt2Match(s string, i int) int {
	if n := contraction(s, i, false); n > 0 {
		return i + n
	}
	r, w, k := runeAt(s, i)
	if r == ' ' && i+w < len(s) {
		if _, _, k2 := runeAt(s, i+w); k2 != classSpace {
			return classRun(s, i+w, k2, 0)
		}
	}
	if k != classSpace {
		return classRun(s, i, k, 0)
	}
	return spaceTail(s, i)
}

// llamaSplitter implements llama3Pattern (maxDigits 3) and qwen2Pattern
// (maxDigits 1).
type llamaSplitter struct{ maxDigits int }

func (l llamaSplitter) split(s string, emit func(string)) {
	for i := 0; i < len(s); {
		j := l.match(s, i)
		emit(s[i:j])
		i = j
	}
}

func newlineRun(s string, i int) int {
	for i < len(s) && (s[i] == '\r' || s[i] == '\n') {
		i++
	}
	return i
}

func (l llamaSplitter) match(s string, i int) int {
	if n := contraction(s, i, true); n > 0 {
		return i + n
	}
	r, w, k := runeAt(s, i)
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if k == classLetter {
		return classRun(s, i, classLetter, 0)
	}
	if k != classNumber && r != '\r' && r != '\n' && i+w < len(s) {
		if _, _, k2 := runeAt(s, i+w); k2 == classLetter {
			return classRun(s, i+w, classLetter, 0)
		}
	}
	// \p{N}{1,n}
	if k == classNumber {
		return classRun(s, i, classNumber, l.maxDigits)
	}
	// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
	if r == ' ' && i+w < len(s) {
		if _, _, k2 := runeAt(s, i+w); k2 == classOther {
			return newlineRun(s, classRun(s, i+w, classOther, 0))
		}
	}
	if k == classOther {
		return newlineRun(s, classRun(s, i, classOther, 0))
	}
	// \s*[\r\n]+ : the run up to and including its last newline.
	j, nl := i, -1
	for j < len(s) {
		_, w, c := runeAt(s, j)
		if c != classSpace {
			break
		}
		if s[j] == '\r' || s[j] == '\n' {
			nl = j
		}
		j += w
	}
	if nl >= 0 {
		return nl + 1
	}
	return spaceTail(s, i)
}

// regexSplitter splits with an arbitrary regexp2 pattern; text between
// matches is emitted as pieces too.
type regexSplitter struct{ re *regexp2.Regexp }

func newRegexSplitter(pattern string) (splitter, error) {
	re, err := regexp2.Compile(pattern, regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("pre-tokenizer regex %q: %w", pattern, err)
	}
	return regexSplitter{re: re}, nil
}

func (r regexSplitter) split(s string, emit func(string)) {
	if s == "" {
		return
	}
	// regexp2 works on runes; map rune indices back to byte offsets so that
	// invalid UTF-8 bytes survive (each decodes to one rune, as in []rune(s)).
	runes := make([]rune, 0, len(s))
	offs := make([]int, 0, len(s)+1)
	for i := 0; i < len(s); {
		c, w := utf8.DecodeRuneInString(s[i:])
		runes = append(runes, c)
		offs = append(offs, i)
		i += w
	}
	offs = append(offs, len(s))
	prev := 0
	m, err := r.re.FindRunesMatch(runes)
	for err == nil && m != nil {
		a, b := offs[m.Index], offs[m.Index+m.Length]
		if a > prev {
			emit(s[prev:a])
		}
		if b > a {
			emit(s[a:b])
		}
		prev = b
		m, err = r.re.FindNextMatch(m)
	}
	if prev < len(s) {
		emit(s[prev:])
	}
}

// chainSplitter applies splitters in sequence, each to the pieces of the
// previous one.
type chainSplitter []splitter

func (c chainSplitter) split(s string, emit func(string)) {
	if len(c) == 0 {
		if s != "" {
			emit(s)
		}
		return
	}
	if len(c) == 1 {
		c[0].split(s, emit)
		return
	}
	rest := c[1:]
	c[0].split(s, func(p string) { rest.split(p, emit) })
}

// digitsSplitter is the Hugging Face Digits pre-tokenizer: numeric runes
// (\p{N}) are isolated, one per piece when individual, else in runs.
type digitsSplitter struct{ individual bool }

func (d digitsSplitter) split(s string, emit func(string)) {
	start := 0
	for i := 0; i < len(s); {
		_, w, k := runeAt(s, i)
		if k != classNumber {
			i += w
			continue
		}
		if i > start {
			emit(s[start:i])
		}
		end := i + w
		if !d.individual {
			end = classRun(s, i, classNumber, 0)
		}
		emit(s[i:end])
		i, start = end, end
	}
	if start < len(s) {
		emit(s[start:])
	}
}
