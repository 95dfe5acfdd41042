package data

import (
	"strings"
	"unicode/utf8"
)

// StreamDecoder decodes ids one at a time into text that can be printed as
// it arrives, for any [Tokenizer]: Next returns the text that the new id
// adds to the decoding of the whole sequence so far. Text is held back
// while it ends in an incomplete UTF-8 character (raw bytes from
// byte-level BPE) or in U+FFFD (byte_fallback bytes that do not form a
// character yet), and the previous chunk's ids are kept as context so that
// decoders that depend on position (a stripped leading space, "▁" at the
// start) give the same text as decoding everything at once. This is
// tokenizers' DecodeStream. A StreamDecoder is not safe for concurrent
// use.
type StreamDecoder struct {
	tok     Tokenizer
	ids     []int  // context ids, then ids whose text is not out yet
	prefix  string // Decode(ids[:prefixN]), already returned
	prefixN int
}

// NewStreamDecoder returns a StreamDecoder for tok.
func NewStreamDecoder(tok Tokenizer) *StreamDecoder { return &StreamDecoder{tok: tok} }

// incomplete reports whether s ends inside a character or with U+FFFD.
func incomplete(s string) bool {
	if strings.HasSuffix(s, "\uFFFD") {
		return true
	}
	for i := 1; i <= 3 && i <= len(s); i++ {
		c := s[len(s)-i]
		if c < 0x80 {
			return false
		}
		if utf8.RuneStart(c) {
			return !utf8.FullRuneInString(s[len(s)-i:])
		}
	}
	return false
}

// Next adds id and returns the new text ("" while it is held back).
func (d *StreamDecoder) Next(id int) string {
	if d.prefix == "" && len(d.ids) > 0 {
		if p := d.tok.Decode(d.ids); !incomplete(p) {
			d.prefix, d.prefixN = p, len(d.ids)
		}
	}
	d.ids = append(d.ids, id)
	s := d.tok.Decode(d.ids)
	if len(s) <= len(d.prefix) || incomplete(s) {
		return ""
	}
	var out string
	if strings.HasPrefix(s, d.prefix) {
		out = s[len(d.prefix):]
	} else {
		// The context decodes differently now; emit from where they part.
		n := 0
		for n < len(d.prefix) && s[n] == d.prefix[n] {
			n++
		}
		out = s[n:]
	}
	d.ids = append(d.ids[:0], d.ids[d.prefixN:]...)
	d.prefix = d.tok.Decode(d.ids)
	d.prefixN = len(d.ids)
	return out
}

// Flush returns the text still held back (e.g. bytes that never formed a
// character) and resets the decoder.
func (d *StreamDecoder) Flush() string {
	s := d.tok.Decode(d.ids)
	var out string
	if len(s) > len(d.prefix) && strings.HasPrefix(s, d.prefix) {
		out = s[len(d.prefix):]
	}
	d.ids, d.prefix, d.prefixN = d.ids[:0], "", 0
	return out
}
