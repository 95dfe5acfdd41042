package data

// byteLevel is GPT-2's bytes_to_unicode table and its inverse: every byte is
// mapped to a printable rune so byte-level BPE vocabularies are valid JSON
// text. It is computed once and never modified.
var byteLevel = newByteLevelTable()

type byteLevelTable struct {
	toRune [256]rune
	toByte map[rune]byte
}

func newByteLevelTable() *byteLevelTable {
	t := &byteLevelTable{toByte: make(map[rune]byte, 256)}
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	n := 0
	for b := 0; b < 256; b++ {
		r := rune(b)
		if !printable(b) {
			r = rune(256 + n)
			n++
		}
		t.toRune[b] = r
		t.toByte[r] = byte(b)
	}
	return t
}

// encode maps raw bytes to their byte-level string form.
func (t *byteLevelTable) encode(b []byte) string {
	rs := make([]rune, len(b))
	for i, c := range b {
		rs[i] = t.toRune[c]
	}
	return string(rs)
}

// decode maps a byte-level string back to raw bytes. Runes outside the table
// (possible in added tokens) are kept as their UTF-8 encoding; ok reports
// whether every rune was in the table.
func (t *byteLevelTable) decode(s string) (b []byte, ok bool) {
	b = make([]byte, 0, len(s))
	ok = true
	for _, r := range s {
		if c, found := t.toByte[r]; found {
			b = append(b, c)
			continue
		}
		ok = false
		b = append(b, string(r)...)
	}
	return b, ok
}
