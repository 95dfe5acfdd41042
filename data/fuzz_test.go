package data

import (
	"strings"
	"testing"
)

// FuzzBPEEncodeDecode checks that the GPT-2 tokenizer round-trips arbitrary
// bytes with in-range ids, and that the hand-written pre-tokenizers split
// exactly like regexp2.
func FuzzBPEEncodeDecode(f *testing.F) {
	for _, s := range edgeCases {
		f.Add(s)
	}
	tok := gpt2Tokenizer(f)
	var slow [3]splitter
	fast := [3]splitter{gpt2Splitter{}, llamaSplitter{maxDigits: 3}, llamaSplitter{maxDigits: 1}}
	for i, p := range []string{gpt2Pattern, llama3Pattern, qwen2Pattern} {
		var err error
		if slow[i], err = newRegexSplitter(p); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s)
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("id %d outside vocab %d", id, tok.VocabSize())
			}
		}
		if d := tok.Decode(ids); d != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, d)
		}
		for i := range fast {
			got, want := splitAll(fast[i], s), splitAll(slow[i], s)
			if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
				t.Fatalf("splitter %d on %q: got %q, want %q", i, s, got, want)
			}
		}
	})
}
