package data

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Source is a resolved corpus input: files sorted by path, either all text
// (one document per file) or all token files (extension .bin).
type Source struct {
	Input  string   // the path given
	Files  []string // sorted by path
	Sizes  []int64  // byte size of each file
	Tokens bool     // the files are token files
}

// OpenSource resolves input: a file, or a directory tree whose files are
// selected by glob on their base name (filepath.Match syntax; "" means "*").
// Directories whose name starts with "." are skipped. A file is a token file
// when its extension is .bin; text and token files cannot be mixed.
func OpenSource(input, glob string) (*Source, error) {
	if glob == "" {
		glob = "*"
	}
	if _, err := filepath.Match(glob, ""); err != nil {
		return nil, fmt.Errorf("glob %q: %w", glob, err)
	}
	fi, err := os.Stat(input)
	if err != nil {
		return nil, err
	}
	src := &Source{Input: input}
	if !fi.IsDir() {
		src.Files, src.Sizes = []string{input}, []int64{fi.Size()}
	} else {
		err = filepath.WalkDir(input, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if p != input && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if ok, _ := filepath.Match(glob, d.Name()); !ok || !d.Type().IsRegular() {
				return nil
			}
			src.Files = append(src.Files, p)
			return nil
		})
		if err != nil {
			return nil, err
		}
		sort.Strings(src.Files)
		for _, p := range src.Files {
			fi, err := os.Stat(p)
			if err != nil {
				return nil, err
			}
			src.Sizes = append(src.Sizes, fi.Size())
		}
	}
	if len(src.Files) == 0 {
		return nil, fmt.Errorf("%s: no files match %q", input, glob)
	}
	nBin := 0
	for _, p := range src.Files {
		if filepath.Ext(p) == ".bin" {
			nBin++
		}
	}
	switch nBin {
	case 0:
	case len(src.Files):
		src.Tokens = true
	default:
		return nil, fmt.Errorf("%s: %d token files (.bin) mixed with %d text files; use a glob to pick one kind", input, nBin, len(src.Files)-nBin)
	}
	return src, nil
}

// Span is the token range [Start, End) of a document or document piece.
type Span struct{ Start, End int }

// Len returns End - Start.
func (s Span) Len() int { return s.End - s.Start }

// filePart maps a range of a dataset's tokens to the file they came from.
type filePart struct {
	path  string
	start int
}

// Dataset is a corpus of tokens and its documents, in file order.
type Dataset struct {
	// Tokens holds every token of the corpus.
	Tokens TokenSource
	// Docs are the document spans, in order, covering Tokens.
	Docs    []Span
	parts   []filePart // sorted by start
	closers []*TokenFile
}

// DatasetOptions configures LoadDataset.
type DatasetOptions struct {
	Input string // a file or directory (see OpenSource)
	Glob  string // base-name glob for directories
	// Tokenizer encodes text corpora; for token files it only supplies the
	// EOS id that delimits documents (nil: each file is one document).
	Tokenizer Tokenizer
	Format    TokenFormat           // layout of .bin files
	Progress  func(done, total int) // bytes of text tokenized; may be nil
}

// LoadDataset opens token files (memory-mapped) or tokenizes text in memory,
// and returns a non-empty dataset. The caller must Close it.
func LoadDataset(ctx context.Context, opts DatasetOptions) (*Dataset, error) {
	src, err := OpenSource(opts.Input, opts.Glob)
	if err != nil {
		return nil, err
	}
	if !src.Tokens {
		if opts.Tokenizer == nil {
			return nil, fmt.Errorf("%s: text corpus needs a tokenizer", opts.Input)
		}
		return TokenizeCorpus(ctx, src, opts.Tokenizer, opts.Progress)
	}
	eos := -1
	if opts.Tokenizer != nil {
		eos = opts.Tokenizer.EOS()
	}
	return OpenTokenDataset(src.Files, opts.Format, eos)
}

// OpenTokenDataset memory-maps token files as one dataset, in the given
// order. Documents end after each eos token (eos < 0: none) and at the end
// of each file.
func OpenTokenDataset(paths []string, format TokenFormat, eos int) (*Dataset, error) {
	d := &Dataset{}
	var srcs []TokenSource
	total := 0
	for _, p := range paths {
		f, err := OpenTokenFile(p, format)
		if err != nil {
			d.Close()
			return nil, err
		}
		d.closers = append(d.closers, f)
		if f.Len() == 0 {
			continue
		}
		d.parts = append(d.parts, filePart{path: p, start: total})
		srcs = append(srcs, f)
		d.Docs = appendEOSDocs(d.Docs, f, eos, total)
		total += f.Len()
	}
	if total == 0 {
		d.Close()
		return nil, fmt.Errorf("%s: %w", strings.Join(paths, ", "), ErrEmptyCorpus)
	}
	if len(srcs) == 1 {
		d.Tokens = srcs[0]
	} else {
		d.Tokens = newConcatSource(srcs)
	}
	return d, nil
}

// appendEOSDocs appends the documents of f (ended by eos or the file end),
// shifted by base.
func appendEOSDocs(docs []Span, f *TokenFile, eos, base int) []Span {
	start := 0
	if eos >= 0 {
		n := f.Len()
		if f.width == 2 {
			if eos < 1<<16 {
				e := []byte{byte(eos), byte(eos >> 8)}
				for i := 0; i < n; i++ {
					if f.toks[2*i] == e[0] && f.toks[2*i+1] == e[1] {
						docs = append(docs, Span{base + start, base + i + 1})
						start = i + 1
					}
				}
			}
		} else {
			for i := 0; i < n; i++ {
				if f.At(i) == eos {
					docs = append(docs, Span{base + start, base + i + 1})
					start = i + 1
				}
			}
		}
	}
	if start < f.Len() {
		docs = append(docs, Span{base + start, base + f.Len()})
	}
	return docs
}

// concatSource concatenates token sources.
type concatSource struct {
	srcs  []TokenSource
	start []int // start offset of each source; len(srcs)+1 entries
}

func newConcatSource(srcs []TokenSource) *concatSource {
	c := &concatSource{srcs: srcs, start: make([]int, len(srcs)+1)}
	for i, s := range srcs {
		c.start[i+1] = c.start[i] + s.Len()
	}
	return c
}

func (c *concatSource) Len() int { return c.start[len(c.srcs)] }

func (c *concatSource) Read(dst []int, off int) {
	i := sort.SearchInts(c.start, off+1) - 1
	for len(dst) > 0 {
		n := min(len(dst), c.start[i+1]-off)
		c.srcs[i].Read(dst[:n], off-c.start[i])
		dst, off = dst[n:], off+n
		i++
	}
}

// NumTokens returns the number of tokens.
func (d *Dataset) NumTokens() int { return d.Tokens.Len() }

// Stream returns all documents of the dataset as one stream.
func (d *Dataset) Stream() *Stream {
	s, _ := NewStream(d.Tokens, d.Docs)
	return s
}

// fileAt returns the file holding token pos and pos's index within it.
func (d *Dataset) fileAt(pos int) (string, int) {
	i := sort.Search(len(d.parts), func(i int) bool { return d.parts[i].start > pos }) - 1
	if i < 0 {
		return "", pos
	}
	return d.parts[i].path, pos - d.parts[i].start
}

// Validate checks that every token id is in [0, vocabSize); the error names
// the file and the first offending id and its position in that file.
func (d *Dataset) Validate(vocabSize int) error {
	buf := make([]int, 1<<16)
	n := d.Tokens.Len()
	for off := 0; off < n; off += len(buf) {
		chunk := buf[:min(len(buf), n-off)]
		d.Tokens.Read(chunk, off)
		for i, t := range chunk {
			if t < 0 || t >= vocabSize {
				path, pos := d.fileAt(off + i)
				return fmt.Errorf("%s: token id %d at position %d is outside the model's vocab size %d", path, t, pos, vocabSize)
			}
		}
	}
	return nil
}

// Close unmaps the dataset's token files.
func (d *Dataset) Close() error {
	var errs []error
	for _, f := range d.closers {
		errs = append(errs, f.Close())
	}
	d.closers = nil
	return errors.Join(errs...)
}
