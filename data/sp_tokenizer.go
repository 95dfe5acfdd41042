package data

import (
	"fmt"
	"os"
	"strings"
	"unicode/utf8"
)

// spTokenizer encodes and decodes as sentencepiece.SentencePieceProcessor
// does with a tokenizer.model (BPE or Unigram), adding BOS/EOS around
// EncodeSpecial as the Hugging Face slow LlamaTokenizer does.
type spTokenizer struct {
	name     string
	bpe      bool
	pieces   []string
	scores   []float32
	types    []spPieceType
	pieceID  map[string]int32 // NORMAL, USER_DEFINED and UNUSED pieces
	reserved map[string]int32 // CONTROL, UNKNOWN and BYTE pieces
	unk      int32
	byteIDs  [256]int32 // -1 without byte_fallback
	fallback bool
	norm     *spNormalizer
	trie     *byteTrie // unigram: pieceID as a trie
	minScore float32
	maxScore float32
	proto    *spModelProto

	bos, eos       int
	addBOS, addEOS bool
}

// loadSentencePiece reads a tokenizer.model file.
func loadSentencePiece(path string) (*spTokenizer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := newSPTokenizer(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// newSPTokenizer builds a tokenizer from a serialized ModelProto, checking
// it as SentencePiece's ModelInterface::InitializePieces does. BOS is added
// by EncodeSpecial (when the model has one), EOS is not.
func newSPTokenizer(raw []byte) (*spTokenizer, error) {
	m, err := parseSPModel(raw)
	if err != nil {
		return nil, err
	}
	t := &spTokenizer{
		proto:    m,
		pieceID:  map[string]int32{},
		reserved: map[string]int32{},
		unk:      -1,
		fallback: m.byteFallback,
		norm: &spNormalizer{
			addDummyPrefix:         m.addDummyPrefix,
			removeExtraWhitespaces: m.removeExtraWhitespaces,
			escapeWhitespaces:      m.escapeWhitespaces,
			treatWSAsSuffix:        m.treatWhitespaceAsSuffix,
		},
	}
	switch m.modelType {
	case spModelBPE:
		t.bpe, t.name = true, "sentencepiece-bpe"
	case spModelUnigram:
		t.name = "sentencepiece-unigram"
	default:
		return nil, fmt.Errorf("SentencePiece model type %d is not supported (only unigram and BPE)", m.modelType)
	}
	if len(m.charsMap) > 0 {
		if t.norm.charsMap, err = parseCharsMap(m.charsMap); err != nil {
			return nil, err
		}
	}
	for i := range t.byteIDs {
		t.byteIDs[i] = -1
	}
	n := len(m.pieces)
	t.pieces, t.scores, t.types = make([]string, n), make([]float32, n), make([]spPieceType, n)
	for i, p := range m.pieces {
		t.pieces[i], t.scores[i], t.types[i] = p.piece, p.score, p.typ
		normal := p.typ == spNormal || p.typ == spUserDefined || p.typ == spUnused
		dst := t.reserved
		if normal {
			dst = t.pieceID
		}
		if _, dup := t.pieceID[p.piece]; dup {
			return nil, fmt.Errorf("piece %q is defined twice", p.piece)
		}
		if _, dup := t.reserved[p.piece]; dup {
			return nil, fmt.Errorf("piece %q is defined twice", p.piece)
		}
		dst[p.piece] = int32(i)
		switch p.typ {
		case spUserDefined:
			if t.norm.user == nil {
				t.norm.user = newByteTrie()
			}
			t.norm.user.add(p.piece, int32(i))
		case spUnknown:
			if t.unk >= 0 {
				return nil, fmt.Errorf("second unknown piece %q", p.piece)
			}
			t.unk = int32(i)
		case spByte:
			if !m.byteFallback {
				return nil, fmt.Errorf("byte piece %q without byte_fallback", p.piece)
			}
			b, ok := pieceByte(p.piece)
			if !ok {
				return nil, fmt.Errorf("invalid byte piece %q", p.piece)
			}
			t.byteIDs[b] = int32(i)
		}
	}
	if t.unk < 0 {
		return nil, fmt.Errorf("no unknown piece")
	}
	if m.byteFallback {
		for b, id := range t.byteIDs {
			if id < 0 {
				return nil, fmt.Errorf("byte_fallback without the byte piece <0x%02X>", b)
			}
		}
	}
	if !t.bpe {
		t.minScore, t.maxScore = spScoreBounds(m.pieces)
		t.trie = newByteTrie()
		for p, id := range t.pieceID {
			t.trie.add(p, id)
		}
	}
	t.bos, t.eos = -1, -1
	if m.bosID >= 0 && m.bosID < n && t.types[m.bosID] == spControl {
		t.bos = m.bosID
	}
	if m.eosID >= 0 && m.eosID < n && t.types[m.eosID] == spControl {
		t.eos = m.eosID
	}
	t.addBOS = t.bos >= 0
	return t, nil
}

// pieceByte parses a byte piece "<0xNN>" (upper-case hex, as SentencePiece
// writes them).
func pieceByte(p string) (byte, bool) {
	if len(p) != 6 || p[:3] != "<0x" || p[5] != '>' {
		return 0, false
	}
	var b byte
	for _, c := range []byte(p[3:5]) {
		switch {
		case c >= '0' && c <= '9':
			b = b<<4 | (c - '0')
		case c >= 'A' && c <= 'F':
			b = b<<4 | (c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return b, true
}

// pieceToID is ModelInterface::PieceToId.
func (t *spTokenizer) pieceToID(p string) int32 {
	if id, ok := t.reserved[p]; ok {
		return id
	}
	if id, ok := t.pieceID[p]; ok {
		return id
	}
	return t.unk
}

func (t *spTokenizer) Name() string   { return t.name }
func (t *spTokenizer) VocabSize() int { return len(t.pieces) }
func (t *spTokenizer) EOS() int       { return t.eos }

// BOS is the id EncodeSpecial puts first, or -1 when it adds none.
func (t *spTokenizer) BOS() int {
	if !t.addBOS {
		return -1
	}
	return t.bos
}

// Encode is SentencePieceProcessor.encode(text): normalize, run the model,
// then replace each unknown piece by its UTF-8 bytes (byte_fallback) or
// merge runs of unknown pieces into one.
func (t *spTokenizer) Encode(text string) []int {
	s := t.norm.normalize(text)
	var res []spResult
	if t.bpe {
		res = t.encodeBPE(s, nil)
	} else {
		res = t.encodeUnigram(s, nil)
	}
	out := make([]int, 0, len(res))
	prevUnk := false
	for _, r := range res {
		unk := r.id == t.unk
		switch {
		case unk && t.fallback:
			for i := 0; i < len(r.piece); i++ {
				out = append(out, int(t.byteIDs[r.piece[i]]))
			}
		case unk && prevUnk:
			// merged into the previous unknown piece
		default:
			out = append(out, int(r.id))
		}
		prevUnk = unk
	}
	return out
}

// EncodeSpecial is Encode with BOS before (add_bos_token, default true) and
// EOS after (add_eos_token, default false), as LlamaTokenizer does.
func (t *spTokenizer) EncodeSpecial(text string) []int {
	ids := t.Encode(text)
	if t.addBOS && t.bos >= 0 {
		ids = append([]int{t.bos}, ids...)
	}
	if t.addEOS && t.eos >= 0 {
		ids = append(ids, t.eos)
	}
	return ids
}

// TokenStrings returns the pieces of ids ("" for ids out of range).
func (t *spTokenizer) TokenStrings(ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		if id >= 0 && id < len(t.pieces) {
			out[i] = t.pieces[id]
		}
	}
	return out
}

// Decode is SentencePieceProcessor.decode(ids): control pieces vanish, the
// unknown piece becomes unk_surface (" ⁇ "), runs of byte pieces become
// their UTF-8 text (U+FFFD per invalid byte), U+2581 becomes a space, and
// the space of the first piece is dropped when it came from the dummy
// prefix (add_dummy_prefix or remove_extra_whitespaces). Out-of-range ids
// are skipped.
func (t *spTokenizer) Decode(ids []int) string {
	var b strings.Builder
	var bytes []byte
	flush := func() {
		for len(bytes) > 0 {
			r, l := utf8.DecodeRune(bytes)
			if r == utf8.RuneError && l <= 1 {
				b.WriteString("\uFFFD")
				l = 1
			} else {
				b.Write(bytes[:l])
			}
			bytes = bytes[l:]
		}
	}
	bosWS, bosWSSeen := true, false
	stripFirst := t.proto.addDummyPrefix || t.proto.removeExtraWhitespaces
	for _, id := range ids {
		if id < 0 || id >= len(t.pieces) {
			continue
		}
		if t.types[id] == spByte {
			c, _ := pieceByte(t.pieces[id])
			bytes = append(bytes, c)
			continue
		}
		flush()
		if bosWSSeen || b.Len() > 0 {
			bosWS = false
		}
		piece := t.pieces[id]
		bosWSSeen = false
		switch t.types[id] {
		case spControl:
			continue
		case spUnknown:
			b.WriteString(t.proto.unkSurface)
			continue
		}
		if bosWS && stripFirst {
			var had bool
			piece, had = strings.CutPrefix(piece, spSpace)
			bosWSSeen = had && !t.proto.removeExtraWhitespaces
		}
		b.WriteString(strings.ReplaceAll(piece, spSpace, " "))
	}
	flush()
	return b.String()
}
