package eval

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/retrieval"
)

// stubSession is a byte-level "model" whose next-token guess is a
// function of the text so far; its logits are one-hot (30 on the guess).
type stubSession struct {
	text  []byte
	guess func(text []byte) byte
	calls int
}

func (s *stubSession) Feed(ids []int) ([]float32, error) {
	s.calls++
	out := make([]float32, len(ids)*257)
	for i, id := range ids {
		s.text = append(s.text, byte(id))
		out[i*257+int(s.guess(s.text))] = 30
	}
	return out, nil
}

// copyValue is what a model that retrieves predicts: inside a query's
// value, the next digit of the value recorded for its key; elsewhere 'x'.
// shift adds to each digit predicted (0: the right value).
func copyValue(shift byte) func([]byte) byte {
	return func(text []byte) byte {
		ln := bytes.LastIndexByte(text, '\n')
		cur := text[ln+1:]
		if len(cur) < 4 || cur[0] != '?' {
			return 'x'
		}
		key, typed := cur[1:4], cur[4:]
		rec := []byte("\n" + string(key))
		i := bytes.Index(append([]byte("\n"), text...), rec)
		if i < 0 {
			return 'x'
		}
		val := text[i+len(rec)-1:]
		if len(typed) >= 4 {
			return '\n'
		}
		return '0' + (val[len(typed)]-'0'+shift)%10
	}
}

func TestKeyRetrievalScores(t *testing.T) {
	tok := data.NewByteTokenizer(256)
	opts := KeyRetrievalOptions{Lengths: []int{128, 512, 2048}, Depths: []float64{0, 0.5, 1}, Trials: 3, Seed: 1}
	run := func(guess func([]byte) byte) *RetrievalResult {
		t.Helper()
		var sessions []*stubSession
		res, err := KeyRetrieval(context.Background(), func() Session {
			s := &stubSession{guess: guess}
			sessions = append(sessions, s)
			return s
		}, 257, tok, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(sessions) != 9 {
			t.Fatalf("%d sessions for 9 prompts", len(sessions))
		}
		for _, s := range sessions {
			if s.calls > 2*len(opts.Depths) {
				t.Errorf("%d Feed calls for a prompt with %d queries", s.calls, len(opts.Depths))
			}
		}
		return res
	}
	copier := run(copyValue(0))
	for i, row := range copier.ByLength {
		if row.Correct != 9 || row.Trials != 9 || row.Accuracy.Accuracy != 1 || row.Hi != 1 || row.Lo < 0.6 || row.AnswerLoss > 1e-3 {
			t.Errorf("copier, length %d: %+v", row.Length, row.Accuracy)
		}
		for _, c := range copier.Cells[i] {
			if c.Correct != 3 || c.Trials != 3 || len(c.Results) != 3 || c.Results[0].Output != c.Results[0].Value {
				t.Errorf("copier, cell %d/%v: %+v", c.Length, c.Depth, c.Accuracy)
			}
		}
	}
	// A model that copies the wrong digits scores 0, with a loss far above
	// chance (it is confidently wrong).
	wrong := run(copyValue(1))
	for _, row := range wrong.ByLength {
		if row.Correct != 0 || row.Trials != 9 || row.Lo != 0 || row.Hi > 0.4 || row.AnswerLoss < 9 {
			t.Errorf("wrong copier, length %d: %+v", row.Length, row.Accuracy)
		}
	}
	if out := wrong.Cells[0][0].Results[0]; len(out.Output) != 1 || out.Output == out.Value[:1] {
		t.Errorf("wrong copier's output %q should stop at its first wrong digit of %q", out.Output, out.Value)
	}
	// One that does not copy at all (always a newline) scores 0.
	if none := run(func([]byte) byte { return '\n' }); none.ByLength[2].Correct != 0 {
		t.Errorf("non-copier: %+v", none.ByLength[2].Accuracy)
	}
	// Lengths beyond the learned positions are n/a.
	opts.MaxTokens = 600
	res, err := KeyRetrieval(context.Background(), func() Session { return &stubSession{guess: copyValue(0)} }, 257, tok, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.ByLength[2].NA == "" || res.Cells[2][0].NA == "" || res.ByLength[1].NA != "" {
		t.Errorf("n/a: %+v", res.ByLength)
	}
	var table, csv bytes.Buffer
	if err := WriteRetrievalTable(&table, []*RetrievalResult{res}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "100% [") || !strings.Contains(table.String(), "n/a") {
		t.Errorf("table:\n%s", table.String())
	}
	if err := WriteRetrievalCSV(&csv, []*RetrievalResult{res}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(csv.String(), "\n"); n != 1+3*4 {
		t.Errorf("csv has %d lines:\n%s", n, csv.String())
	}
	var png bytes.Buffer
	if err := PlotRetrieval(&png, []*RetrievalResult{copier, wrong}); err != nil || png.Len() == 0 {
		t.Errorf("plot: %v", err)
	}
}

func TestWilson(t *testing.T) {
	for _, c := range []struct {
		k, n   int
		lo, hi float64
	}{
		{0, 10, 0, 0.2775},
		{10, 10, 0.7225, 1},
		{5, 10, 0.2366, 0.7634},
		{0, 0, 0, 1},
	} {
		lo, hi := Wilson(c.k, c.n)
		if math.Abs(lo-c.lo) > 1e-4 || math.Abs(hi-c.hi) > 1e-4 {
			t.Errorf("Wilson(%d, %d) = %.4f, %.4f; want %.4f, %.4f", c.k, c.n, lo, hi, c.lo, c.hi)
		}
	}
}

// TestRetrievalModel runs the evaluation on a fixture through its KV
// cache: a random model does not retrieve.
func TestRetrievalModel(t *testing.T) {
	res, err := Retrieval(context.Background(), RetrievalOptions{
		Checkpoints: Checkpoints{Models: []string{fixtures + "/llama-tiny"}, Tokenizer: "bytes"},
		Lengths:     []int{64, 100}, Depths: []float64{0, 1}, Trials: 2, Seed: 3, Attention: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Models[0]
	if r.Model != "llama-tiny" || len(r.ByLength) != 2 || r.ByLength[1].Trials != 4 || r.ByLength[0].AnswerLoss <= 0 {
		t.Errorf("result: %+v", r.ByLength)
	}
	for _, row := range r.ByLength {
		a := row.Attention
		if a == nil || len(a.Mass) != 2 || a.Max <= 0 || a.Max > 1 || a.Uniform <= 0 || a.Uniform > 0.2 || a.queries != 4 {
			t.Fatalf("length %d: attention %+v", row.Length, a)
		}
		// The record's share of uniform attention is its tokens over the
		// keys seen: 8 bytes ("abc1234\n") of at most the length, at
		// least the length less the two final query lines.
		if lo, hi := 8/float64(row.Length), 8/float64(row.Length-2*9); a.Uniform < lo || a.Uniform > hi {
			t.Errorf("length %d: uniform share %v, want in [%v, %v]", row.Length, a.Uniform, lo, hi)
		}
	}
	var table bytes.Buffer
	WriteRetrievalTable(&table, res.Models)
	if !strings.Contains(table.String(), "key attention") {
		t.Errorf("table:\n%s", table.String())
	}
}

// passkeyGuess is what a model that retrieves a passkey predicts: after
// the query mark, the document's first digit (shifted by shift); after
// that, a newline; elsewhere 'x'.
func passkeyGuess(shift byte) func([]byte) byte {
	return func(text []byte) byte {
		if text[len(text)-1] != '?' {
			return map[bool]byte{true: '\n', false: 'x'}[len(text) > 1 && text[len(text)-2] == '?']
		}
		i := bytes.IndexAny(text, "0123456789")
		if i < 0 {
			return 'x'
		}
		return '0' + (text[i]-'0'+shift)%10
	}
}

// TestPasskeyRetrievalScores runs the evaluation on passkey prompts: one
// prompt per depth, and a model that copies the passkey scores 100%, one
// that copies a wrong digit 0%.
func TestPasskeyRetrievalScores(t *testing.T) {
	tok := data.NewByteTokenizer(256)
	opts := KeyRetrievalOptions{Lengths: []int{64, 1024}, Depths: []float64{0, 0.5, 1}, Trials: 2, Seed: 1,
		Task: retrieval.Task{KeyLen: 3, ValueLen: 1, Passkey: true}}
	for _, c := range []struct {
		shift byte
		want  int
	}{{0, 6}, {3, 0}} {
		sessions := 0
		res, err := KeyRetrieval(context.Background(), func() Session {
			sessions++
			return &stubSession{guess: passkeyGuess(c.shift)}
		}, 257, tok, opts)
		if err != nil {
			t.Fatal(err)
		}
		if sessions != 2*2*3 {
			t.Fatalf("%d sessions for 12 passkey prompts (one per length, trial and depth)", sessions)
		}
		for i, row := range res.ByLength {
			if row.Correct != c.want || row.Trials != 6 || row.PromptTokens > float64(row.Length) || row.PromptTokens < float64(row.Length)-12 {
				t.Errorf("shift %d, length %d: %d of %d correct, %.0f tokens per prompt", c.shift, row.Length, row.Correct, row.Trials, row.PromptTokens)
			}
			for _, cell := range res.Cells[i] {
				if cell.Trials != 2 || cell.Correct != c.want/3 {
					t.Errorf("shift %d, cell %d/%v: %d of %d", c.shift, cell.Length, cell.Depth, cell.Correct, cell.Trials)
				}
			}
		}
	}
}
