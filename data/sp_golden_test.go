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
