package data

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"

	"github.com/dlclark/regexp2"
	"github.com/rivo/uniseg"
	"golang.org/x/text/unicode/norm"
)

// textNormalizer is a tokenizer.json normalizer: it rewrites a piece of
// input text before pre-tokenization.
type textNormalizer func(string) string

// hfPattern is a Split/Replace pattern: {"String": s} or {"Regex": re}.
type hfPattern struct {
	Regex  *string `json:"Regex"`
	String *string `json:"String"`
}

// compile returns the pattern as a regexp2 regex (a String is escaped).
func (p *hfPattern) compile() (*regexp2.Regexp, error) {
	switch {
	case p == nil:
		return nil, fmt.Errorf("missing pattern")
	case p.Regex != nil:
		re, err := regexp2.Compile(*p.Regex, regexp2.None)
		if err != nil {
			return nil, fmt.Errorf("regex %q: %w", *p.Regex, err)
		}
		return re, nil
	case p.String != nil:
		return regexp2.MustCompile(regexp2.Escape(*p.String), regexp2.None), nil
	}
	return nil, fmt.Errorf("pattern is neither String nor Regex")
}

// regexReplaceAll replaces every non-overlapping match of re in s (matched
// on runes, invalid UTF-8 bytes as U+FFFD).
func regexReplaceAll(re *regexp2.Regexp, s, repl string) string {
	var b strings.Builder
	last := 0
	runes := []rune(s)
	offs := runeOffsets(s)
	m, err := re.FindRunesMatch(runes)
	for err == nil && m != nil {
		a, e := offs[m.Index], offs[m.Index+m.Length]
		b.WriteString(s[last:a])
		b.WriteString(repl)
		last = e
		m, err = re.FindNextMatch(m)
	}
	b.WriteString(s[last:])
	return b.String()
}

// runeOffsets returns the byte offset of each rune of s, then len(s).
func runeOffsets(s string) []int {
	offs := make([]int, 0, len(s)+1)
	for i := range s {
		offs = append(offs, i)
	}
	return append(offs, len(s))
}

// hfNormalizerJSON is any tokenizer.json normalizer.
type hfNormalizerJSON struct {
	Type        string            `json:"type"`
	Normalizers []json.RawMessage `json:"normalizers"`
	Prepend     string            `json:"prepend"`
	Pattern     *hfPattern        `json:"pattern"`
	Content     string            `json:"content"`
	StripLeft   bool              `json:"strip_left"`
	StripRight  bool              `json:"strip_right"`
	CharsMap    *string           `json:"precompiled_charsmap"`
}

// parseTextNormalizer builds a tokenizer.json normalizer: NFC, NFD, NFKC,
// NFKD, Lowercase, Strip, Prepend, Replace, Precompiled, StripAccents and
// Sequences of them. null gives nil.
func parseTextNormalizer(raw json.RawMessage) (textNormalizer, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var c hfNormalizerJSON
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	switch c.Type {
	case "NFC":
		return norm.NFC.String, nil
	case "NFD":
		return norm.NFD.String, nil
	case "NFKC":
		return norm.NFKC.String, nil
	case "NFKD":
		return norm.NFKD.String, nil
	case "Lowercase":
		return strings.ToLower, nil
	case "StripAccents":
		return func(s string) string {
			return strings.Map(func(r rune) rune {
				if unicode.Is(unicode.Mn, r) {
					return -1
				}
				return r
			}, s)
		}, nil
	case "Strip":
		l, r := c.StripLeft, c.StripRight
		return func(s string) string {
			if l {
				s = strings.TrimLeftFunc(s, unicode.IsSpace)
			}
			if r {
				s = strings.TrimRightFunc(s, unicode.IsSpace)
			}
			return s
		}, nil
	case "Prepend":
		p := c.Prepend
		return func(s string) string {
			if s == "" {
				return s
			}
			return p + s
		}, nil
	case "Replace":
		if c.Pattern != nil && c.Pattern.String != nil {
			old, repl := *c.Pattern.String, c.Content
			if old == "" {
				return nil, fmt.Errorf("normalizer Replace: empty pattern")
			}
			return func(s string) string { return strings.ReplaceAll(s, old, repl) }, nil
		}
		re, err := c.Pattern.compile()
		if err != nil {
			return nil, fmt.Errorf("normalizer Replace: %w", err)
		}
		repl := c.Content
		return func(s string) string { return regexReplaceAll(re, s, repl) }, nil
	case "Precompiled":
		if c.CharsMap == nil || *c.CharsMap == "" {
			return nil, nil
		}
		blob, err := base64.StdEncoding.DecodeString(*c.CharsMap)
		if err != nil {
			return nil, fmt.Errorf("normalizer Precompiled: %w", err)
		}
		m, err := parseCharsMap(blob)
		if err != nil {
			return nil, fmt.Errorf("normalizer Precompiled: %w", err)
		}
		return m.hfNormalize, nil
	case "Sequence":
		var fs []textNormalizer
		for _, n := range c.Normalizers {
			f, err := parseTextNormalizer(n)
			if err != nil {
				return nil, err
			}
			if f != nil {
				fs = append(fs, f)
			}
		}
		if len(fs) == 0 {
			return nil, nil
		}
		return func(s string) string {
			for _, f := range fs {
				s = f(s)
			}
			return s
		}, nil
	}
	return nil, fmt.Errorf("normalizer type %q is not supported", c.Type)
}

// shortest returns the replacement of the shortest key that is a prefix of
// s (spm_precompiled's transform), or ok false.
func (m *charsMap) shortest(s string) (string, bool) {
	if len(m.units) == 0 {
		return "", false
	}
	pos := dartsOffset(m.units[0])
	for i := 0; i < len(s); i++ {
		c := uint32(s[i])
		pos ^= c
		if int(pos) >= len(m.units) || dartsLabel(m.units[pos]) != c {
			return "", false
		}
		u := m.units[pos]
		pos ^= dartsOffset(u)
		if dartsHasLeaf(u) {
			if int(pos) >= len(m.units) {
				return "", false
			}
			v := dartsValue(m.units[pos])
			if int(v) >= len(m.normalized) {
				return "", false
			}
			rest := m.normalized[v:]
			end := 0
			for end < len(rest) && rest[end] != 0 {
				end++
			}
			return string(rest[:end]), true
		}
	}
	return "", false
}

// hfNormalize is the Hugging Face Precompiled normalizer: each grapheme
// cluster shorter than 6 bytes that has a mapping (its shortest mapped
// prefix) is replaced whole; otherwise each character is replaced by its
// mapping, if any.
func (m *charsMap) hfNormalize(s string) string {
	var b strings.Builder
	g := uniseg.NewGraphemes(s)
	for g.Next() {
		gr := g.Str()
		if len(gr) < 6 {
			if r, ok := m.shortest(gr); ok {
				b.WriteString(r)
				continue
			}
		}
		for _, c := range gr {
			part := string(c)
			if r, ok := m.shortest(part); ok {
				b.WriteString(r)
			} else {
				b.WriteString(part)
			}
		}
	}
	return b.String()
}
