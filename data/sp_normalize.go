package data

import (
	"strings"
	"unicode/utf8"
)

// spSpace is U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's escaped space.
const spSpace = "\u2581"

// spNormalizer is SentencePiece's Normalizer: user-defined symbols are kept
// as they are, the precompiled charsmap (if any) rewrites the longest
// matching prefix, malformed UTF-8 bytes become U+FFFD, extra whitespace is
// optionally removed, a dummy space prefix (or suffix) is added, and spaces
// are escaped as U+2581.
type spNormalizer struct {
	charsMap               *charsMap
	user                   *byteTrie // user-defined symbols, matched first
	addDummyPrefix         bool
	removeExtraWhitespaces bool
	escapeWhitespaces      bool
	treatWSAsSuffix        bool
}

// prefix is Normalizer::NormalizePrefix: the normalized form of the start of
// s and the number of input bytes it consumes (s is not empty).
func (n *spNormalizer) prefix(s string) (string, int) {
	if _, l := n.user.longest(s); l > 0 {
		return s[:l], l
	}
	if n.charsMap != nil {
		if out, l := n.charsMap.longest(s); l > 0 {
			return out, l
		}
	}
	r, l := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && l <= 1 {
		return "\uFFFD", 1
	}
	return s[:l], l
}

// normalize returns the normalized form of s.
func (n *spNormalizer) normalize(s string) string {
	if s == "" {
		return ""
	}
	if n.removeExtraWhitespaces {
		for s != "" {
			p, l := n.prefix(s)
			if p != " " {
				break
			}
			s = s[l:]
		}
		if s == "" {
			return ""
		}
	}
	space := " "
	if n.escapeWhitespaces {
		space = spSpace
	}
	var b strings.Builder
	b.Grow(len(s) + len(s)/2 + 3)
	if !n.treatWSAsSuffix && n.addDummyPrefix {
		b.WriteString(space)
	}
	prevSpace := n.removeExtraWhitespaces
	for s != "" {
		p, l := n.prefix(s)
		for prevSpace && strings.HasPrefix(p, " ") {
			p = p[1:]
		}
		if p != "" {
			if n.escapeWhitespaces {
				for i := 0; i < len(p); i++ {
					if p[i] == ' ' {
						b.WriteString(spSpace)
					} else {
						b.WriteByte(p[i])
					}
				}
			} else {
				b.WriteString(p)
			}
			prevSpace = p[len(p)-1] == ' '
		}
		s = s[l:]
		if !n.removeExtraWhitespaces {
			prevSpace = false
		}
	}
	out := b.String()
	if n.removeExtraWhitespaces {
		for strings.HasSuffix(out, space) {
			out = out[:len(out)-len(space)]
		}
	}
	if n.treatWSAsSuffix && n.addDummyPrefix {
		out += space
	}
	return out
}
