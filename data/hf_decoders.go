package data

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// tokenDecoder is a tokenizer.json decoder: it rewrites the token strings
// of a sequence (Decoder::decode_chain); the results are concatenated.
type tokenDecoder func([]string) []string

// hfDecoderJSON is any tokenizer.json decoder.
type hfDecoderJSON struct {
	Type           string            `json:"type"`
	Decoders       []json.RawMessage `json:"decoders"`
	Pattern        *hfPattern        `json:"pattern"`
	Content        string            `json:"content"`
	Start          int               `json:"start"`
	Stop           int               `json:"stop"`
	Replacement    string            `json:"replacement"`
	PrependScheme  string            `json:"prepend_scheme"`
	AddPrefixSpace *bool             `json:"add_prefix_space"`
}

// parseDecoder builds a tokenizer.json decoder: Replace, ByteFallback,
// Fuse, Strip, ByteLevel, Metaspace and Sequences of them. null gives nil
// (tokens are then joined with spaces, as Hugging Face does).
func parseDecoder(raw json.RawMessage) (tokenDecoder, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var c hfDecoderJSON
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	switch c.Type {
	case "Replace":
		if c.Pattern != nil && c.Pattern.String != nil {
			old, repl := *c.Pattern.String, c.Content
			if old == "" {
				return nil, fmt.Errorf("decoder Replace: empty pattern")
			}
			return mapTokens(func(s string) string { return strings.ReplaceAll(s, old, repl) }), nil
		}
		re, err := c.Pattern.compile()
		if err != nil {
			return nil, fmt.Errorf("decoder Replace: %w", err)
		}
		repl := c.Content
		return mapTokens(func(s string) string { return regexReplaceAll(re, s, repl) }), nil
	case "ByteFallback":
		return byteFallbackDecode, nil
	case "Fuse":
		return func(toks []string) []string { return []string{strings.Join(toks, "")} }, nil
	case "Strip":
		if utf8.RuneCountInString(c.Content) != 1 {
			return nil, fmt.Errorf("decoder Strip: content %q is not one character", c.Content)
		}
		content, _ := utf8.DecodeRuneInString(c.Content)
		start, stop := c.Start, c.Stop
		return mapTokens(func(s string) string { return stripRunes(s, content, start, stop) }), nil
	case "ByteLevel":
		return byteLevelDecode, nil
	case "Metaspace":
		repl := c.Replacement
		if repl == "" {
			repl = spSpace
		}
		scheme := c.PrependScheme
		if scheme == "" {
			scheme = "always"
		}
		if c.AddPrefixSpace != nil && !*c.AddPrefixSpace {
			scheme = "never"
		}
		return func(toks []string) []string {
			out := make([]string, len(toks))
			for i, t := range toks {
				if i == 0 && scheme != "never" {
					out[i] = strings.ReplaceAll(t, repl, "")
				} else {
					out[i] = strings.ReplaceAll(t, repl, " ")
				}
			}
			return out
		}, nil
	case "Sequence":
		var ds []tokenDecoder
		for _, r := range c.Decoders {
			d, err := parseDecoder(r)
			if err != nil {
				return nil, err
			}
			if d != nil {
				ds = append(ds, d)
			}
		}
		return func(toks []string) []string {
			for _, d := range ds {
				toks = d(toks)
			}
			return toks
		}, nil
	}
	return nil, fmt.Errorf("decoder type %q is not supported", c.Type)
}

func mapTokens(f func(string) string) tokenDecoder {
	return func(toks []string) []string {
		out := make([]string, len(toks))
		for i, t := range toks {
			out[i] = f(t)
		}
		return out
	}
}

// stripRunes removes up to start leading and stop trailing content runes.
func stripRunes(s string, content rune, start, stop int) string {
	rs := []rune(s)
	a := 0
	for a < start && a < len(rs) && rs[a] == content {
		a++
	}
	b := len(rs)
	for i := 0; i < stop && b > a && rs[b-1] == content; i++ {
		b--
	}
	return string(rs[a:b])
}

// byteFallbackDecode turns runs of "<0xNN>" tokens into their bytes: valid
// UTF-8 as one token, else one U+FFFD per byte.
func byteFallbackDecode(toks []string) []string {
	out := make([]string, 0, len(toks))
	var bytes []byte
	flush := func() {
		if len(bytes) == 0 {
			return
		}
		if utf8.Valid(bytes) {
			out = append(out, string(bytes))
		} else {
			for range bytes {
				out = append(out, "\uFFFD")
			}
		}
		bytes = bytes[:0]
	}
	for _, t := range toks {
		if b, ok := hexBytePiece(t); ok {
			bytes = append(bytes, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

// hexBytePiece parses "<0xNN>" with hex digits of either case (as
// u8::from_str_radix does).
func hexBytePiece(t string) (byte, bool) {
	if len(t) != 6 || t[:3] != "<0x" || t[5] != '>' {
		return 0, false
	}
	var b byte
	for _, c := range []byte(t[3:5]) {
		switch {
		case c >= '0' && c <= '9':
			b = b<<4 | (c - '0')
		case c >= 'a' && c <= 'f':
			b = b<<4 | (c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			b = b<<4 | (c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return b, true
}

// byteLevelDecode maps GPT-2's byte runes back to bytes (a token with other
// runes is kept as its UTF-8). Unlike Hugging Face, which replaces invalid
// UTF-8 with U+FFFD, the raw bytes are kept, so that decoding is lossless
// and a StreamDecoder can wait for the rest of a character.
func byteLevelDecode(toks []string) []string {
	var b []byte
	for _, t := range toks {
		if raw, ok := byteLevel.decode(t); ok {
			b = append(b, raw...)
		} else {
			b = append(b, t...)
		}
	}
	return []string{string(b)}
}

// postProcessor holds the special tokens a post-processor puts around a
// single sequence. set is false when the tokenizer has no post-processor
// that adds tokens (none, or ByteLevel).
type postProcessor struct {
	prefix, suffix []int
	set            bool
}

type hfPostJSON struct {
	Type          string          `json:"type"`
	Single        json.RawMessage `json:"single"`
	SpecialTokens map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
	Sep        []json.RawMessage `json:"sep"`
	Cls        []json.RawMessage `json:"cls"`
	Processors []json.RawMessage `json:"processors"`
}

// parsePostProcessor reads TemplateProcessing (single), BertProcessing,
// RobertaProcessing, ByteLevel and Sequences of them.
func parsePostProcessor(raw json.RawMessage) (postProcessor, error) {
	var p postProcessor
	if len(raw) == 0 || string(raw) == "null" {
		return p, nil
	}
	var c hfPostJSON
	if err := json.Unmarshal(raw, &c); err != nil {
		return p, fmt.Errorf("post_processor: %w", err)
	}
	switch c.Type {
	case "ByteLevel":
		return p, nil
	case "TemplateProcessing":
		p.set = true
		pieces, err := templatePieces(c.Single)
		if err != nil {
			return p, fmt.Errorf("post_processor TemplateProcessing: %w", err)
		}
		seen := false
		for _, piece := range pieces {
			if piece == "$A" {
				seen = true
				continue
			}
			if strings.HasPrefix(piece, "$") {
				continue
			}
			st, ok := c.SpecialTokens[piece]
			if !ok {
				return p, fmt.Errorf("post_processor TemplateProcessing: special token %q is not in special_tokens", piece)
			}
			if seen {
				p.suffix = append(p.suffix, st.IDs...)
			} else {
				p.prefix = append(p.prefix, st.IDs...)
			}
		}
		return p, nil
	case "BertProcessing", "RobertaProcessing":
		cls, err := tokenPairID(c.Cls)
		if err != nil {
			return p, fmt.Errorf("post_processor %s cls: %w", c.Type, err)
		}
		sep, err := tokenPairID(c.Sep)
		if err != nil {
			return p, fmt.Errorf("post_processor %s sep: %w", c.Type, err)
		}
		return postProcessor{prefix: []int{cls}, suffix: []int{sep}, set: true}, nil
	case "Sequence":
		for _, r := range c.Processors {
			q, err := parsePostProcessor(r)
			if err != nil {
				return p, err
			}
			p.prefix = append(append([]int(nil), q.prefix...), p.prefix...)
			p.suffix = append(p.suffix, q.suffix...)
			p.set = p.set || q.set
		}
		return p, nil
	}
	return p, fmt.Errorf("post_processor type %q is not supported", c.Type)
}

// templatePieces lists a template as "$A", "$B" and special token names:
// the serialized form [{"SpecialToken": {"id": ...}}, {"Sequence": {"id":
// "A"}}] or the string form "<s>:0 $A:0".
func templatePieces(raw json.RawMessage) ([]string, error) {
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		var out []string
		for _, f := range strings.Fields(str) {
			name, _, _ := strings.Cut(f, ":")
			switch name {
			case "$", "$A", "$a":
				name = "$A"
			case "$B", "$b":
				name = "$B"
			}
			out = append(out, name)
		}
		return out, nil
	}
	var list []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
		Sequence *struct {
			ID string `json:"id"`
		} `json:"Sequence"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, err
	}
	var out []string
	for _, e := range list {
		switch {
		case e.SpecialToken != nil:
			out = append(out, e.SpecialToken.ID)
		case e.Sequence != nil:
			out = append(out, "$"+e.Sequence.ID)
		default:
			return nil, fmt.Errorf("template piece is neither SpecialToken nor Sequence")
		}
	}
	return out, nil
}

// tokenPairID reads the id of a ["token", id] pair.
func tokenPairID(pair []json.RawMessage) (int, error) {
	if len(pair) != 2 {
		return 0, fmt.Errorf("want [token, id]")
	}
	var id int
	if err := json.Unmarshal(pair[1], &id); err != nil {
		return 0, err
	}
	return id, nil
}

// apply wraps ids with the post-processor's special tokens.
func (p *postProcessor) apply(ids []int) []int {
	if len(p.prefix) == 0 && len(p.suffix) == 0 {
		return ids
	}
	out := make([]int, 0, len(p.prefix)+len(ids)+len(p.suffix))
	out = append(out, p.prefix...)
	out = append(out, ids...)
	return append(out, p.suffix...)
}
