package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// streamAll decodes ids one at a time.
func streamAll(tok Tokenizer, ids []int) string {
	d := NewStreamDecoder(tok)
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(d.Next(id))
	}
	b.WriteString(d.Flush())
	return b.String()
}

// TestStreamDecoder checks that streaming gives Decode of the whole
// sequence for SentencePiece (.model and tokenizer.json, where leading
// "▁" and byte_fallback pieces depend on context) and byte-level BPE.
func TestStreamDecoder(t *testing.T) {
	g := readSPGoldens(t)
	var toks []Tokenizer
	for _, m := range g.Models {
		sp, err := loadSentencePiece(filepath.Join("testdata", "sp", m.Model))
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, sp)
		if m.LegacyJSON != "" {
			j, err := LoadTokenizer(spJSONDir(t, m.LegacyJSON, nil), "auto", -1, -1)
			if err != nil {
				t.Fatal(err)
			}
			toks = append(toks, j)
		}
	}
	toks = append(toks, gpt2Tokenizer(t))
	texts := []string{"Hello world", "  two  spaces ", "emoji 😀🎉👍🏽 mixed", "한국어 텍스트\n", "café\tnaïve", "日本語", ""}
	for _, tok := range toks {
		for _, text := range texts {
			ids := tok.EncodeSpecial(text)
			if got, want := streamAll(tok, ids), tok.Decode(ids); got != want {
				t.Errorf("%s %q: stream %q, Decode %q", tok.Name(), text, got, want)
			}
		}
	}
	// Bytes of a character split over tokens are held back until complete.
	sp, _ := loadSentencePiece(filepath.Join("testdata", "sp", "bpe-identity-bytes.model"))
	d := NewStreamDecoder(sp)
	var outs []string
	for _, id := range sp.Encode("a 한") {
		outs = append(outs, d.Next(id))
	}
	if last := outs[len(outs)-1]; !strings.HasSuffix(last, "한") || outs[len(outs)-2] != "" {
		t.Errorf("chunks %q: want the character whole in the last one", outs)
	}
}

// TestLoadModelTokenizer checks config.json handling: ssmax_tokenizer,
// eos_token_id as a list, and the tokenizer.model fallback.
func TestLoadModelTokenizer(t *testing.T) {
	dir := t.TempDir()
	writeJSONFiles(t, dir, map[string]any{"config.json": map[string]any{TokenizerKey: "bytes", "eos_token_id": []int{256, 7}}})
	tok, err := LoadModelTokenizer(dir, "auto")
	if err != nil || tok.Name() != "bytes" || tok.EOS() != 256 {
		t.Fatalf("bytes model: %v %v", tok, err)
	}
	dir = t.TempDir()
	raw, err := os.ReadFile(filepath.Join("testdata", "sp", "unigram-identity-bytes.model"))
	if err != nil {
		t.Fatal(err)
	}
	writeJSONFiles(t, dir, map[string]any{"config.json": map[string]any{"eos_token_id": 2, "bos_token_id": 1},
		"tokenizer.model": string(raw), "tokenizer_config.json": map[string]any{"add_eos_token": true}})
	tok, err = LoadModelTokenizer(dir, "auto")
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.EncodeSpecial("hi")
	if tok.Name() != "sentencepiece-unigram" || ids[0] != 1 || ids[len(ids)-1] != 2 || tok.BOS() != 1 || tok.EOS() != 2 {
		t.Errorf("tokenizer.model: %s %v BOS %d EOS %d", tok.Name(), ids, tok.BOS(), tok.EOS())
	}
	if _, err := LoadModelTokenizer(dir, filepath.Join(dir, "tokenizer.model")); err != nil {
		t.Errorf("path kind: %v", err)
	}
}
