package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// Stats summarises a tokenization run.
type Stats struct {
	Files     int           // text files tokenized
	Skipped   int           // files skipped: empty, or binary (a NUL byte in the first 8000 bytes)
	Documents int           // documents produced (non-empty files)
	Bytes     int64         // bytes of text read
	Tokens    int64         // tokens produced, including BOS/EOS
	Elapsed   time.Duration // wall time
	Output    string        // the token file written (Tokenize only)
}

// TokenizeCorpus tokenizes a text source in memory, in parallel, one
// document per file: [BOS] + Encode(text) + [EOS], where BOS is added only
// when the tokenizer has one distinct from its EOS, and EOS when it has one.
// Binary files (a NUL byte in the first 8000 bytes) and empty files are
// skipped. progress, if not nil, receives bytes done and total.
func TokenizeCorpus(ctx context.Context, src *Source, tok Tokenizer, progress func(done, total int)) (*Dataset, error) {
	if src.Tokens {
		return nil, fmt.Errorf("%s: already tokenized; open it with LoadDataset or OpenTokenDataset", src.Input)
	}
	var toks []uint32
	d := &Dataset{}
	docStart := 0
	lastFile := -1
	_, err := tokenizeSource(ctx, src, tok, progress, func(file int, ids []int, last bool) error {
		if file != lastFile {
			d.parts = append(d.parts, filePart{path: src.Files[file], start: len(toks)})
			lastFile = file
		}
		for _, id := range ids {
			toks = append(toks, uint32(id))
		}
		if last {
			if len(toks) > docStart {
				d.Docs = append(d.Docs, Span{docStart, len(toks)})
			}
			docStart = len(toks)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("%s: %w", src.Input, ErrEmptyCorpus)
	}
	d.Tokens = uint32Tokens(toks)
	return d, nil
}

// TokenizeOptions configures Tokenize.
type TokenizeOptions struct {
	Input     string                // text file or directory
	Glob      string                // base-name glob for directories
	Tokenizer Tokenizer             // required
	Output    string                // llm.c token file to write
	Progress  func(done, total int) // bytes of text tokenized; may be nil
}

// Tokenize tokenizes a text corpus (as TokenizeCorpus does) and streams the
// tokens into an llm.c token file, replaced atomically. An empty corpus is
// an error and leaves no file.
func Tokenize(ctx context.Context, opts TokenizeOptions) (Stats, error) {
	if opts.Tokenizer == nil {
		return Stats{}, errors.New("tokenize: no tokenizer")
	}
	src, err := OpenSource(opts.Input, opts.Glob)
	if err != nil {
		return Stats{}, err
	}
	if src.Tokens {
		return Stats{}, fmt.Errorf("%s: already tokenized (.bin)", opts.Input)
	}
	w, err := CreateTokenFile(opts.Output, opts.Tokenizer.VocabSize())
	if err != nil {
		return Stats{}, err
	}
	st, err := tokenizeSource(ctx, src, opts.Tokenizer, opts.Progress, func(_ int, ids []int, _ bool) error {
		return w.Write(ids)
	})
	if err == nil && st.Tokens == 0 {
		err = fmt.Errorf("%s: %w", opts.Input, ErrEmptyCorpus)
	}
	if err != nil {
		w.Abort()
		return st, err
	}
	st.Output = opts.Output
	return st, w.Close()
}

// chunkSize is the target size of the pieces a large text file is cut into
// for parallel tokenization, when the tokenizer allows it (see safeCut).
const chunkSize = 1 << 20

// chunker is implemented by tokenizers whose encoding of text is the
// concatenation of the encodings of pieces cut by safeCut.
type chunker interface{ chunkable() bool }

// safeCut returns the first cut position ≥ from in text, or len(text): a
// position p where text[p-1] is '\n' and text[p-2] and text[p] are
// non-whitespace ASCII. Regex pre-tokenizers without lookbehind (GPT-2,
// Llama-3, Qwen2) always end a pre-token at such a p.
func safeCut(text string, from int) int {
	for p := max(from, 2); p < len(text); {
		i := strings.IndexByte(text[p-1:], '\n')
		if i < 0 {
			break
		}
		p += i
		if p >= len(text) {
			break
		}
		a, c := text[p-2], text[p]
		if a < 0x80 && c < 0x80 && asciiClass[a] != classSpace && asciiClass[c] != classSpace {
			return p
		}
		p++
	}
	return len(text)
}

type tokJob struct {
	file        int
	text        string
	first, last bool
	size        int // bytes accounted for progress
	err         error
	res         chan []int
}

// tokenizeSource tokenizes src's files in parallel and calls sink in order
// with each piece of each document; last marks a document's final piece.
func tokenizeSource(ctx context.Context, src *Source, tok Tokenizer, progress func(done, total int), sink func(file int, ids []int, last bool) error) (Stats, error) {
	start := time.Now()
	var st Stats
	var total int64
	for _, s := range src.Sizes {
		total += s
	}
	workers := runtime.GOMAXPROCS(0)
	done := make(chan struct{})
	defer close(done)
	order := make(chan *tokJob, 2*workers)
	work := make(chan *tokJob)
	canChunk := false
	if c, ok := tok.(chunker); ok {
		canChunk = c.chunkable()
	}
	bos, eos := tok.BOS(), tok.EOS()
	if bos == eos {
		bos = -1
	}
	for range workers {
		go func() {
			for {
				select {
				case j, ok := <-work:
					if !ok {
						return
					}
					ids := tok.Encode(j.text)
					if j.first && bos >= 0 {
						ids = append([]int{bos}, ids...)
					}
					if j.last && eos >= 0 {
						ids = append(ids, eos)
					}
					j.res <- ids
				case <-done:
					return
				}
			}
		}()
	}
	send := func(j *tokJob) bool {
		select {
		case order <- j:
		case <-done:
			return false
		}
		if j.err != nil || j.res == nil {
			return true
		}
		select {
		case work <- j:
			return true
		case <-done:
			return false
		}
	}
	go func() {
		defer close(order)
		defer close(work)
		for i, p := range src.Files {
			if ctx.Err() != nil {
				return
			}
			b, err := os.ReadFile(p)
			if err != nil {
				send(&tokJob{err: err})
				return
			}
			if len(b) == 0 || bytes.IndexByte(b[:min(len(b), 8000)], 0) >= 0 {
				if !send(&tokJob{file: i, size: len(b)}) { // skipped: no res
					return
				}
				continue
			}
			text := string(b)
			for pos := 0; pos < len(text); {
				end := len(text)
				if canChunk && len(text)-pos > 2*chunkSize {
					end = safeCut(text, pos+chunkSize)
				}
				j := &tokJob{file: i, text: text[pos:end], first: pos == 0, last: end == len(text), size: end - pos, res: make(chan []int, 1)}
				if !send(j) {
					return
				}
				pos = end
			}
		}
	}()
	var doneBytes int64
	lastFile := -1
	for j := range order {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if j.err != nil {
			return st, j.err
		}
		doneBytes += int64(j.size)
		if j.res == nil {
			st.Skipped++
		} else {
			if j.file != lastFile {
				st.Files++
				lastFile = j.file
			}
			ids := <-j.res
			st.Bytes += int64(j.size)
			st.Tokens += int64(len(ids))
			if j.last {
				st.Documents++
			}
			if err := sink(j.file, ids, j.last); err != nil {
				return st, err
			}
		}
		if progress != nil {
			progress(int(doneBytes), int(total))
		}
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	st.Elapsed = time.Since(start)
	return st, nil
}
