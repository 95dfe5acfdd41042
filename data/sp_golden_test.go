package data

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// spGoldens is testdata/sp/goldens.json, written by
// testdata/gen_sp_goldens.py with Debian's python3-sentencepiece.
type spGoldens struct {
	Version string `json:"sentencepiece_version"`
	Models  []struct {
		Name          string `json:"name"`
		Model         string `json:"model"`
		ModelType     string `json:"model_type"`
		ByteFallback  bool   `json:"byte_fallback"`
		Normalization string `json:"normalization"`
		VocabSize     int    `json:"vocab_size"`
		BOS           int    `json:"bos"`
		EOS           int    `json:"eos"`
		Unk           int    `json:"unk"`
		LegacyJSON    string `json:"legacy_json"`
		NonLegacyJSON string `json:"nonlegacy_json"`
		Cases         []struct {
			Text        string   `json:"text"`
			IDs         []int    `json:"ids"`
			Pieces      []string `json:"pieces"`
			Decoded     string   `json:"decoded"`
			HFLegacy    []int    `json:"hf_legacy"`
			HFNonLegacy []int    `json:"hf_nonlegacy"`
		} `json:"cases"`
	} `json:"models"`
}

func readSPGoldens(t testing.TB) *spGoldens {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "sp", "goldens.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g spGoldens
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Models) == 0 {
		t.Fatal("no models in goldens.json")
	}
	return &g
}

// TestSentencePieceModelGoldens checks the tokenizer.model path against
// sentencepiece's encode and decode on every golden string.
func TestSentencePieceModelGoldens(t *testing.T) {
	g := readSPGoldens(t)
	for _, m := range g.Models {
		t.Run(m.Name, func(t *testing.T) {
			tok, err := loadSentencePiece(filepath.Join("testdata", "sp", m.Model))
			if err != nil {
				t.Fatal(err)
			}
			if tok.VocabSize() != m.VocabSize || tok.BOS() != m.BOS || tok.EOS() != m.EOS || int(tok.unk) != m.Unk {
				t.Errorf("vocab %d bos %d eos %d unk %d, want %d %d %d %d", tok.VocabSize(), tok.BOS(), tok.EOS(), tok.unk, m.VocabSize, m.BOS, m.EOS, m.Unk)
			}
			for _, c := range m.Cases {
				if got := tok.Encode(c.Text); !slices.Equal(got, c.IDs) {
					t.Errorf("Encode(%q)\n got %v %q\nwant %v %q", c.Text, got, tok.TokenStrings(got), c.IDs, c.Pieces)
				}
				if got := tok.EncodeSpecial(c.Text); !slices.Equal(got, append([]int{m.BOS}, c.IDs...)) {
					t.Errorf("EncodeSpecial(%q) = %v, want BOS + %v", c.Text, got, c.IDs)
				}
				if got := tok.Decode(c.IDs); got != c.Decoded {
					t.Errorf("Decode(%v) = %q, want %q", c.IDs, got, c.Decoded)
				}
			}
		})
	}
}

// spJSONDir copies a converted tokenizer.json into a new directory with a
// LlamaTokenizer-style tokenizer_config.json.
func spJSONDir(t *testing.T, file string, config map[string]any) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "sp", file))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if config != nil {
		writeJSONFiles(t, dir, map[string]any{"tokenizer_config.json": config})
	}
	return dir
}

// TestSentencePieceJSONGoldens checks the tokenizer.json files the
// generator built as transformers' LlamaConverter does, with legacy=true
// and legacy=false, against the ids sentencepiece gives (see the generator
// for how the expected Hugging Face ids follow from sentencepiece):
//
//   - legacy: normalizer Prepend("▁") (skipped on empty text) +
//     Replace(" ", "▁"), no pre-tokenizer: the whole text goes to the model
//     as sentencepiece's identity normalization with add_dummy_prefix
//     would give it, so ids = [bos] + sp.encode(text).
//   - non-legacy: no normalizer, Metaspace(prepend_scheme "first",
//     split false): "▁" is prepended only when the text does not already
//     start with "▁" or " " (and only to the first piece of the input), so
//     text with a leading space keeps exactly its spaces.
//
// Decoding (Replace ▁→space, ByteFallback, Fuse, Strip one leading space)
// is compared with sp.decode when no unknown id occurs (sentencepiece
// writes " ⁇ " where Hugging Face writes the "<unk>" token).
func TestSentencePieceJSONGoldens(t *testing.T) {
	g := readSPGoldens(t)
	n := 0
	for _, m := range g.Models {
		if m.LegacyJSON == "" {
			continue
		}
		for _, legacy := range []bool{true, false} {
			file := m.LegacyJSON
			if !legacy {
				file = m.NonLegacyJSON
			}
			t.Run(file, func(t *testing.T) {
				dir := spJSONDir(t, file, map[string]any{"legacy": legacy, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})
				tok, err := LoadTokenizer(dir, "auto", -1, -1)
				if err != nil {
					t.Fatal(err)
				}
				if tok.BOS() != m.BOS || tok.EOS() != m.EOS || tok.VocabSize() != m.VocabSize {
					t.Errorf("bos %d eos %d vocab %d, want %d %d %d", tok.BOS(), tok.EOS(), tok.VocabSize(), m.BOS, m.EOS, m.VocabSize)
				}
				for _, c := range m.Cases {
					want := c.HFLegacy
					if !legacy {
						want = c.HFNonLegacy
					}
					got := tok.EncodeSpecial(c.Text)
					if !slices.Equal(got, want) {
						t.Errorf("EncodeSpecial(%q)\n got %v %q\nwant %v %q", c.Text, got, tok.TokenStrings(got), want, tok.TokenStrings(want))
					}
					if !slices.Equal(tok.Encode(c.Text), want[1:]) {
						t.Errorf("Encode(%q) = %v, want %v", c.Text, tok.Encode(c.Text), want[1:])
					}
					if legacy && !slices.Contains(c.IDs, m.Unk) {
						if d := tok.Decode(c.IDs); d != c.Decoded {
							t.Errorf("Decode(%v) = %q, want %q", c.IDs, d, c.Decoded)
						}
					}
					n++
				}
			})
		}
	}
	if n == 0 {
		t.Fatal("no tokenizer.json goldens")
	}
}

// TestSentencePieceJSONSpecials checks how legacy and non-legacy differ
// around special tokens, as Hugging Face defines it (reasoned from
// tokenizers' AddedVocabulary::extract_and_normalize, Prepend and
// Metaspace): added tokens split the text first and each remaining piece is
// normalized on its own, so the legacy Prepend normalizer puts "▁" after
// every special token, while Metaspace's "first" scheme prepends only to
// the piece at offset 0 of the input.
func TestSentencePieceJSONSpecials(t *testing.T) {
	sp, err := loadSentencePiece(filepath.Join("testdata", "sp", "bpe-identity-bytes.model"))
	if err != nil {
		t.Fatal(err)
	}
	enc := func(s string) []int { return sp.Encode(s) }
	noDummy := func(s string) []int { // sp.encode with add_dummy_prefix=false
		sp.norm.addDummyPrefix = false
		defer func() { sp.norm.addDummyPrefix = true }()
		return sp.Encode(s)
	}
	cat := func(parts ...[]int) []int { return slices.Concat(parts...) }
	for _, tc := range []struct {
		legacy bool
		text   string
		want   []int
	}{
		{true, "hello</s>world", cat([]int{1}, enc("hello"), []int{2}, enc("world"))},
		{false, "hello</s>world", cat([]int{1}, enc("hello"), []int{2}, noDummy("world"))},
		{true, "<s>hi", cat([]int{1, 1}, enc("hi"))},
		{false, "<s>hi", cat([]int{1, 1}, noDummy("hi"))},
		{false, "</s> hi", cat([]int{1, 2}, noDummy(" hi"))},
	} {
		file := "bpe-identity-bytes-legacy.json"
		if !tc.legacy {
			file = "bpe-identity-bytes-nonlegacy.json"
		}
		tok, err := LoadTokenizer(spJSONDir(t, file, nil), "auto", -1, -1)
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.EncodeSpecial(tc.text); !slices.Equal(got, tc.want) {
			t.Errorf("legacy=%v %q: got %v %q, want %v %q", tc.legacy, tc.text, got, tok.TokenStrings(got), tc.want, tok.TokenStrings(tc.want))
		}
	}
	// add_bos_token / add_eos_token in tokenizer_config.json rebuild the
	// template as LlamaTokenizerFast.update_post_processor does.
	tok, err := LoadTokenizer(spJSONDir(t, "bpe-identity-bytes-legacy.json", map[string]any{
		"add_bos_token": false, "add_eos_token": true, "bos_token": "<s>", "eos_token": "</s>"}), "auto", -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tok.EncodeSpecial("hi"), cat(enc("hi"), []int{2}); !slices.Equal(got, want) || tok.BOS() != -1 {
		t.Errorf("add_bos_token false, add_eos_token true: %v (BOS %d), want %v (BOS -1)", got, tok.BOS(), want)
	}
}
