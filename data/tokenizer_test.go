package data

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestByteTokenizer(t *testing.T) {
	tests := []struct {
		eos, wantEOS, wantVocab int
	}{
		{-1, -1, 256},
		{-7, -1, 256},
		{0, 0, 256},
		{10, 10, 256},
		{255, 255, 256},
		{256, 256, 257},
		{50256, 50256, 50257},
	}
	for _, tc := range tests {
		tok := NewByteTokenizer(tc.eos)
		if tok.EOS() != tc.wantEOS || tok.VocabSize() != tc.wantVocab || tok.BOS() != -1 || tok.Name() != "bytes" {
			t.Errorf("NewByteTokenizer(%d): eos %d vocab %d bos %d name %q; want eos %d vocab %d bos -1 name bytes",
				tc.eos, tok.EOS(), tok.VocabSize(), tok.BOS(), tok.Name(), tc.wantEOS, tc.wantVocab)
		}
	}
	tok := NewByteTokenizer(256)
	for _, tc := range []struct {
		text string
		ids  []int
	}{
		{"", []int{}},
		{"Hi\n", []int{72, 105, 10}},
		{"é", []int{0xC3, 0xA9}},
		{"\x00\xff", []int{0, 255}},
	} {
		got := tok.Encode(tc.text)
		if !equalInts(got, tc.ids) {
			t.Errorf("Encode(%q) = %v, want %v", tc.text, got, tc.ids)
		}
		if d := tok.Decode(got); d != tc.text {
			t.Errorf("Decode(Encode(%q)) = %q", tc.text, d)
		}
	}
	if d := tok.Decode([]int{104, 256, 105, 300, -1}); d != "hi" {
		t.Errorf("Decode skips EOS and out-of-range ids: got %q, want %q", d, "hi")
	}
	if d := NewByteTokenizer(10).Decode([]int{65, 10}); d != "A\n" {
		t.Errorf("EOS inside the byte range decodes to its byte: got %q", d)
	}
}

// splitAll collects a splitter's pieces.
func splitAll(s splitter, text string) []string {
	var out []string
	s.split(text, func(p string) { out = append(out, p) })
	return out
}

// trickyStrings mixes characters where the pre-tokenizer regexes disagree
// most easily: contractions in both cases, CR/LF, Unicode spaces, digits
// of several scripts, marks, symbols and invalid UTF-8.
func trickyStrings(n int, seed uint64) []string {
	alphabet := []string{"a", "Z", "é", "ж", "中", "1", "٣", "Ⅻ", "½", " ", "  ", "\t", "\n", "\r", "\r\n",
		"\u00a0", "\u3000", "\u2028", "\u0085", "'", "'s", "'S", "'ll", "'LL", "'Re", "'ve", "'d", "'M", "'t",
		"!", ".", "(", "\"", "😀", "\u0301", "_", "-", "\xff", "\xc3", "\x80", "\x00", "\x1c", "<|endoftext|>"}
	rng := newSplitMix(seed)
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for k := rng.intn(24); k >= 0; k-- {
			b.WriteString(alphabet[rng.intn(len(alphabet))])
		}
		out[i] = b.String()
	}
	return out
}

func TestSplittersMatchRegexp2(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 200
	}
	inputs := append(append([]string(nil), edgeCases...), trickyStrings(20*n, 1)...)
	inputs = append(inputs, goSourceSamples(t, n)...)
	for _, pat := range []string{gpt2Pattern, llama3Pattern, qwen2Pattern} {
		fast, err := newSplitter(pat)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fast.(regexSplitter); ok {
			t.Fatalf("pattern %q has no fast splitter", pat)
		}
		slow, err := newRegexSplitter(pat)
		if err != nil {
			t.Fatal(err)
		}
		bad := 0
		for _, s := range inputs {
			got, want := splitAll(fast, s), splitAll(slow, s)
			if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
				if bad++; bad <= 3 {
					t.Errorf("pattern %.20q… on %q:\n got %q\nwant %q", pat, s, got, want)
				}
			}
		}
		if bad > 0 {
			t.Errorf("%d of %d inputs differ", bad, len(inputs))
		}
	}
}

// TestContractionCaseFoldIsASCII backs contraction(): under regexp2's
// (?i) (unicode.ToLower), only ASCII letters lower-case into s t r e v m l d.
func TestContractionCaseFoldIsASCII(t *testing.T) {
	for r := rune(0x80); r <= unicode.MaxRune; r++ {
		if l := unicode.ToLower(r); l < utf8.RuneSelf && strings.ContainsRune("strevmld", l) {
			t.Errorf("non-ASCII %U lower-cases to %q", r, l)
		}
	}
}

func TestMergeHeapMatchesShort(t *testing.T) {
	bt := gpt2Tokenizer(t).(*bpeTokenizer)
	m := bt.model
	words := append(trickyStrings(2000, 3), edgeCases...)
	for _, s := range goSourceSamples(t, 200) {
		words = append(words, splitAll(gpt2Splitter{}, s)...)
	}
	for _, w := range words {
		syms := make([]int32, 0, len(w))
		for i := 0; i < len(w); i++ {
			syms = append(syms, m.byteIDs[w[i]])
		}
		a := m.mergeShort(append([]int32(nil), syms...))
		b := m.mergeHeap(append([]int32(nil), syms...))
		if len(syms) == 0 {
			continue
		}
		if len(a) != len(b) {
			t.Fatalf("%q: short %v heap %v", w, a, b)
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%q: short %v heap %v", w, a, b)
			}
		}
	}
}

func TestBPERoundTripArbitraryBytes(t *testing.T) {
	tok := gpt2Tokenizer(t)
	for _, s := range trickyStrings(3000, 9) {
		ids := tok.Encode(s)
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("Encode(%q) produced id %d outside vocab %d", s, id, tok.VocabSize())
			}
		}
		if d := tok.Decode(ids); d != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, d)
		}
	}
	long := strings.Repeat("abcdefgh", 5000) // one pre-token, heap merge path
	if d := tok.Decode(tok.Encode(long)); d != long {
		t.Fatal("round trip of a 40000-byte word failed")
	}
	if got := tok.Encode("a<|endoftext|>b"); len(got) != 3 || got[1] != 50256 {
		t.Errorf("special token in text: got %v, want [a 50256 b]", got)
	}
}

// tinyVocab is a byte-level vocab: the 256 bytes (ids 0-255 in byte order),
// then extra tokens.
func tinyVocab(extra ...string) map[string]int {
	v := map[string]int{}
	for b := 0; b < 256; b++ {
		v[string(byteLevel.toRune[b])] = b
	}
	for i, e := range extra {
		v[e] = 256 + i
	}
	return v
}

// writeJSONFiles writes name → value (marshalled unless a string) into dir.
func writeJSONFiles(t *testing.T, dir string, files map[string]any) {
	t.Helper()
	for name, v := range files {
		b, ok := v.(string)
		if !ok {
			raw, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			b = string(raw)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func tinyTokenizerJSON(pre any, normalizer any, added []any) map[string]any {
	return map[string]any{
		"added_tokens":  added,
		"normalizer":    normalizer,
		"pre_tokenizer": pre,
		"model": map[string]any{"type": "BPE", "vocab": tinyVocab("he", "ll", "hell", "hello", "Ġw", "<|eos|>", "<|bos|>"),
			"merges": []string{"h e", "l l", "he ll", "hell o", "Ġ w"}},
	}
}

var byteLevelPre = map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}

func TestLoadTokenizerSpecials(t *testing.T) {
	added := []any{
		map[string]any{"id": 261, "content": "<|eos|>", "special": true},
		map[string]any{"id": 262, "content": "<|bos|>", "special": true},
		map[string]any{"id": 300, "content": "<mask>", "special": true, "lstrip": true},
	}
	tests := []struct {
		name               string
		files              map[string]any
		configEOS, confBOS int
		wantEOS, wantBOS   int
	}{
		{"config ids only", nil, 261, 262, 261, 262},
		{"string names", map[string]any{"tokenizer_config.json": map[string]any{"eos_token": "<|eos|>", "bos_token": "<|bos|>"}}, 5, 6, 261, 262},
		{"content objects", map[string]any{"tokenizer_config.json": map[string]any{"eos_token": map[string]any{"content": "<|eos|>"}}}, 5, 6, 261, 6},
		{"explicit null bos", map[string]any{"tokenizer_config.json": map[string]any{"eos_token": "<|eos|>", "bos_token": nil}}, 5, 262, 261, -1},
		{"special_tokens_map", map[string]any{"special_tokens_map.json": map[string]any{"eos_token": "<|bos|>"}}, 5, -1, 262, -1},
		{"unknown name falls back", map[string]any{"tokenizer_config.json": map[string]any{"eos_token": "</s>"}}, 261, -1, 261, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]any{"tokenizer.json": tinyTokenizerJSON(byteLevelPre, nil, added)}
			for k, v := range tc.files {
				files[k] = v
			}
			writeJSONFiles(t, dir, files)
			tok, err := LoadTokenizer(dir, "auto", tc.configEOS, tc.confBOS)
			if err != nil {
				t.Fatal(err)
			}
			if tok.EOS() != tc.wantEOS || tok.BOS() != tc.wantBOS {
				t.Errorf("EOS %d BOS %d, want %d %d", tok.EOS(), tok.BOS(), tc.wantEOS, tc.wantBOS)
			}
			if tok.VocabSize() != 301 || tok.Name() != "bpe" {
				t.Errorf("VocabSize %d name %q, want 301 bpe", tok.VocabSize(), tok.Name())
			}
			got := tok.Encode("hello<|eos|> w  <mask>x")
			want := []int{259, 261, 260, 300, 'x'} // hello <|eos|> Ġw (lstrip eats the spaces) <mask> x
			if !equalInts(got, want) {
				t.Errorf("Encode = %v, want %v", got, want)
			}
			if d := tok.Decode(got); d != "hello<|eos|> w<mask>x" {
				t.Errorf("Decode = %q", d)
			}
		})
	}
}

func TestLoadTokenizerPipelines(t *testing.T) {
	split := func(pat string) map[string]any {
		return map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": pat}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false},
		}}
	}
	tests := []struct {
		name       string
		pre, norm  any
		text       string
		want       []int
		wantFast   bool
		wantChunks bool
	}{
		{"gpt2", byteLevelPre, nil, "hello world", []int{259, 260, 'o', 'r', 'l', 'd'}, true, true},
		{"prefix space", map[string]any{"type": "ByteLevel", "add_prefix_space": true}, nil, "world", []int{260, 'o', 'r', 'l', 'd'}, true, false},
		{"llama3", split(llama3Pattern), nil, "hello 12345", []int{259, ' ', '1', '2', '3', '4', '5'}, true, true},
		{"qwen2 nfc", split(qwen2Pattern), map[string]any{"type": "NFC"}, "he\u0301", []int{'h', 0xC3, 0xA9}, true, false},
		{"custom regex", split(`\d|[a-z]+|\s+`), nil, "hello 12", []int{259, ' ', '1', '2'}, false, false},
		{"smollm digits", map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Digits", "individual_digits": true}, byteLevelPre}}, nil, "hello 12", []int{259, ' ', '1', '2'}, true, true},
		{"literal split", split(`x`), nil, "", []int{}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeJSONFiles(t, dir, map[string]any{"tokenizer.json": tinyTokenizerJSON(tc.pre, tc.norm, nil)})
			tok, err := LoadTokenizer(dir, "bpe", -1, -1)
			if err != nil {
				t.Fatal(err)
			}
			got := tok.Encode(tc.text)
			if !equalInts(got, tc.want) {
				t.Errorf("Encode(%q) = %v, want %v", tc.text, got, tc.want)
			}
			bt := tok.(*bpeTokenizer)
			if bt.fastSplit != tc.wantFast || bt.chunkable() != tc.wantChunks {
				t.Errorf("fast %v chunkable %v, want %v %v", bt.fastSplit, bt.chunkable(), tc.wantFast, tc.wantChunks)
			}
		})
	}
}

func TestLoadTokenizerErrors(t *testing.T) {
	model := func(m map[string]any) map[string]any {
		tj := tinyTokenizerJSON(byteLevelPre, nil, nil)
		for k, v := range m {
			tj["model"].(map[string]any)[k] = v
		}
		return tj
	}
	badMerge := model(map[string]any{"merges": []string{"h q"}})
	tests := []struct {
		name  string
		files map[string]any
		kind  string
		want  string
	}{
		{"no files", nil, "auto", "--tokenizer bytes"},
		{"sentencepiece model", map[string]any{"tokenizer.model": "\x0a\x0b"}, "auto", "tokenizer.model: field 1: bad length"},
		{"sentencepiece path", map[string]any{"tokenizer.model": "x"}, "tokenizer.model", "tokenizer.model: field 15: bad varint"},
		{"unigram", map[string]any{"tokenizer.json": model(map[string]any{"type": "Unigram", "vocab": []any{}})}, "auto", "empty vocab"},
		{"wordpiece", map[string]any{"tokenizer.json": model(map[string]any{"type": "WordPiece"})}, "auto", `model type "WordPiece"`},
		{"bad merge", map[string]any{"tokenizer.json": badMerge}, "auto", "not in vocab"},
		{"bad json", map[string]any{"tokenizer.json": "{"}, "auto", "tokenizer.json"},
		{"bad regex", map[string]any{"tokenizer.json": tinyTokenizerJSON(map[string]any{"type": "Split",
			"pattern": map[string]any{"Regex": "("}, "behavior": "Isolated"}, nil, nil)}, "auto", "regex"},
		{"unknown behaviour", map[string]any{"tokenizer.json": tinyTokenizerJSON(map[string]any{"type": "Split",
			"pattern": map[string]any{"Regex": "a"}, "behavior": "Sideways"}, nil, nil)}, "auto", "Sideways"},
		{"missing path", nil, "/nonexistent/tokenizer.json", "not \"auto\""},
		{"bad merges.txt", map[string]any{"vocab.json": tinyVocab(), "merges.txt": "#version: 0.2\na b c\n"}, "auto", "merges.txt:2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeJSONFiles(t, dir, tc.files)
			kind := tc.kind
			if kind == "tokenizer.model" {
				kind = filepath.Join(dir, kind)
			}
			_, err := LoadTokenizer(dir, kind, -1, -1)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error: %q", err)
			}
		})
	}
}

func TestLoadTokenizerKinds(t *testing.T) {
	tok, err := LoadTokenizer("/nonexistent", "bytes", 256, -1)
	if err != nil || tok.Name() != "bytes" || tok.EOS() != 256 || tok.VocabSize() != 257 {
		t.Fatalf("bytes: %v %v", tok, err)
	}
	dir := t.TempDir()
	writeJSONFiles(t, dir, map[string]any{"vocab.json": tinyVocab("he", "ll", "<|endoftext|>"), "merges.txt": "#version: 0.2\nh e\nl l\n"})
	for _, kind := range []string{"auto", dir} {
		tok, err := LoadTokenizer(dir, kind, 258, -1)
		if err != nil {
			t.Fatal(err)
		}
		// The config EOS looks like <...>, so it is matched in text.
		if got := tok.Encode("hell<|endoftext|>"); !equalInts(got, []int{256, 257, 258}) {
			t.Errorf("kind %q: Encode = %v, want [256 257 258]", kind, got)
		}
	}
}

func TestDigitsSplitter(t *testing.T) {
	for _, tc := range []struct {
		individual bool
		in         string
		want       []string
	}{
		{true, "ab12c٣½", []string{"ab", "1", "2", "c", "٣", "½"}},
		{false, "ab12c٣½ 7", []string{"ab", "12", "c", "٣½", " ", "7"}},
		{false, "", nil},
		{true, "x", []string{"x"}},
	} {
		if got := splitAll(digitsSplitter{tc.individual}, tc.in); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("Digits(%v) %q = %q, want %q", tc.individual, tc.in, got, tc.want)
		}
	}
}

func TestLoadVocabMergesSpecials(t *testing.T) {
	dir := t.TempDir()
	writeJSONFiles(t, dir, map[string]any{
		"vocab.json":        tinyVocab("he", "ll", "<|im_start|>", "<pad>", "Ġh"),
		"merges.txt":        "#version: 0.2\nh e\nl l\nĠ h\n",
		"added_tokens.json": map[string]int{"<|extra|>": 300},
		"tokenizer_config.json": map[string]any{
			"add_prefix_space":          true,
			"eos_token":                 map[string]any{"content": "<|im_start|>", "special": true},
			"added_tokens_decoder":      map[string]any{"301": map[string]any{"content": "<|dec|>", "special": true}},
			"additional_special_tokens": []any{"<pad>"},
		},
	})
	tok, err := LoadTokenizer(dir, "auto", -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if tok.EOS() != 258 || tok.BOS() != -1 || tok.VocabSize() != 302 {
		t.Errorf("EOS %d BOS %d vocab %d, want 258 -1 302", tok.EOS(), tok.BOS(), tok.VocabSize())
	}
	got := tok.Encode("hell<|im_start|><pad>x<|extra|><|dec|>")
	// "h e" outranks "Ġ h": Ġ he ll; the prefix space is added per segment.
	want := []int{' ', 256, 257, 258, 259, ' ', 'x', 300, 301}
	if !equalInts(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}
	if d := tok.Decode(got); d != " hell<|im_start|><pad> x<|extra|><|dec|>" {
		t.Errorf("Decode = %q", d)
	}
}

func TestLoadTokenizerChainAndNormalizers(t *testing.T) {
	pre := map[string]any{"type": "Sequence", "pretokenizers": []any{
		map[string]any{"type": "Split", "pattern": map[string]any{"String": "|"}, "behavior": "Isolated", "invert": false},
		map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
	}}
	norm := map[string]any{"type": "Sequence", "normalizers": []any{map[string]any{"type": "NFKD"}, map[string]any{"type": "NFKC"}}}
	dir := t.TempDir()
	writeJSONFiles(t, dir, map[string]any{"tokenizer.json": tinyTokenizerJSON(pre, norm, nil)})
	tok, err := LoadTokenizer(dir, "auto", -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	// "ﬁ" (U+FB01) is NFKC "fi"; "|" is split out by the literal Split.
	if got := tok.Encode("he|ﬁ hello"); !equalInts(got, []int{256, '|', 'f', 'i', ' ', 259}) {
		t.Errorf("Encode = %v", got)
	}
	for _, n := range []string{"NFC", "NFD", "NFKC", "NFKD"} {
		if f, err := parseNormalizer([]byte(`{"type":"` + n + `"}`)); err != nil || f == nil {
			t.Errorf("normalizer %s: %v", n, err)
		}
	}
	// The byte-level path shares the tokenizer.json pipeline's normalizers.
	if f, err := parseNormalizer([]byte(`{"type":"Lowercase"}`)); err != nil || f == nil || f("ÀbC") != "àbc" {
		t.Errorf("Lowercase normalizer: %v", err)
	}
	if _, err := parseNormalizer([]byte(`{"type":"BertNormalizer"}`)); err == nil || !strings.Contains(err.Error(), "BertNormalizer") {
		t.Errorf("unsupported normalizer: %v", err)
	}
	if _, err := parseNormalizer([]byte(`{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Prepend","prepend":"▁"}]}`)); err != errSentencePiece {
		t.Errorf("SentencePiece normalizer inside a Sequence: %v", err)
	}
	if f, err := parseNormalizer([]byte(`{"type":"Sequence","normalizers":[]}`)); err != nil || f != nil {
		t.Errorf("empty sequence: %v", err)
	}
}
