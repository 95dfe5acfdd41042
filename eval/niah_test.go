package eval

import (
	"context"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/model"
)

// oracle answers with the number it finds in the prompt's needle after
// prefix (default " "), then a newline and junk (which the runner cuts at
// the line end).
type oracle struct {
	tok     data.Tokenizer
	re      *regexp.Regexp
	prefix  string
	prompts [][]int
	budgets []int
}

func (o *oracle) Generate(prompt []int, maxNew int) ([]int, error) {
	o.prompts = append(o.prompts, append([]int(nil), prompt...))
	o.budgets = append(o.budgets, maxNew)
	m := o.re.FindStringSubmatch(o.tok.Decode(prompt))
	if m == nil {
		return nil, nil
	}
	prefix := o.prefix
	if prefix == "" {
		prefix = " "
	}
	out := o.tok.Encode(prefix + m[1])
	return append(out, o.tok.Encode("\n999")...), nil
}

// constant always answers the same text.
type constant struct {
	tok  data.Tokenizer
	text string
}

func (c constant) Generate([]int, int) ([]int, error) { return c.tok.Encode(c.text), nil }

// TestNIAHHarness: an oracle that reads the needle back scores 100% in
// every cell, wrong answers (a wrong number, the right number after a line
// end, a truncated number) score 0%; each prompt is exactly the cell's
// length, holds the needle at a line start near the depth and ends with the
// question; the budget is the answer's encoding; cells beyond MaxTokens are
// n/a and never reach the generator.
func TestNIAHHarness(t *testing.T) {
	hay, err := OpenHaystack(writeDocs(t, []int{900, 1300, 1200}), "*.txt")
	if err != nil {
		t.Fatal(err)
	}
	tok := data.NewByteTokenizer(256)
	opts := NeedleRetrievalOptions{
		Lengths: []int{100, 600, 900, 2000}, Depths: []float64{0, 0.25, 0.5, 0.75, 1},
		Trials: 3, Seed: 7, MaxTokens: 1000,
	}
	needleRe := regexp.MustCompile(`The special magic number is (\d+)\.`)
	for _, tc := range []struct {
		name string
		gen  func() Generator
		want float64
	}{
		{"oracle", func() Generator { return &oracle{tok: tok, re: needleRe} }, 1},
		{"wrong number", func() Generator { return constant{tok, " 12345"} }, 0},
		{"after a line end", func() Generator { return &oracle{tok: tok, re: needleRe, prefix: "\n"} }, 0},
		{"truncated", func() Generator { return &oracle{tok: tok, re: regexp.MustCompile(`magic number is (\d\d)\d+\.`)} }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gen := tc.gen()
			var last [2]int
			o := opts
			o.Progress = func(done, total int) { last = [2]int{done, total} }
			res, err := NeedleRetrieval(context.Background(), gen, tok, hay, o)
			if err != nil {
				t.Fatal(err)
			}
			if last != [2]int{60, 60} {
				t.Errorf("progress ended at %v, want 60/60", last)
			}
			if res.Accuracy != tc.want {
				t.Errorf("accuracy %v, want %v", res.Accuracy, tc.want)
			}
			for i, row := range res.Cells {
				for j, c := range row {
					if opts.Lengths[i] > 1000 {
						if c.NA == "" || c.Trials != 0 {
							t.Errorf("length %d depth %v: want n/a, got %+v", c.Length, c.Depth, c)
						}
						continue
					}
					if c.NA != "" || c.Trials != 3 || c.Accuracy != tc.want || c.Depth != opts.Depths[j] {
						t.Errorf("length %d depth %v: %+v", c.Length, c.Depth, c)
					}
				}
			}
			o2, ok := gen.(*oracle)
			if !ok || tc.name != "oracle" {
				return
			}
			if len(o2.prompts) != 3*3*5 {
				t.Fatalf("%d prompts, want 45", len(o2.prompts))
			}
			k := 0
			for tr := 0; tr < 3; tr++ {
				for i := 0; i < 3; i++ {
					for j := range opts.Depths {
						p, text := o2.prompts[k], tok.Decode(o2.prompts[k])
						c := res.Cells[i][j]
						if len(p) != c.Length {
							t.Errorf("prompt of %d tokens for length %d", len(p), c.Length)
						}
						if !strings.HasSuffix(text, "\n"+DefaultQuestion) {
							t.Errorf("prompt does not end with the question: %q", text[max(0, len(text)-80):])
						}
						at := strings.Index(text, "The special magic number is")
						if at < 0 || (at > 0 && text[at-1] != '\n') {
							t.Errorf("needle not at a line start (at %d)", at)
						}
						if strings.Count(text, "magic number is") != 2 {
							t.Errorf("want one needle and one question: %q", text)
						}
						r := c.Results[tr]
						if c.Length > 100 && math.Abs(r.Depth-c.Depth) > 0.1 {
							t.Errorf("length %d: needle at depth %v, want near %v", c.Length, r.Depth, c.Depth)
						}
						if len(r.Number) != 5 || o2.budgets[k] != 6 {
							t.Errorf("number %q, budget %d", r.Number, o2.budgets[k])
						}
						k++
					}
				}
			}
		})
	}
}

// TestNIAHPlan: the same seed gives the same numbers and haystacks, another
// seed other numbers; numbers have the requested digits.
func TestNIAHPlan(t *testing.T) {
	a, b, c := makePlan(1, 50, 2, 3, 4, 5), makePlan(1, 50, 2, 3, 4, 5), makePlan(2, 50, 2, 3, 4, 5)
	if !equalPlans(a, b) {
		t.Error("same seed, different plans")
	}
	if equalPlans(a, c) {
		t.Error("different seeds, same plan")
	}
	for _, d := range []int{1, 3, 9} {
		p := makePlan(3, 1, 1, 1, 20, d)
		for _, n := range p.numbers[0][0] {
			if len(n) != d || (d > 1 && n[0] == '0') {
				t.Errorf("%d digits: %q", d, n)
			}
		}
	}
}

func equalPlans(a, b niahPlan) bool {
	if len(a.starts) != len(b.starts) {
		return false
	}
	for i := range a.starts {
		if a.starts[i] != b.starts[i] {
			return false
		}
	}
	for i := range a.numbers {
		for j := range a.numbers[i] {
			for k := range a.numbers[i][j] {
				if a.numbers[i][j][k] != b.numbers[i][j][k] {
					return false
				}
			}
		}
	}
	return true
}

// TestNIAHErrors: bad templates, grids and short haystacks fail with a
// message naming the problem.
func TestNIAHErrors(t *testing.T) {
	hay, err := OpenHaystack(writeDocs(t, []int{200}), "")
	if err != nil {
		t.Fatal(err)
	}
	tok := data.NewByteTokenizer(256)
	gen := constant{tok, " 1"}
	for _, tc := range []struct {
		opts NeedleRetrievalOptions
		want string
	}{
		{NeedleRetrievalOptions{Lengths: []int{100}, Depths: []float64{0}, Needle: "no placeholder"}, "{number}"},
		{NeedleRetrievalOptions{Lengths: []int{100}, Depths: []float64{1.5}}, "depth 1.5"},
		{NeedleRetrievalOptions{Lengths: nil, Depths: []float64{0}}, "at least one length"},
		{NeedleRetrievalOptions{Lengths: []int{1000}, Depths: []float64{0}}, "need"},
		{NeedleRetrievalOptions{Lengths: []int{40}, Depths: []float64{0}}, "shorter than the needle"},
	} {
		if _, err := NeedleRetrieval(context.Background(), gen, tok, hay, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.opts, err, tc.want)
		}
	}
}

// greedyByForward decodes greedily by recomputing the full forward pass at
// every step (no KV cache).
func greedyByForward(t *testing.T, m *model.Model, prompt []int, n int) []int {
	ids := append([]int(nil), prompt...)
	var out []int
	for len(out) < n {
		logits, err := m.Forward(model.Input{IDs: ids})
		if err != nil {
			t.Fatal(err)
		}
		v := m.Spec.Vocab
		all := logits.Value().(*mat.Dense[float32]).Data().F32()
		id := argmax(all[len(all)-v:])
		out = append(out, id)
		ids = append(ids, id)
	}
	return out
}

// TestModelGenerator: the KV-cache generator gives the tokens of greedy
// decoding by full forward passes, stops after a stop token, and runs the
// harness end to end on a fixture.
func TestModelGenerator(t *testing.T) {
	for _, name := range []string{"gpt2-tiny", "llama-tiny-ssmax-bias"} {
		t.Run(name, func(t *testing.T) {
			m := openFixture(t, name)
			prompt := data.NewByteTokenizer(-1).Encode(prose(3, 60))
			want := greedyByForward(t, m, prompt, 8)
			got, err := NewModelGenerator(m, nil).Generate(prompt, 8)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 8 {
				t.Fatalf("%d tokens, want 8", len(got))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("token %d: %v, full forward gives %v", i, got, want)
				}
			}
			stopAt := want[2]
			got, err = NewModelGenerator(m, func(id int) bool { return id == stopAt }).Generate(prompt, 8)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) > 3 || got[len(got)-1] != stopAt {
				t.Errorf("stop at %d: got %v", stopAt, got)
			}
			hay, err := OpenHaystack(writeDocs(t, []int{400}), "")
			if err != nil {
				t.Fatal(err)
			}
			tok := data.NewByteTokenizer(m.Spec.EOS)
			res, err := NeedleRetrieval(context.Background(), NewModelGenerator(m, LineEnd(tok)), tok, hay, NeedleRetrievalOptions{
				Lengths: []int{100, 200}, Depths: []float64{0, 1}, Trials: 1, MaxTokens: MaxLength(m),
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range res.Cells[0] {
				if c.NA != "" || c.Trials != 1 || len(c.Results[0].Output) > 6 {
					t.Errorf("%+v", c)
				}
			}
			if wantNA := MaxLength(m) > 0; (res.Cells[1][0].NA != "") != wantNA {
				t.Errorf("length 200: n/a %q, want n/a %v", res.Cells[1][0].NA, wantNA)
			}
		})
	}
}
