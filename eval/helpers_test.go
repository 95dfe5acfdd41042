package eval

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/model"
)

const fixtures = "../testdata/fixtures"

// openFixture loads a fixture checkpoint.
func openFixture(t *testing.T, name string) *model.Model {
	t.Helper()
	m, err := model.Open(filepath.Join(fixtures, name), "", model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var words = strings.Fields("the a model attention scale keys query long context softmax fades over many tokens and grows with n while heads look back at earlier lines of text")

// prose returns deterministic lines of words, about size bytes.
func prose(seed uint64, size int) string {
	rng := rand.New(rand.NewPCG(seed, 1))
	var b strings.Builder
	for b.Len() < size {
		n := 3 + rng.IntN(8)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[rng.IntN(len(words))])
		}
		b.WriteString(".\n")
	}
	return b.String()
}

// writeDocs writes one text file per document into a new directory.
func writeDocs(t *testing.T, sizes []int) string {
	t.Helper()
	dir := t.TempDir()
	for i, n := range sizes {
		text := prose(uint64(i), n)[:n]
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("doc%02d.txt", i)), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// byteStream tokenizes dir with the byte tokenizer of m (its EOS).
func byteStream(t *testing.T, m *model.Model, dir string) (*data.Stream, data.Tokenizer) {
	t.Helper()
	tok := data.NewByteTokenizer(m.Spec.EOS)
	d, err := data.LoadDataset(context.Background(), data.DatasetOptions{Input: dir, Tokenizer: tok})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d.Stream(), tok
}
