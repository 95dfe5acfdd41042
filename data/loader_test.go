package data

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// handCorpus has four documents ending with EOS 0:
// [10 11 12 0] [20 21 0] [30 31 32 33 34 0] [40 0].
func handCorpus(t *testing.T) (*Dataset, *Stream) {
	t.Helper()
	toks := IntTokens{10, 11, 12, 0, 20, 21, 0, 30, 31, 32, 33, 34, 0, 40, 0}
	d := &Dataset{Tokens: toks, Docs: []Span{{0, 4}, {4, 7}, {7, 13}, {13, 15}}}
	return d, d.Stream()
}

func TestEvalLoaderHandCorpus(t *testing.T) {
	_, s := handCorpus(t)
	e, err := NewEvalLoader(s, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []Batch{
		{
			Inputs:    []int{10, 11, 12, 0, 20, 21, 0, 30},
			Targets:   []int{11, 12, 0, -1, 21, 0, -1, 31},
			Segments:  []int{0, 4, 7},
			BatchSize: 2, SeqLen: 4,
		},
		{
			Inputs:    []int{31, 32, 33, 34},
			Targets:   []int{32, 33, 34, 0},
			Segments:  []int{0},
			BatchSize: 1, SeqLen: 4,
		},
	}
	for pass := 0; pass < 2; pass++ {
		for i, w := range want {
			got, ok := e.Next()
			if !ok || !reflect.DeepEqual(got, w) {
				t.Fatalf("pass %d batch %d:\n got %+v\nwant %+v", pass, i, got, w)
			}
		}
		if _, ok := e.Next(); ok {
			t.Fatal("extra batch")
		}
		if e.NumWindows() != 3 {
			t.Errorf("NumWindows %d, want 3", e.NumWindows())
		}
		e.Reset()
	}
}

func TestStreamOfReorderedSpans(t *testing.T) {
	d, _ := handCorpus(t)
	s, err := NewStream(d.Tokens, []Span{d.Docs[2], d.Docs[0]})
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEvalLoader(s, 3, 8)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := e.Next()
	want := Batch{
		Inputs:    []int{30, 31, 32, 33, 34, 0, 10, 11, 12},
		Targets:   []int{31, 32, 33, 34, 0, -1, 11, 12, 0},
		Segments:  []int{0, 3, 6},
		BatchSize: 3, SeqLen: 3,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	for _, bad := range [][]Span{{{0, 0}}, {{3, 2}}, {{-1, 2}}, {{0, 16}}} {
		if _, err := NewStream(d.Tokens, bad); err == nil {
			t.Errorf("NewStream(%v) accepted", bad)
		}
	}
}

// identityCorpus has tokens[i] == i, so a batch shows the positions it
// read; docs have pseudo-random lengths 1..maxLen.
func identityCorpus(nDocs, maxLen int, seed uint64) *Dataset {
	rng := newSplitMix(seed)
	d := &Dataset{}
	n := 0
	for i := 0; i < nDocs; i++ {
		l := 1 + rng.intn(maxLen)
		d.Docs = append(d.Docs, Span{n, n + l})
		n += l
	}
	toks := make(IntTokens, n)
	for i := range toks {
		toks[i] = i
	}
	d.Tokens = toks
	return d
}

// checkBatch verifies targets and segments of a batch over a contiguous
// identity stream against the document boundaries of the stream's spans.
func checkBatch(t *testing.T, s *Stream, b Batch) {
	t.Helper()
	ends, starts := map[int]bool{}, map[int]bool{}
	for _, sp := range s.Spans() {
		ends[sp.End-1] = true
		starts[sp.Start] = true
	}
	if len(b.Inputs) != b.BatchSize*b.SeqLen || len(b.Targets) != len(b.Inputs) {
		t.Fatalf("shape %dx%d with %d inputs %d targets", b.BatchSize, b.SeqLen, len(b.Inputs), len(b.Targets))
	}
	var segs []int
	for j, pos := range b.Inputs {
		want := pos + 1
		if ends[pos] {
			want = -1
		} else if j%b.SeqLen != b.SeqLen-1 && b.Inputs[j+1] != pos+1 {
			t.Fatalf("row %d: input %d followed by %d inside a document", j, pos, b.Inputs[j+1])
		}
		if b.Targets[j] != want { // contiguous streams only: the next stream token is pos+1
			t.Fatalf("row %d (position %d): target %d, want %d", j, pos, b.Targets[j], want)
		}
		if j%b.SeqLen == 0 || starts[pos] {
			segs = append(segs, j)
		}
	}
	if !reflect.DeepEqual(segs, b.Segments) {
		t.Fatalf("segments %v, want %v", b.Segments, segs)
	}
}

func collect(l *Loader, n int) []Batch {
	out := make([]Batch, n)
	for i := range out {
		out[i] = l.Next()
	}
	return out
}

func TestLoaderDeterminismAndCoverage(t *testing.T) {
	d := identityCorpus(60, 40, 1)
	s := d.Stream()
	const T, B = 16, 3
	l1, err := NewLoader(s, T, B, 1)
	if err != nil {
		t.Fatal(err)
	}
	l2, _ := NewLoader(s, T, B, 1)
	l3, _ := NewLoader(s, T, B, 2)
	W := l1.WindowsPerEpoch()
	if W != (s.Len()-1)/T {
		t.Fatalf("windows %d, want %d", W, (s.Len()-1)/T)
	}
	steps := 3*W/B + 2 // more than three epochs
	a, b, c := collect(l1, steps), collect(l2, steps), collect(l3, steps)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed gave different batches")
	}
	if reflect.DeepEqual(a[0], c[0]) && reflect.DeepEqual(a[1], c[1]) {
		t.Fatal("different seeds gave the same batches")
	}
	// Each epoch visits every window exactly once, in a different order.
	var starts []int
	for _, bt := range a {
		checkBatch(t, s, bt)
		for k := 0; k < bt.BatchSize; k++ {
			starts = append(starts, bt.Inputs[k*T])
		}
	}
	for e := 0; e < 3; e++ {
		seen := map[int]bool{}
		for _, st := range starts[e*W : (e+1)*W] {
			if st%T != 0 || seen[st] {
				t.Fatalf("epoch %d: window start %d repeated or misaligned", e, st)
			}
			seen[st] = true
		}
	}
	if reflect.DeepEqual(starts[:W], starts[W:2*W]) {
		t.Error("epochs 0 and 1 have the same order")
	}
	if l1.Epoch() != 3 {
		t.Errorf("epoch %d after %d steps, want 3", l1.Epoch(), steps)
	}
}

func TestLoaderResume(t *testing.T) {
	d := identityCorpus(40, 30, 2)
	s := d.Stream()
	const T, B = 8, 5
	probe, _ := NewLoader(s, T, B, 9)
	W := probe.WindowsPerEpoch()
	for _, k := range []int{0, 1, 7, W / B, W/B + 1, 2*W/B + 3} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			l, _ := NewLoader(s, T, B, 9)
			collect(l, k)
			raw, err := json.Marshal(l.State())
			if err != nil {
				t.Fatal(err)
			}
			rest := collect(l, 25)
			var st LoaderState
			if err := json.Unmarshal(raw, &st); err != nil {
				t.Fatal(err)
			}
			fresh, _ := NewLoader(s, T, B, 12345) // the state's seed wins
			if err := fresh.Restore(st); err != nil {
				t.Fatal(err)
			}
			if got := collect(fresh, 25); !reflect.DeepEqual(got, rest) {
				t.Fatalf("resumed batches differ after %d steps", k)
			}
			uninterrupted, _ := NewLoader(s, T, B, 9)
			if all := collect(uninterrupted, k+25); !reflect.DeepEqual(all[k:], rest) {
				t.Fatal("batches after State differ from an uninterrupted run")
			}
		})
	}
	l, _ := NewLoader(s, T, B, 9)
	st := l.State()
	other, _ := NewLoader(s, T+1, B, 9)
	if err := other.Restore(st); err == nil || !strings.Contains(err.Error(), "sequence length") {
		t.Errorf("Restore with another SeqLen: %v", err)
	}
	smaller, _ := NewStream(d.Tokens, d.Docs[:20])
	other, _ = NewLoader(smaller, T, B, 9)
	if err := other.Restore(st); err == nil || !strings.Contains(err.Error(), "different data") {
		t.Errorf("Restore on other data: %v", err)
	}
	bad := st
	bad.Cursor = st.Windows + 1
	if err := l.Restore(bad); err == nil {
		t.Error("Restore accepted a cursor past the epoch")
	}
}

func TestLoaderErrors(t *testing.T) {
	_, s := handCorpus(t) // 15 tokens
	for _, tc := range []struct{ seqLen, batch int }{{15, 1}, {0, 1}, {4, 0}} {
		if _, err := NewLoader(s, tc.seqLen, tc.batch, 0); err == nil {
			t.Errorf("NewLoader(seq %d, batch %d) accepted", tc.seqLen, tc.batch)
		}
		if _, err := NewEvalLoader(s, tc.seqLen, tc.batch); err == nil {
			t.Errorf("NewEvalLoader(seq %d, batch %d) accepted", tc.seqLen, tc.batch)
		}
	}
	if l, err := NewLoader(s, 14, 3, 0); err != nil || l.WindowsPerEpoch() != 1 {
		t.Errorf("one window: %v %v", l, err)
	} else if b := l.Next(); b.BatchSize != 3 || !reflect.DeepEqual(b.Inputs[:14], b.Inputs[14:28]) {
		t.Errorf("a batch larger than an epoch repeats windows: %+v", b)
	}
}

func TestEvalLoaderProperties(t *testing.T) {
	d := identityCorpus(30, 50, 3)
	s := d.Stream()
	e, err := NewEvalLoader(s, 7, 4)
	if err != nil {
		t.Fatal(err)
	}
	next := 0
	for b, ok := e.Next(); ok; b, ok = e.Next() {
		checkBatch(t, s, b)
		for k := 0; k < b.BatchSize; k++ {
			if b.Inputs[k*7] != next {
				t.Fatalf("window starts at %d, want %d", b.Inputs[k*7], next)
			}
			next += 7
		}
	}
	if next/7 != e.NumWindows() || next+1 > s.Len() || next+8 <= s.Len() {
		t.Errorf("covered %d of %d tokens in %d windows", next, s.Len(), e.NumWindows())
	}
}

func TestSplitDataset(t *testing.T) {
	d := identityCorpus(100, 20, 4)
	tr, va, err := SplitDataset(d, 0.1, 42)
	if err != nil {
		t.Fatal(err)
	}
	tr2, va2, _ := SplitDataset(d, 0.1, 42)
	if !reflect.DeepEqual(tr.Spans(), tr2.Spans()) || !reflect.DeepEqual(va.Spans(), va2.Spans()) {
		t.Fatal("same seed, different split")
	}
	_, va3, _ := SplitDataset(d, 0.1, 43)
	if reflect.DeepEqual(va.Spans(), va3.Spans()) {
		t.Error("different seeds, same split")
	}
	if tr.NumDocs() != 90 || va.NumDocs() != 10 || tr.Len()+va.Len() != d.NumTokens() {
		t.Errorf("train %d docs, val %d docs, %d+%d tokens", tr.NumDocs(), va.NumDocs(), tr.Len(), va.Len())
	}
	// Disjoint, complete, and each side in corpus order.
	seen := map[Span]bool{}
	for _, side := range []*Stream{tr, va} {
		for i, sp := range side.Spans() {
			if seen[sp] || (i > 0 && sp.Start < side.Spans()[i-1].Start) {
				t.Fatalf("span %v repeated or out of order", sp)
			}
			seen[sp] = true
		}
	}
	if len(seen) != 100 {
		t.Errorf("%d spans, want 100", len(seen))
	}
	tests := []struct {
		name             string
		docs             int
		frac             float64
		wantTrain, wantV int // docs
	}{
		{"tiny fraction keeps one val doc", 100, 0.001, 99, 1},
		{"huge fraction keeps one train doc", 100, 0.999, 1, 99},
		{"two docs", 2, 0.05, 1, 1},
		{"zero fraction", 10, 0, 10, 0},
	}
	for _, tc := range tests {
		tr, va, err := SplitDataset(identityCorpus(tc.docs, 5, 1), tc.frac, 7)
		if err != nil || tr.NumDocs() != tc.wantTrain || va.NumDocs() != tc.wantV {
			t.Errorf("%s: %v %v %v", tc.name, tr, va, err)
		}
	}
	single := &Dataset{Tokens: make(IntTokens, 1000), Docs: []Span{{0, 1000}}}
	tr, va, err = SplitDataset(single, 0.05, 1)
	if err != nil || !reflect.DeepEqual(tr.Spans(), []Span{{0, 950}}) || !reflect.DeepEqual(va.Spans(), []Span{{950, 1000}}) {
		t.Errorf("tail split: %v %v %v", tr.Spans(), va.Spans(), err)
	}
	for _, f := range []float64{-0.1, 1, 2} {
		if _, _, err := SplitDataset(d, f, 1); err == nil {
			t.Errorf("fraction %v accepted", f)
		}
	}
}

func TestLongDocuments(t *testing.T) {
	d, s := handCorpus(t)
	got := LongDocuments(s, 4)
	if !reflect.DeepEqual(got, []Span{{0, 4}, {7, 13}}) {
		t.Errorf("LongDocuments(4) = %v", got)
	}
	if toks := s.ReadSpan(got[1]); !equalInts(toks, []int{30, 31, 32, 33, 34, 0}) {
		t.Errorf("ReadSpan = %v", toks)
	}
	if len(LongDocuments(s, 7)) != 0 || d.NumTokens() != 15 {
		t.Error("no document has 7 tokens")
	}
}
