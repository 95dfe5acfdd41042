package eval

import (
	"context"
	"math"
	"reflect"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/model"
)

// referenceNLL is the next-token NLL of ids[1:] given ids[:len-1]: from
// ScoreTokens, or, when the model's learned positions cannot read all of
// ids, from the full logits of m.Forward over ids[:len-1].
func referenceNLL(t *testing.T, m *model.Model, ids []int) []float64 {
	t.Helper()
	if m.Spec.Position != arch.LearnedPositions || len(ids) <= m.Spec.Context {
		sc, err := ScoreTokens(m, ids)
		if err != nil {
			t.Fatal(err)
		}
		return sc.NLL
	}
	logits, err := m.Forward(model.Input{IDs: ids[:len(ids)-1]})
	if err != nil {
		t.Fatal(err)
	}
	v := m.Spec.Vocab
	all := logits.Value().(*mat.Dense[float32]).Data().F32()
	out := make([]float64, len(ids)-1)
	for i := range out {
		row := all[i*v : (i+1)*v]
		var sum float64
		for _, x := range row {
			sum += math.Exp(float64(x))
		}
		out[i] = math.Log(sum) - float64(row[ids[i+1]])
	}
	return out
}

func TestPositionBuckets(t *testing.T) {
	for _, tc := range []struct {
		length int
		want   []Bucket
	}{
		{1, []Bucket{{1, 1}}},
		{64, []Bucket{{1, 64}}},
		{65, []Bucket{{1, 64}, {65, 65}}},
		{100, []Bucket{{1, 64}, {65, 100}}},
		{256, []Bucket{{1, 64}, {65, 128}, {129, 256}}},
		{1000, []Bucket{{1, 64}, {65, 128}, {129, 256}, {257, 512}, {513, 1000}}},
	} {
		if got := PositionBuckets(tc.length); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("PositionBuckets(%d) = %v, want %v", tc.length, got, tc.want)
		}
	}
}

// TestReadStream: reading the stream at any offset gives the documents laid
// end to end.
func TestReadStream(t *testing.T) {
	m := openFixture(t, "llama-tiny")
	s, _ := byteStream(t, m, writeDocs(t, []int{30, 7, 50}))
	var all []int
	for _, sp := range s.Spans() {
		all = append(all, s.ReadSpan(sp)...)
	}
	if len(all) != s.Len() {
		t.Fatalf("spans hold %d tokens, stream %d", len(all), s.Len())
	}
	for _, tc := range [][2]int{{0, 1}, {0, len(all)}, {29, 5}, {31, 9}, {36, 40}, {len(all) - 1, 1}} {
		if got := readStream(s, tc[0], tc[1]); !reflect.DeepEqual(got, all[tc[0]:tc[0]+tc[1]]) {
			t.Errorf("readStream(%d, %d) = %v, want %v", tc[0], tc[1], got, all[tc[0]:tc[0]+tc[1]])
		}
	}
}

// TestLengthMatchesScore: every bucket's mean is the mean of ScoreTokens'
// per-token NLL over the same positions of the same samples (of the full
// logits when the sample is one token longer than the model's learned
// positions: L = context is evaluated, L+1 is not), the buckets
// recombine (weighted by their counts) to the overall mean, and lengths
// beyond learned positions are n/a. Samples come from whole documents when
// enough are long, from the concatenated stream otherwise.
func TestLengthMatchesScore(t *testing.T) {
	dir := writeDocs(t, []int{300, 150, 90, 260, 40})
	for _, tc := range []struct {
		fixture string
		lengths []int
		source  string
		sources []string // per length; "" for n/a
	}{
		// Documents of >= 101 tokens: 300, 150, 260 (+EOS): 3 >= 2 samples.
		// >= 201: 300 and 260. >= 301: only 300+EOS; 2 samples need concat.
		{"llama-tiny", []int{100, 200, 300}, SourceAuto, []string{SourceDocuments, SourceDocuments, SourceConcat}},
		{"llama-tiny-ssmax-bias", []int{70, 130}, SourceConcat, []string{SourceConcat, SourceConcat}},
		{"gpt2-tiny", []int{127, 128, 129, 400}, SourceAuto, []string{SourceDocuments, SourceDocuments, "", ""}},
		{"gpt2-tiny-ssmax", []int{64}, SourceDocuments, []string{SourceDocuments}},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			m := openFixture(t, tc.fixture)
			s, _ := byteStream(t, m, dir)
			var calls, total int
			res, err := LossByLength(context.Background(), m, s, LossByLengthOptions{
				Lengths: tc.lengths, Samples: 2, Source: tc.source,
				Progress: func(done, tot int) { calls++; total = tot },
			})
			if err != nil {
				t.Fatal(err)
			}
			if calls == 0 {
				t.Error("no progress reported")
			}
			wantTotal := 0
			for i, p := range res.Points {
				if p.Length != tc.lengths[i] {
					t.Fatalf("point %d: length %d, want %d", i, p.Length, tc.lengths[i])
				}
				if tc.sources[i] == "" {
					if p.NA == "" || p.LengthStats != nil {
						t.Errorf("length %d: want n/a, got %+v", p.Length, p)
					}
					continue
				}
				if p.LengthStats == nil {
					t.Fatalf("length %d: n/a (%s)", p.Length, p.NA)
				}
				if p.Source != tc.sources[i] {
					t.Errorf("length %d: source %s, want %s", p.Length, p.Source, tc.sources[i])
				}
				if len(p.Offsets) != 2 {
					t.Fatalf("length %d: %d samples, want 2", p.Length, len(p.Offsets))
				}
				wantTotal += 2 * p.Length
				buckets := PositionBuckets(p.Length)
				sums := make([]float64, len(buckets))
				var all float64
				for _, off := range p.Offsets {
					ids := readStream(s, off, p.Length+1)
					nll := referenceNLL(t, m, ids)
					for b, bk := range buckets {
						for _, x := range nll[bk.Lo-1 : bk.Hi] {
							sums[b] += x
						}
					}
					for _, x := range nll {
						all += x / float64(2*p.Length)
					}
				}
				var recombined float64
				var count int
				for b, bl := range p.Buckets {
					want := sums[b] / float64(2*(buckets[b].Hi-buckets[b].Lo+1))
					if bl.Bucket != buckets[b] || bl.Count != 2*(buckets[b].Hi-buckets[b].Lo+1) {
						t.Errorf("length %d: bucket %v count %d", p.Length, bl.Bucket, bl.Count)
					}
					// The length evaluation runs L tokens, ScoreTokens L+1: the
					// matrix products block them differently, so float32
					// rounding differs in the last bits (~1e-8 relative).
					if math.Abs(bl.MeanLoss-want) > scoreTol*want {
						t.Errorf("length %d bucket %v: %v, ScoreTokens gives %v", p.Length, bl.Bucket, bl.MeanLoss, want)
					}
					recombined += bl.MeanLoss * float64(bl.Count)
					count += bl.Count
				}
				recombined /= float64(count)
				if math.Abs(recombined-all) > 1e-5 || math.Abs(p.MeanLoss-all) > scoreTol*all {
					t.Errorf("length %d: mean %v, buckets recombine to %v, ScoreTokens gives %v", p.Length, p.MeanLoss, recombined, all)
				}
				if math.Abs(p.Perplexity-math.Exp(p.MeanLoss)) > 1e-9 {
					t.Errorf("length %d: perplexity %v", p.Length, p.Perplexity)
				}
			}
			if total != wantTotal {
				t.Errorf("progress total %d, want %d", total, wantTotal)
			}
		})
	}
}

// TestLengthSamples: document samples start at document starts, concat
// samples are disjoint windows of the stream, and an unknown source fails.
func TestLengthSamples(t *testing.T) {
	m := openFixture(t, "llama-tiny")
	s, _ := byteStream(t, m, writeDocs(t, []int{300, 150, 90, 260, 40}))
	docStarts := map[int]bool{}
	off := 0
	for _, sp := range s.Spans() {
		docStarts[off] = true
		off += sp.Len()
	}
	ws, src, err := sampleWindows(s, 101, 3, SourceDocuments)
	if err != nil || src != SourceDocuments || len(ws) != 3 {
		t.Fatalf("documents: %v %s %v", ws, src, err)
	}
	for _, w := range ws {
		if !docStarts[w.Off] {
			t.Errorf("document sample at %d is not a document start", w.Off)
		}
	}
	ws, _, _ = sampleWindows(s, 101, 100, SourceConcat)
	if len(ws) != s.Len()/101 {
		t.Errorf("concat: %d windows, want %d", len(ws), s.Len()/101)
	}
	for i := 1; i < len(ws); i++ {
		if ws[i].Off < ws[i-1].Off+101 {
			t.Errorf("concat windows overlap: %v", ws)
		}
	}
	if ws, _, _ := sampleWindows(s, s.Len()+1, 2, SourceAuto); len(ws) != 0 {
		t.Errorf("windows longer than the stream: %v", ws)
	}
	if _, _, err := sampleWindows(s, 10, 2, "random"); err == nil {
		t.Error("unknown source accepted")
	}
}

// scoreTol is the relative agreement required between the length
// evaluation and ScoreTokens on the same tokens.
const scoreTol = 1e-6
