package data

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzText is encoded by every tokenizer the parser fuzzers accept.
const fuzzText = "Hello  wörld\t123 <s> 😀 ▁x\xff"

// checkTokenizer encodes and decodes fuzzText, checking ids are in range.
func checkTokenizer(t *testing.T, tok Tokenizer) {
	for _, ids := range [][]int{tok.Encode(fuzzText), tok.EncodeSpecial(fuzzText)} {
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("id %d outside vocab %d", id, tok.VocabSize())
			}
		}
		tok.Decode(ids)
		tok.TokenStrings(ids)
		streamAll(tok, ids)
	}
}

// FuzzSentencePieceModel parses arbitrary ModelProto bytes (seeded with
// the golden models, truncated and bit-flipped by the fuzzer).
func FuzzSentencePieceModel(f *testing.F) {
	for _, name := range []string{"bpe-identity.model", "unigram-identity.model", "bpe-identity-bytes.model"} {
		raw, err := os.ReadFile(filepath.Join("testdata", "sp", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte("\x0a\x07\x0a\x05<unk>\x0a\x05\x0a\x01a\x18\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := newSPTokenizer(b)
		if err != nil {
			return
		}
		checkTokenizer(t, tok)
	})
}

// FuzzTokenizerJSON parses arbitrary tokenizer.json text (seeded with the
// converted SentencePiece files and small hand-written pipelines).
func FuzzTokenizerJSON(f *testing.F) {
	for _, name := range []string{"bpe-identity-legacy.json", "unigram-identity-nonlegacy.json"} {
		raw, err := os.ReadFile(filepath.Join("testdata", "sp", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	for _, pre := range []any{
		map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
		map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"String": " "}, "behavior": "MergedWithNext"},
			map[string]any{"type": "Digits", "individual_digits": true}}},
		map[string]any{"type": "ByteLevel", "add_prefix_space": true},
	} {
		j := tinyTokenizerJSON(pre, map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "NFKC"}, map[string]any{"type": "Replace", "pattern": map[string]any{"Regex": " +"}, "content": " "}}},
			[]any{map[string]any{"id": 0, "content": "h", "lstrip": true, "rstrip": true, "single_word": true, "special": true}})
		j["decoder"] = map[string]any{"type": "Sequence", "decoders": []any{
			map[string]any{"type": "ByteFallback"}, map[string]any{"type": "Metaspace", "replacement": "▁"},
			map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 1}}}
		j["post_processor"] = map[string]any{"type": "BertProcessing", "cls": []any{"h", 0}, "sep": []any{"e", 1}}
		raw, _ := json.Marshal(j)
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := parseHFTokenizer(b)
		if err != nil {
			return
		}
		checkTokenizer(t, tok)
	})
}

// FuzzSentencePieceAgree checks on arbitrary text that the tokenizer.model
// path and its legacy tokenizer.json conversion give the same ids (BPE), and
// that byte_fallback models decode their encoding back to the text.
func FuzzSentencePieceAgree(f *testing.F) {
	g := readSPGoldens(f)
	for _, c := range g.Models[0].Cases {
		f.Add(c.Text)
	}
	type pair struct {
		sp   *spTokenizer
		json Tokenizer
	}
	var pairs []pair
	for _, m := range g.Models {
		if m.LegacyJSON == "" {
			continue
		}
		sp, err := loadSentencePiece(filepath.Join("testdata", "sp", m.Model))
		if err != nil {
			f.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join("testdata", "sp", m.LegacyJSON))
		if err != nil {
			f.Fatal(err)
		}
		j, err := parseHFTokenizer(raw)
		if err != nil {
			f.Fatal(err)
		}
		pairs = append(pairs, pair{sp, j})
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		for _, p := range pairs {
			ids := p.sp.Encode(s)
			// Control and unknown pieces ("<s>", "<unk>") are added
			// special tokens in tokenizer.json, matched in the text.
			// Unigram is left out: Hugging Face sums scores in float64
			// where sentencepiece uses float32, so exact ties between
			// segmentations (e.g. "▁"+"▁▁▁▁▁▁▁" vs "▁▁▁▁▁▁▁"+"▁" in
			// "211        0", found by this fuzzer) break differently.
			if p.sp.bpe && !strings.Contains(s, "<") {
				if got := p.json.Encode(s); !slices.Equal(got, ids) {
					t.Fatalf("%s %q: tokenizer.json %v, tokenizer.model %v", p.sp.Name(), s, got, ids)
				}
			}
			if p.sp.fallback && !strings.Contains(s, spSpace) {
				if d := p.sp.Decode(ids); d != s {
					t.Fatalf("%s: Decode(Encode(%q)) = %q", p.sp.Name(), s, d)
				}
			}
		}
	})
}
