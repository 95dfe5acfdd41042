package data

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// BenchmarkEncode measures single-goroutine GPT-2 encoding of Go text.
func BenchmarkEncode(b *testing.B) {
	tok := gpt2Tokenizer(b)
	text := strings.Join(goSourceSamples(b, 2000), "\n")
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for range b.N {
		tok.Encode(text)
	}
}

// BenchmarkTokenizeGoTree tokenizes every *.go file under GOROOT/src with
// the GPT-2 tokenizer into a token file, on all cores:
//
//	go test -run XXX -bench TokenizeGoTree -benchtime 1x ./data/
func BenchmarkTokenizeGoTree(b *testing.B) {
	tok := gpt2Tokenizer(b)
	out := filepath.Join(b.TempDir(), "go.bin")
	for range b.N {
		st, err := Tokenize(context.Background(), TokenizeOptions{
			Input: filepath.Join(runtime.GOROOT(), "src"), Glob: "*.go", Tokenizer: tok, Output: out})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(st.Bytes)
		b.ReportMetric(float64(st.Tokens)/st.Elapsed.Seconds(), "tokens/s")
		b.Logf("%d files, %d MB, %d tokens (%.2f bytes/token) in %v", st.Files, st.Bytes>>20, st.Tokens,
			float64(st.Bytes)/float64(st.Tokens), st.Elapsed)
	}
}
