package retrieval

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/data"
)

// parseLines splits a document's text into its lines (without newlines).
func parseLines(t *testing.T, text string) []string {
	t.Helper()
	return strings.Split(strings.TrimSuffix(text, "\n"), "\n")
}

func TestGenerate(t *testing.T) {
	tok := data.NewByteTokenizer(256)
	task := Default()
	for _, n := range []int{1, 9, 10, 257, 1025} {
		d, err := Generate(DocSeed(1, int64(n)), tok, task, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.IDs) != n || len(d.Answer) != n {
			t.Fatalf("n %d: %d ids, %d answer flags", n, len(d.IDs), len(d.Answer))
		}
		if got := tok.Decode(d.IDs); !strings.HasPrefix(d.Text, got) {
			t.Fatalf("n %d: ids %q are not a prefix of the text", n, got)
		}
		// Every record has a fresh key; every query repeats an earlier
		// record exactly; the answer flags mark exactly the queries' digits.
		vals := map[string]string{}
		var answer []bool
		queries := 0
		asked := map[string]int{}
		for _, l := range parseLines(t, d.Text) {
			key, val, query, ok := task.ParseLine(l)
			if !ok {
				t.Fatalf("n %d: malformed line %q", n, l)
			}
			if !query && queries > 0 {
				t.Fatalf("n %d: record %q after a query", n, l)
			}
			if query {
				queries++
				// Every record is asked once before any is asked again.
				asked[key]++
				if asked[key] > 1+(queries-1)/len(vals) {
					t.Fatalf("n %d: %q asked %d times after %d queries of %d records", n, key, asked[key], queries, len(vals))
				}
				if vals[key] != val {
					t.Fatalf("n %d: query %q: record has %q", n, l, vals[key])
				}
				answer = append(answer, make([]bool, 1+len(key))...)
				for range val {
					answer = append(answer, true)
				}
				answer = append(answer, false)
				continue
			}
			if _, dup := vals[key]; dup {
				t.Fatalf("n %d: key %q recorded twice", n, key)
			}
			vals[key] = val
			answer = append(answer, make([]bool, len(l)+1)...)
		}
		if !reflect.DeepEqual(answer[:n], d.Answer) {
			t.Fatalf("n %d: answer flags differ from the queries' digits", n)
		}
		if n >= 257 && queries < 8 {
			t.Errorf("n %d: only %d queries", n, queries)
		}
		again, _ := Generate(DocSeed(1, int64(n)), tok, task, n)
		if !reflect.DeepEqual(d, again) {
			t.Errorf("n %d: not deterministic", n)
		}
	}
	a, _ := Generate(DocSeed(1, 0), tok, task, 300)
	b, _ := Generate(DocSeed(2, 0), tok, task, 300)
	c, _ := Generate(DocSeed(1, 1), tok, task, 300)
	if reflect.DeepEqual(a.IDs, b.IDs) || reflect.DeepEqual(a.IDs, c.IDs) {
		t.Error("different seeds or indices give the same document")
	}
	if _, err := Generate(DocSeed(1, 0), tok, Task{KeyLen: 3, ValueLen: 4, QueryRate: 1.5}, 10); err == nil {
		t.Error("query rate 1.5 accepted")
	}
}

func TestNewPrompt(t *testing.T) {
	tok := data.NewByteTokenizer(256)
	task := Default()
	depths := []float64{0, 0.25, 0.5, 0.75, 1}
	for _, L := range []int{128, 256, 1000, 4096} {
		for trial := 0; trial < 3; trial++ {
			p, err := NewPrompt(PromptSeed(7, L, trial), tok, task, L, depths)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.IDs) > L || len(p.IDs) < L-10 {
				t.Fatalf("length %d: prompt of %d tokens", L, len(p.IDs))
			}
			text := tok.Decode(p.IDs)
			lines := parseLines(t, text)
			nFiller := len(lines) - len(depths)
			if nFiller != p.FillerLines {
				t.Fatalf("length %d: %d filler lines, prompt says %d", L, nFiller, p.FillerLines)
			}
			vals := map[string]string{}
			for _, l := range lines[:nFiller] {
				key, val, query, ok := task.ParseLine(l)
				if query || !ok {
					t.Fatalf("length %d: filler line %q is not a record", L, l)
				}
				if _, dup := vals[key]; dup {
					t.Fatalf("length %d: key %q twice", L, key)
				}
				vals[key] = val
			}
			seen := map[float64]bool{}
			for k, q := range p.Queries {
				if seen[q.Depth] {
					t.Fatalf("depth %v asked twice", q.Depth)
				}
				seen[q.Depth] = true
				if vals[q.Key] != q.Value {
					t.Fatalf("length %d: target %q has %q in the filler, query says %q", L, q.Key, vals[q.Key], q.Value)
				}
				if got := tok.Decode(p.IDs[q.Record:q.AnswerStart]); !strings.HasPrefix(got, RecordLine(q.Key, q.Value)) {
					t.Fatalf("length %d: record offset points at %q", L, got[:min(len(got), 20)])
				}
				if got := tok.Decode(p.IDs[q.Start:q.AnswerEnd]); got != QueryLine(q.Key)+q.Value {
					t.Fatalf("length %d: query %d is %q", L, k, got)
				}
				if d := q.ActualDepth - q.Depth; d > 0.2 || d < -0.2 || (q.Depth == 0 && q.ActualDepth != 0) || (q.Depth == 1 && q.ActualDepth != 1) {
					t.Fatalf("length %d: depth %v landed at %v", L, q.Depth, q.ActualDepth)
				}
				if lines[nFiller+k] != QueryLine(q.Key)+q.Value {
					t.Fatalf("length %d: final line %d is %q", L, k, lines[nFiller+k])
				}
			}
			if q := p.Queries[len(p.Queries)-1]; q.AnswerEnd != len(p.IDs)-1 {
				t.Fatalf("length %d: the prompt does not end with the last value and a newline", L)
			}
		}
	}
	if _, err := NewPrompt(PromptSeed(1, 20, 0), tok, task, 20, depths); err == nil {
		t.Error("a prompt too short for its targets was accepted")
	}
	if _, err := NewPrompt(rand.New(rand.NewPCG(1, 1)), tok, task, 100, []float64{1.5}); err == nil {
		t.Error("depth 1.5 accepted")
	}
}

func TestGeneratePacked(t *testing.T) {
	tok := data.NewByteTokenizer(256)
	for seed := uint64(0); seed < 20; seed++ {
		p, err := GeneratePacked(DocSeed(seed, 0), tok, Default(), 257, 32)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.IDs) != 257 || len(p.Answer) != 257 {
			t.Fatalf("%d tokens, %d flags", len(p.IDs), len(p.Answer))
		}
		// Documents end with EOS; each is a valid document on its own:
		// its queries ask for its own records.
		start := 0
		for k, e := range append(append([]int(nil), p.Ends...), len(p.IDs)) {
			if k < len(p.Ends) && p.IDs[e] != 256 {
				t.Fatalf("document end %d holds %d, not EOS", e, p.IDs[e])
			}
			if e-start+1 < 2 && k < len(p.Ends) {
				t.Fatalf("document of %d tokens", e-start+1)
			}
			body := p.IDs[start:min(e, len(p.IDs))]
			vals := map[string]string{}
			for _, l := range strings.Split(tok.Decode(body), "\n") {
				key, val, query, ok := Default().ParseLine(l)
				if !ok {
					continue // the cut last line
				}
				if query {
					if vals[key] != val {
						t.Fatalf("seed %d: query %q answered outside its document", seed, l)
					}
				} else {
					vals[key] = val
				}
			}
			start = e + 1
		}
		if seed == 0 && len(p.Ends) == 0 {
			t.Error("no document boundary in 257 tokens with documents from 32 tokens")
		}
	}
	// Without an EOS the documents simply follow each other.
	p, err := GeneratePacked(DocSeed(1, 0), data.NewByteTokenizer(-1), Default(), 300, 40)
	if err != nil || len(p.IDs) != 300 {
		t.Fatalf("no EOS: %v, %d tokens", err, len(p.IDs))
	}
}

// TestGenerateOrdered: an ordered document asks for its records in the order
// they were stated (cycling), so its query lines repeat the record lines; a
// document that is not ordered (Ordered 0) asks in another order.
func TestGenerateOrdered(t *testing.T) {
	tok := data.NewByteTokenizer(256)
	parse := func(task Task, text string) (records, queries []string) {
		for _, l := range parseLines(t, text) {
			key, val, query, ok := task.ParseLine(l)
			if !ok {
				continue // the last line may be cut
			}
			if query {
				queries = append(queries, key+val)
			} else {
				records = append(records, key+val)
			}
		}
		return records, queries
	}
	ordered := Task{KeyLen: 3, ValueLen: 4, QueryRate: 0.5, Ordered: 1}
	shuffled := Task{KeyLen: 3, ValueLen: 4, QueryRate: 0.5}
	differ := 0
	for i := range 20 {
		d, err := Generate(DocSeed(3, int64(i)), tok, ordered, 512)
		if err != nil {
			t.Fatal(err)
		}
		records, queries := parse(ordered, d.Text)
		if len(queries) < 10 {
			t.Fatalf("doc %d: %d queries", i, len(queries))
		}
		for j, q := range queries {
			if q != records[j%len(records)] {
				t.Fatalf("doc %d: query %d is %q, want record %q", i, j, q, records[j%len(records)])
			}
		}
		s, _ := Generate(DocSeed(3, int64(i)), tok, shuffled, 512)
		records, queries = parse(shuffled, s.Text)
		k := min(len(queries), len(records))
		if !reflect.DeepEqual(queries[:k], records[:k]) {
			differ++
		}
	}
	if differ < 19 {
		t.Errorf("only %d of 20 shuffled documents ask in another order than the records'", differ)
	}
	if err := (Task{KeyLen: 3, ValueLen: 4, QueryRate: 0.5, Ordered: 2}).Check(); err == nil {
		t.Error("ordered 2 accepted")
	}
}

// TestPasskey checks passkey documents and prompts: the record's digits are
// the only digits, the document ends with its query and value, the answer
// flags mark exactly the value, and the record lands at the depth asked.
func TestPasskey(t *testing.T) {
	tok := data.NewByteTokenizer(256)
	task := Task{KeyLen: 3, ValueLen: 1, Passkey: true}
	check := func(name string, ids []int, answer []bool) (key, val string) {
		t.Helper()
		text := tok.Decode(ids)
		lines := parseLines(t, text)
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, Mark) {
			t.Fatalf("%s: last line %q is not a query", name, last)
		}
		val = last[len(Mark):]
		body := "\n" + strings.Join(lines[:len(lines)-1], "\n") + "\n" // the lines before the query
		for _, l := range lines[:len(lines)-1] {
			if strings.HasSuffix(l, val) && len(l) == task.KeyLen+len(val) {
				key = l[:task.KeyLen]
			}
		}
		if strings.Count(body, "\n"+RecordLine(key, val)) != 1 {
			t.Fatalf("%s: record %q is not a line of %q", name, RecordLine(key, val), text)
		}
		digits := strings.Count(text, val) // the value digit, once in the record and once in the answer
		if strings.IndexFunc(strings.ReplaceAll(text, val, ""), func(r rune) bool { return r >= '0' && r <= '9' }) >= 0 || digits != 2 {
			t.Fatalf("%s: digits outside the record and answer in %q", name, text)
		}
		if answer != nil {
			for i, a := range answer {
				if want := i == len(ids)-2; a != want {
					t.Fatalf("%s: answer flag %d is %v", name, i, a)
				}
			}
		}
		return key, val
	}
	for _, n := range []int{16, 33, 257, 1025} {
		for seed := uint64(0); seed < 20; seed++ {
			d, err := Generate(DocSeed(seed, int64(n)), tok, task, n)
			if err != nil {
				t.Fatal(err)
			}
			if len(d.IDs) != n || len(d.Answer) != n {
				t.Fatalf("n %d: %d ids, %d answer flags", n, len(d.IDs), len(d.Answer))
			}
			if d.Text != tok.Decode(d.IDs) {
				t.Fatalf("n %d: text %q is not the ids' %q", n, d.Text, tok.Decode(d.IDs))
			}
			check("document", d.IDs, d.Answer)
		}
	}
	// A document too short for its record and query is cut.
	if d, err := Generate(DocSeed(1, 1), tok, task, 5); err != nil || len(d.IDs) != 5 {
		t.Fatalf("5-token passkey document: %v", err)
	}
	for _, L := range []int{64, 256, 4096} {
		for _, depth := range []float64{0, 0.5, 1} {
			p, err := NewPrompt(PromptSeed(3, L, 0), tok, task, L, []float64{depth})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.IDs) > L || len(p.IDs) < L-12 { // less than a word and a newline short
				t.Fatalf("length %d: prompt of %d tokens", L, len(p.IDs))
			}
			key, val := check("prompt", p.IDs, nil)
			q := p.Queries[0]
			if q.Key != key || q.Value != val || tok.Decode(p.IDs[q.Record:q.RecordEnd]) != RecordLine(key, val) ||
				tok.Decode(p.IDs[q.AnswerStart:q.AnswerEnd]) != val || tok.Decode(p.IDs[q.Start:q.AnswerStart]) != Mark {
				t.Fatalf("length %d: offsets of %+v do not point at the record and the query", L, q)
			}
			tol := 0.5/float64(p.FillerLines-1) + 1e-9 // half a line
			if d := q.ActualDepth - depth; d > tol || d < -tol || (depth == 0 && q.Record != 0) || (depth == 1 && q.RecordEnd != q.Start) {
				t.Fatalf("length %d: depth %v landed at %v (record at %d, query at %d)", L, depth, q.ActualDepth, q.Record, q.Start)
			}
		}
	}
	if _, err := NewPrompt(PromptSeed(1, 100, 0), tok, task, 100, []float64{0, 1}); err == nil {
		t.Error("a passkey prompt with two depths was accepted")
	}
	if _, err := NewPrompt(PromptSeed(1, 6, 0), tok, task, 6, []float64{0}); err == nil {
		t.Error("a passkey prompt too short for its record was accepted")
	}
}
