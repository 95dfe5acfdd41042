package data

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree creates files (path → content) under a new directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestOpenSource(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"b.go": "b", "a/z.go": "z", "a/y.txt": "y", "c.go": "c", ".git/x.go": "hidden", "a.bin": "\x01\x00",
	})
	src, err := OpenSource(dir, "*.go")
	if err != nil {
		t.Fatal(err)
	}
	var rel []string
	for _, f := range src.Files {
		r, _ := filepath.Rel(dir, f)
		rel = append(rel, r)
	}
	if strings.Join(rel, ",") != "a/z.go,b.go,c.go" || src.Tokens {
		t.Errorf("files %v tokens %v", rel, src.Tokens)
	}
	if src, err := OpenSource(dir, "*.bin"); err != nil || !src.Tokens {
		t.Errorf("*.bin: %v %v", src, err)
	}
	for _, tc := range []struct{ input, glob, want string }{
		{dir, "*.rs", "no files match"},
		{dir, "", "mixed with"},
		{dir, "[", "glob"},
		{filepath.Join(dir, "nope"), "", "nope"},
	} {
		if _, err := OpenSource(tc.input, tc.glob); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenSource(%q, %q) = %v, want %q", tc.input, tc.glob, err, tc.want)
		}
	}
}

func TestTokenizeCorpusBytes(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"1.txt": "ab", "2.txt": "", "3.txt": "\x00binary", "4.txt": "cde",
	})
	src, err := OpenSource(dir, "*.txt")
	if err != nil {
		t.Fatal(err)
	}
	var calls, lastDone, lastTotal int
	d, err := TokenizeCorpus(context.Background(), src, NewByteTokenizer(256), func(done, total int) {
		calls++
		lastDone, lastTotal = done, total
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	want := []int{'a', 'b', 256, 'c', 'd', 'e', 256}
	if got := readAll(d.Tokens); !equalInts(got, want) {
		t.Errorf("tokens %v, want %v", got, want)
	}
	if len(d.Docs) != 2 || d.Docs[0] != (Span{0, 3}) || d.Docs[1] != (Span{3, 7}) {
		t.Errorf("docs %v", d.Docs)
	}
	if calls != 4 || lastDone != 12 || lastTotal != 12 {
		t.Errorf("progress: %d calls, last %d/%d; want 4 calls ending 12/12", calls, lastDone, lastTotal)
	}
	err = d.Validate(256)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "1.txt")) || !strings.Contains(err.Error(), "token id 256 at position 2") {
		t.Errorf("Validate(256) = %v", err)
	}
	if err := d.Validate(257); err != nil {
		t.Error(err)
	}
	// No EOS: documents are still delimited by the dataset's spans.
	d2, err := TokenizeCorpus(context.Background(), src, NewByteTokenizer(-1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(d2.Tokens); !equalInts(got, []int{'a', 'b', 'c', 'd', 'e'}) || len(d2.Docs) != 2 || d2.Docs[1] != (Span{2, 5}) {
		t.Errorf("no-EOS tokens %v docs %v", got, d2.Docs)
	}
}

func TestEmptyCorpus(t *testing.T) {
	dir := writeTree(t, map[string]string{"a.txt": "", "b.txt": "\x00\x01"})
	src, _ := OpenSource(dir, "")
	if _, err := TokenizeCorpus(context.Background(), src, NewByteTokenizer(256), nil); !errors.Is(err, ErrEmptyCorpus) {
		t.Errorf("TokenizeCorpus: %v, want empty corpus", err)
	}
	out := filepath.Join(t.TempDir(), "o.bin")
	if _, err := Tokenize(context.Background(), TokenizeOptions{Input: dir, Tokenizer: NewByteTokenizer(256), Output: out}); !errors.Is(err, ErrEmptyCorpus) {
		t.Errorf("Tokenize: %v, want empty corpus", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("empty corpus left %s", out)
	}
	empty := filepath.Join(t.TempDir(), "e.bin")
	if err := WriteTokenFile(empty, nil, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenTokenDataset([]string{empty}, FormatAuto, 0); !errors.Is(err, ErrEmptyCorpus) || !strings.Contains(err.Error(), empty) {
		t.Errorf("OpenTokenDataset: %v", err)
	}
}

// TestTokenizeThenLoad tokenizes a tree to a file with the GPT-2 tokenizer
// and checks that loading the file gives the in-memory result, with
// documents recovered from EOS, and that Encode agrees per document.
func TestTokenizeThenLoad(t *testing.T) {
	tok := gpt2Tokenizer(t)
	files := map[string]string{"x/a.go": "package a\n\nfunc A() int { return 42 }\n", "b.go": "// Привет, мир\npackage b\n", "c.md": "# not Go"}
	dir := writeTree(t, files)
	out := filepath.Join(t.TempDir(), "tok.bin")
	st, err := Tokenize(context.Background(), TokenizeOptions{Input: dir, Glob: "*.go", Tokenizer: tok, Output: out})
	if err != nil {
		t.Fatal(err)
	}
	mem, err := LoadDataset(context.Background(), DatasetOptions{Input: dir, Glob: "*.go", Tokenizer: tok})
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(tok.Encode(files["b.go"]), 50256), append(tok.Encode(files["x/a.go"]), 50256)...)
	if got := readAll(mem.Tokens); !equalInts(got, want) {
		t.Errorf("in-memory tokens %v, want %v", got, want)
	}
	if st.Files != 2 || st.Documents != 2 || st.Tokens != int64(len(want)) || st.Output != out || st.Bytes != int64(len(files["b.go"])+len(files["x/a.go"])) {
		t.Errorf("stats %+v", st)
	}
	fromFile, err := LoadDataset(context.Background(), DatasetOptions{Input: out, Tokenizer: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer fromFile.Close()
	if got := readAll(fromFile.Tokens); !equalInts(got, want) {
		t.Errorf("file tokens differ")
	}
	if len(fromFile.Docs) != 2 || fromFile.Docs[0] != mem.Docs[0] || fromFile.Docs[1] != mem.Docs[1] {
		t.Errorf("docs from EOS %v, want %v", fromFile.Docs, mem.Docs)
	}
	if err := fromFile.Validate(50257); err != nil {
		t.Error(err)
	}
	if err := fromFile.Validate(50000); err == nil || !strings.Contains(err.Error(), out) || !strings.Contains(err.Error(), "token id 50256 at position") {
		t.Errorf("Validate(50000) = %v", err)
	}
}

func TestOpenTokenDatasetMultiFile(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.bin"), filepath.Join(dir, "b.bin")
	if err := WriteTokenFile(a, []int{5, 6, 0, 7}, 100); err != nil { // 0 is EOS
		t.Fatal(err)
	}
	if err := WriteTokenFile(b, []int{0, 8, 9, 0}, 100); err != nil {
		t.Fatal(err)
	}
	d, err := LoadDataset(context.Background(), DatasetOptions{Input: dir, Glob: "*.bin", Tokenizer: NewByteTokenizer(0)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := readAll(d.Tokens); !equalInts(got, []int{5, 6, 0, 7, 0, 8, 9, 0}) {
		t.Errorf("tokens %v", got)
	}
	wantDocs := []Span{{0, 3}, {3, 4}, {4, 5}, {5, 8}} // a file end ends a document
	if len(d.Docs) != len(wantDocs) {
		t.Fatalf("docs %v, want %v", d.Docs, wantDocs)
	}
	for i := range wantDocs {
		if d.Docs[i] != wantDocs[i] {
			t.Errorf("docs %v, want %v", d.Docs, wantDocs)
		}
	}
	mid := make([]int, 4)
	d.Tokens.Read(mid, 2)
	if !equalInts(mid, []int{0, 7, 0, 8}) {
		t.Errorf("read across files: %v", mid)
	}
	if err := d.Validate(9); err == nil || !strings.Contains(err.Error(), b) || !strings.Contains(err.Error(), "token id 9 at position 2") {
		t.Errorf("Validate names the second file: %v", err)
	}
	noEOS, err := OpenTokenDataset([]string{a, b}, FormatAuto, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer noEOS.Close()
	if len(noEOS.Docs) != 2 || noEOS.Docs[1] != (Span{4, 8}) {
		t.Errorf("no EOS: docs %v, want one per file", noEOS.Docs)
	}
}

// TestChunkedTokenization checks that a large file cut into pieces for
// parallel encoding tokenizes exactly as one Encode call.
func TestChunkedTokenization(t *testing.T) {
	if testing.Short() {
		t.Skip("tokenizes a few MB")
	}
	tok := gpt2Tokenizer(t)
	var b strings.Builder
	for _, s := range goSourceSamples(t, 1000) {
		b.WriteString(s)
		b.WriteString("\n")
	}
	text := b.String()
	for b.Len() < 3*chunkSize {
		b.WriteString(text)
	}
	text = b.String()
	dir := writeTree(t, map[string]string{"big.txt": text})
	d, err := LoadDataset(context.Background(), DatasetOptions{Input: filepath.Join(dir, "big.txt"), Tokenizer: tok})
	if err != nil {
		t.Fatal(err)
	}
	want := append(tok.Encode(text), 50256)
	if got := readAll(d.Tokens); !equalInts(got, want) {
		t.Fatalf("chunked tokenization differs (%d vs %d tokens)", len(got), len(want))
	}
	if len(d.Docs) != 1 {
		t.Errorf("docs %v, want one", d.Docs)
	}
	if c := safeCut(text, chunkSize); c == len(text) {
		t.Error("no safe cut found in Go text")
	}
}

func TestTokenizeCancel(t *testing.T) {
	dir := writeTree(t, map[string]string{"a.txt": "x", "b.txt": "y"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	src, _ := OpenSource(dir, "")
	if _, err := TokenizeCorpus(ctx, src, NewByteTokenizer(256), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestUint32TokenDataset(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.bin")
	const eos = 128001
	if err := WriteTokenFile(p, []int{128000, 5, eos, 70000, eos, 9}, 128256); err != nil {
		t.Fatal(err)
	}
	d, err := OpenTokenDataset([]string{p}, FormatLLMC, eos)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	want := []Span{{0, 3}, {3, 5}, {5, 6}}
	if len(d.Docs) != 3 || d.Docs[0] != want[0] || d.Docs[1] != want[1] || d.Docs[2] != want[2] {
		t.Errorf("docs %v, want %v", d.Docs, want)
	}
	if err := d.Validate(128256); err != nil {
		t.Error(err)
	}
}
