package data

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// tiktokenRanks loads an encoding's ranks from the embedded offline files.
func tiktokenRanks(t testing.TB, name string) map[string]int {
	t.Helper()
	ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe(name + ".tiktoken")
	if err != nil {
		t.Fatal(err)
	}
	return ranks
}

// deriveMerges converts tiktoken ranks to BPE merges the way Hugging Face's
// TikTokenConverter does: for each token in rank order, every split into two
// tokens becomes a merge (ordered by the parts' ranks). A merge list with
// all splits makes merge-rank BPE identical to tiktoken's rank-of-the-
// concatenation BPE. (Running BPE on a token's bytes until two parts remain
// — the minimal inverse — gets stuck on r50k's rank-5815 token "ÃÂÃÂ", whose
// bytes BPE into a different split.) Tokens are returned in rank order.
func deriveMerges(t testing.TB, ranks map[string]int) (tokens []string, merges [][2]string) {
	t.Helper()
	tokens = make([]string, 0, len(ranks))
	for tok := range ranks {
		tokens = append(tokens, tok)
	}
	sort.Slice(tokens, func(i, j int) bool { return ranks[tokens[i]] < ranks[tokens[j]] })
	for _, tok := range tokens {
		var local [][2]string
		for i := 1; i < len(tok); i++ {
			l, r := tok[:i], tok[i:]
			if _, ok := ranks[l]; !ok {
				continue
			}
			if _, ok := ranks[r]; ok {
				local = append(local, [2]string{l, r})
			}
		}
		if len(tok) > 1 && len(local) == 0 {
			t.Fatalf("token %q (rank %d) has no split into two tokens", tok, ranks[tok])
		}
		sort.Slice(local, func(i, j int) bool {
			a, b := local[i], local[j]
			if ranks[a[0]] != ranks[b[0]] {
				return ranks[a[0]] < ranks[b[0]]
			}
			return ranks[a[1]] < ranks[b[1]]
		})
		merges = append(merges, local...)
	}
	return tokens, merges
}

type oracleSpec struct {
	encoding string
	specials map[string]int
}

// writeTiktokenCheckpoint writes a tokenizer for a tiktoken encoding into a
// new directory: "vocab" (vocab.json + merges.txt, GPT-2 pattern), or
// "json-strings"/"json-pairs" (tokenizer.json with the given pre_tokenizer
// and merges in either form).
func writeTiktokenCheckpoint(t testing.TB, spec oracleSpec, layout string, preTokenizer any, ignoreMerges bool) string {
	t.Helper()
	ranks := tiktokenRanks(t, spec.encoding)
	tokens, merges := deriveMerges(t, ranks)
	dir := t.TempDir()
	vocab := make(map[string]int, len(ranks)+len(spec.specials))
	for _, tok := range tokens {
		vocab[byteLevel.encode([]byte(tok))] = ranks[tok]
	}
	bl := make([][2]string, len(merges))
	for i, m := range merges {
		bl[i] = [2]string{byteLevel.encode([]byte(m[0])), byteLevel.encode([]byte(m[1]))}
	}
	write := func(name string, v any) {
		var b []byte
		switch v := v.(type) {
		case string:
			b = []byte(v)
		default:
			var err error
			if b, err = json.Marshal(v); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	switch layout {
	case "vocab":
		for s, id := range spec.specials {
			vocab[s] = id
		}
		write("vocab.json", vocab)
		var sb strings.Builder
		sb.WriteString("#version: 0.2\n")
		for _, m := range bl {
			sb.WriteString(m[0] + " " + m[1] + "\n")
		}
		write("merges.txt", sb.String())
	case "json-strings", "json-pairs":
		var added []map[string]any
		for s, id := range spec.specials {
			added = append(added, map[string]any{"id": id, "content": s, "special": true,
				"lstrip": false, "rstrip": false, "normalized": false, "single_word": false})
		}
		var mergesJSON any = bl
		if layout == "json-strings" {
			ss := make([]string, len(bl))
			for i, m := range bl {
				ss[i] = m[0] + " " + m[1]
			}
			mergesJSON = ss
		}
		write("tokenizer.json", map[string]any{
			"version":       "1.0",
			"added_tokens":  added,
			"normalizer":    nil,
			"pre_tokenizer": preTokenizer,
			"decoder":       map[string]any{"type": "ByteLevel"},
			"model": map[string]any{"type": "BPE", "vocab": vocab, "merges": mergesJSON,
				"ignore_merges": ignoreMerges, "byte_fallback": false},
		})
	default:
		t.Fatalf("unknown layout %q", layout)
	}
	return dir
}

var (
	gpt2Spec   = oracleSpec{encoding: "r50k_base", specials: map[string]int{"<|endoftext|>": 50256}}
	cl100kSpec = oracleSpec{encoding: "cl100k_base", specials: map[string]int{
		"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
		"<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}}
	gpt2Dir, gpt2DirOnce = "", sync.Once{}
)

// gpt2Tokenizer returns the r50k-derived GPT-2 tokenizer (vocab.json layout),
// built once per test binary.
func gpt2Tokenizer(t testing.TB) Tokenizer {
	t.Helper()
	gpt2DirOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ssmax-gpt2-")
		if err != nil {
			t.Fatal(err)
		}
		src := writeTiktokenCheckpoint(t, gpt2Spec, "vocab", nil, false)
		for _, f := range []string{"vocab.json", "merges.txt"} {
			b, err := os.ReadFile(filepath.Join(src, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		gpt2Dir = dir
	})
	if gpt2Dir == "" {
		t.Fatal("GPT-2 tokenizer setup failed earlier")
	}
	tok, err := LoadTokenizer(gpt2Dir, "auto", 50256, 50256)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestMain(m *testing.M) {
	code := m.Run()
	if gpt2Dir != "" {
		os.RemoveAll(gpt2Dir)
	}
	os.Exit(code)
}

// edgeCases are hand-picked strings for tokenizer tests.
var edgeCases = []string{
	"", " ", "  ", "\n", "\n\n\n", " \n", "\t\t x", "a  b   c", "trailing   ", "   leading",
	"it's they're we've I'm you'll he'd IT'S", "'s 's' ''s '", "don't 'S 'LL 'Re",
	"12345 3.14159 1,000,000 0x1F 42nd", "١٢٣ ٤٥", "Ⅻ ½",
	"emoji 😀🎉👍🏽 family 👨‍👩‍👧", "日本語のテキスト", "Ελληνικά και русский текст", "עברית ועربية",
	"mixed: café naïve résumé Ωmega", "tab\tseparated\tvalues\n", "crlf\r\nline\r\n",
	"<|endoftext|>", "a<|endoftext|>b", "<|endoftext|><|endoftext|>", "<|endoftext", "x\u00a0y\u2003z",
	"    indented code\n\tfunc f() {}\n", strings.Repeat("=", 200), strings.Repeat("ab", 300),
	strings.Repeat(" ", 100) + "x", "\u3000全角スペース", "zero\u200bwidth", "\x1c\x1d\x1e\x1f",
}

// goSourceSamples draws deterministic multi-line chunks from GOROOT/src:
// half from files containing non-ASCII UTF-8 (testdata in several
// languages, comments), half from other files.
func goSourceSamples(t testing.TB, n int) []string {
	t.Helper()
	root := filepath.Join(runtime.GOROOT(), "src")
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(p) {
		case ".go", ".txt", ".html", ".golden", ".input", ".s", ".md", ".json", ".xml", "":
			files = append(files, p)
		}
		return nil
	})
	if err != nil || len(files) == 0 {
		t.Skipf("GOROOT/src not readable: %v", err)
	}
	var nonASCII, ascii []string
	rng := newSplitMix(7)
	for tries := 0; tries < 6000 && (len(nonASCII) < n/2 || len(ascii) < n); tries++ {
		p := files[rng.intn(len(files))]
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 || len(b) > 4<<20 || !utf8.Valid(b) || strings.ContainsRune(string(b), 0) {
			continue
		}
		lines := strings.SplitAfter(string(b), "\n")
		var special []int // lines with non-ASCII text
		for i, l := range lines {
			if !isASCII(l) {
				special = append(special, i)
			}
		}
		chunk := func(start int) string {
			start = max(0, start-rng.intn(2))
			return strings.Join(lines[start:min(len(lines), start+1+rng.intn(5))], "")
		}
		if len(special) > 0 && len(nonASCII) < n/2 {
			for k := 0; k < 8; k++ {
				nonASCII = append(nonASCII, chunk(special[rng.intn(len(special))]))
			}
		} else if len(ascii) < n {
			for k := 0; k < 2; k++ {
				if c := chunk(rng.intn(len(lines))); c != "" && isASCII(c) {
					ascii = append(ascii, c)
				}
			}
		}
	}
	t.Logf("samples: %d non-ASCII, %d ASCII chunks, %d edge cases", min(len(nonASCII), n/2), n-min(len(nonASCII), n/2), len(edgeCases))
	out := append([]string(nil), edgeCases...)
	out = append(out, nonASCII[:min(len(nonASCII), n/2)]...)
	return append(out, ascii[:n-min(len(nonASCII), n/2)]...)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func runOracle(t *testing.T, tok Tokenizer, enc *tiktoken.Tiktoken, samples []string) {
	t.Helper()
	mismatches := 0
	for _, s := range samples {
		got := tok.Encode(s)
		want := enc.Encode(s, []string{"all"}, nil)
		if !equalInts(got, want) {
			mismatches++
			if mismatches <= 5 {
				t.Errorf("Encode(%q):\n got %v\nwant %v", s, got, want)
			}
		}
		if dec := tok.Decode(got); dec != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, dec)
		}
	}
	t.Logf("%d strings, %d mismatches", len(samples), mismatches)
	if mismatches > 0 {
		t.Errorf("%d of %d strings differ from tiktoken", mismatches, len(samples))
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func tiktokenEncoding(t testing.TB, name string) *tiktoken.Tiktoken {
	t.Helper()
	tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader())
	enc, err := tiktoken.GetEncoding(name)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// TestGPT2MatchesTiktoken checks the vocab.json+merges.txt GPT-2 tokenizer
// (and both tokenizer.json merge forms) against tiktoken's r50k_base.
func TestGPT2MatchesTiktoken(t *testing.T) {
	enc := tiktokenEncoding(t, "r50k_base")
	n := 3000
	if testing.Short() {
		n = 300
	}
	samples := goSourceSamples(t, n)
	t.Run("vocab.json", func(t *testing.T) { runOracle(t, gpt2Tokenizer(t), enc, samples) })
	pre := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
	for _, layout := range []string{"json-strings", "json-pairs"} {
		t.Run(layout, func(t *testing.T) {
			dir := writeTiktokenCheckpoint(t, gpt2Spec, layout, pre, false)
			tok, err := LoadTokenizer(dir, "auto", -1, -1)
			if err != nil {
				t.Fatal(err)
			}
			runOracle(t, tok, enc, samples[:min(len(samples), 500)])
		})
	}
}

// TestLlama3StyleMatchesTiktoken checks a Llama-3 style tokenizer.json
// (Split regex + ByteLevel without regex, ignore_merges) built from
// cl100k_base against tiktoken's cl100k_base, which uses the same regex.
func TestLlama3StyleMatchesTiktoken(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 100k-token vocabulary; skipped in -short mode")
	}
	enc := tiktokenEncoding(t, "cl100k_base")
	pre := map[string]any{"type": "Sequence", "pretokenizers": []any{
		map[string]any{"type": "Split", "pattern": map[string]any{"Regex": llama3Pattern}, "behavior": "Isolated", "invert": false},
		map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
	}}
	dir := writeTiktokenCheckpoint(t, cl100kSpec, "json-pairs", pre, true)
	tok, err := LoadTokenizer("", filepath.Join(dir, "tokenizer.json"), 100257, -1)
	if err != nil {
		t.Fatal(err)
	}
	if bt, ok := tok.(*bpeTokenizer); !ok || !bt.fastSplit {
		t.Fatalf("expected the hand-written Llama-3 splitter, got %T", tok)
	}
	runOracle(t, tok, enc, goSourceSamples(t, 1500))
}
