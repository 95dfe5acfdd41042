package data

import "fmt"

// byteTokenizer maps each byte to its own id.
type byteTokenizer struct{ eos int }

// NewByteTokenizer returns a tokenizer whose ids 0-255 are the bytes of the
// text. eos is the EOS id: -1 for none, one of 0-255 (that byte then doubles
// as EOS and still decodes to itself), or an id ≥ 256 outside the byte
// range, which decodes to nothing. VocabSize is max(256, eos+1), so eos 256
// gives 257. BOS is -1.
func NewByteTokenizer(eos int) Tokenizer {
	if eos < 0 {
		eos = -1
	}
	return byteTokenizer{eos: eos}
}

func (t byteTokenizer) Encode(text string) []int {
	ids := make([]int, len(text))
	for i := 0; i < len(text); i++ {
		ids[i] = int(text[i])
	}
	return ids
}

func (t byteTokenizer) Decode(ids []int) string {
	b := make([]byte, 0, len(ids))
	for _, id := range ids {
		if id >= 0 && id < 256 {
			b = append(b, byte(id))
		}
	}
	return string(b)
}

func (t byteTokenizer) VocabSize() int  { return max(256, t.eos+1) }
func (t byteTokenizer) EOS() int        { return t.eos }
func (t byteTokenizer) BOS() int        { return -1 }
func (t byteTokenizer) Name() string    { return "bytes" }
func (t byteTokenizer) chunkable() bool { return true }

// EncodeSpecial is Encode: the byte tokenizer adds no special tokens.
func (t byteTokenizer) EncodeSpecial(text string) []int { return t.Encode(text) }

// TokenStrings returns printable ASCII bytes as themselves and other ids as
// "<0xNN>" (or "<id>" beyond the byte range, e.g. the EOS 256).
func (t byteTokenizer) TokenStrings(ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		switch {
		case id >= 0x21 && id <= 0x7E:
			out[i] = string(rune(id))
		case id >= 0 && id < 256:
			out[i] = fmt.Sprintf("<0x%02X>", id)
		case id >= 256 && id < t.VocabSize():
			out[i] = fmt.Sprintf("<%d>", id)
		}
	}
	return out
}
