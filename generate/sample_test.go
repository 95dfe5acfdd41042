package generate

import (
	"math"
	"slices"
	"testing"
)

// logitsOf returns logits whose softmax is probs.
func logitsOf(probs ...float64) []float32 {
	out := make([]float32, len(probs))
	for i, p := range probs {
		out[i] = float32(math.Log(p))
	}
	return out
}

func TestArgmaxTiesLowestID(t *testing.T) {
	if got := Argmax([]float32{1, 3, 2, 3}); got != 1 {
		t.Errorf("Argmax = %d, want 1", got)
	}
	if got := Argmax([]float32{float32(math.NaN()), -1, 5, 5}); got != 2 {
		t.Errorf("Argmax with NaN = %d, want 2", got)
	}
	ids, _ := Candidates([]float32{0, 7, 7}, Sampling{})
	if !slices.Equal(ids, []int{1}) {
		t.Errorf("greedy candidates %v", ids)
	}
}

// TestTopP: on a hand-made distribution, the nucleus is the smallest set
// of most likely tokens whose mass reaches p, as HF's TopPLogitsWarper
// computes it (tokens whose cumulative mass from the least likely up is at
// most 1-p are removed; the most likely token always stays).
func TestTopP(t *testing.T) {
	// ids:      0     1     2     3     4
	probs := []float64{0.05, 0.4, 0.1, 0.3, 0.15}
	logits := logitsOf(probs...)
	tests := []struct {
		p    float64
		want []int
	}{
		{0.3, []int{1}},              // 0.4 alone reaches 0.3
		{0.39, []int{1}},             // 0.4 reaches 0.39
		{0.5, []int{1, 3}},           // 0.4 < 0.5 <= 0.7
		{0.69, []int{1, 3}},          // 0.7 reaches 0.69
		{0.71, []int{1, 3, 4}},       // needs 0.85
		{0.9, []int{1, 3, 4, 2}},     // needs 0.95
		{0.96, []int{1, 3, 4, 2, 0}}, // everything
		{0.01, []int{1}},             // at least one token
		{1, []int{1, 3, 4, 2, 0}},    // off
		{0, []int{1, 3, 4, 2, 0}},    // off
	}
	for _, tc := range tests {
		ids, ps := Candidates(logits, Sampling{Temperature: 1, TopP: tc.p})
		if !slices.Equal(ids, tc.want) {
			t.Errorf("top-p %v keeps %v, want %v", tc.p, ids, tc.want)
			continue
		}
		var kept float64
		for _, id := range ids {
			kept += probs[id]
		}
		for i, id := range ids {
			if want := probs[id] / kept; math.Abs(ps[i]-want) > 1e-6 {
				t.Errorf("top-p %v: p(%d) = %v, want %v", tc.p, id, ps[i], want)
			}
		}
	}
}

// TestTopKThenTopP: top-k keeps ties at its boundary (HF's
// TopKLogitsWarper keeps every score >= the k-th largest), and top-p runs
// on the renormalised top-k distribution; temperature divides first.
func TestTopKThenTopP(t *testing.T) {
	logits := []float32{1, 3, 2, 3, 0}
	if ids, _ := Candidates(logits, Sampling{Temperature: 1, TopK: 1}); !slices.Equal(ids, []int{1, 3}) {
		t.Errorf("top-k 1 with a tie keeps %v, want [1 3]", ids)
	}
	if ids, _ := Candidates(logits, Sampling{Temperature: 1, TopK: 3}); !slices.Equal(ids, []int{1, 3, 2}) {
		t.Errorf("top-k 3 keeps %v", ids)
	}
	// probs 0.4, 0.3, 0.15, 0.1, 0.05 (ids 1, 3, 4, 2, 0); top-k 3 leaves
	// 0.4/0.85, 0.3/0.85, 0.15/0.85 = 0.47, 0.35, 0.18: p 0.8 is reached by
	// two (0.82), where the untruncated distribution needs three (0.85);
	// p 0.85 needs all three.
	l := logitsOf(0.05, 0.4, 0.1, 0.3, 0.15)
	if ids, _ := Candidates(l, Sampling{Temperature: 1, TopK: 3, TopP: 0.8}); !slices.Equal(ids, []int{1, 3}) {
		t.Errorf("top-k 3, top-p 0.8 keeps %v, want [1 3]", ids)
	}
	if ids, _ := Candidates(l, Sampling{Temperature: 1, TopP: 0.8}); !slices.Equal(ids, []int{1, 3, 4}) {
		t.Errorf("top-p 0.8 keeps %v, want [1 3 4]", ids)
	}
	if ids, _ := Candidates(l, Sampling{Temperature: 1, TopK: 3, TopP: 0.85}); !slices.Equal(ids, []int{1, 3, 4}) {
		t.Errorf("top-k 3, top-p 0.85 keeps %v, want [1 3 4]", ids)
	}
	// Renormalised after top-k 2: 0.4/0.7 = 0.571 reaches 0.55 alone;
	// without top-k it would not (0.4 < 0.55).
	if ids, _ := Candidates(l, Sampling{Temperature: 1, TopK: 2, TopP: 0.55}); !slices.Equal(ids, []int{1}) {
		t.Errorf("top-k 2, top-p 0.55 keeps %v, want [1]", ids)
	}
	if ids, _ := Candidates(l, Sampling{Temperature: 1, TopP: 0.55}); !slices.Equal(ids, []int{1, 3}) {
		t.Errorf("top-p 0.55 keeps %v, want [1 3]", ids)
	}
	// A low temperature sharpens: at T = 0.1, 0.4 vs 0.3 becomes
	// (4/3)^10 = 17.8 to 1, so top-p 0.9 keeps token 1 alone.
	if ids, _ := Candidates(l, Sampling{Temperature: 0.1, TopP: 0.9}); !slices.Equal(ids, []int{1}) {
		t.Errorf("T 0.1, top-p 0.9 keeps %v, want [1]", ids)
	}
}

// TestSamplerSeed: the same seed gives the same draws, another seed other
// draws, and the draws follow the distribution.
func TestSamplerSeed(t *testing.T) {
	logits := logitsOf(0.05, 0.4, 0.1, 0.3, 0.15)
	s := Sampling{Temperature: 1}
	draw := func(seed uint64) []int {
		sm := NewSampler(s, seed)
		out := make([]int, 20000)
		for i := range out {
			out[i] = sm.Next(logits)
		}
		return out
	}
	a, b, c := draw(7), draw(7), draw(8)
	if !slices.Equal(a, b) {
		t.Error("same seed, different draws")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds, same draws")
	}
	counts := make([]float64, 5)
	for _, id := range a {
		counts[id]++
	}
	for id, want := range []float64{0.05, 0.4, 0.1, 0.3, 0.15} {
		if got := counts[id] / float64(len(a)); math.Abs(got-want) > 0.015 {
			t.Errorf("token %d drawn %.3f of the time, want %.2f", id, got, want)
		}
	}
	// top-k 1 without ties is greedy, whatever the seed.
	sm := NewSampler(Sampling{Temperature: 1.5, TopK: 1}, 3)
	for i := 0; i < 100; i++ {
		if id := sm.Next(logits); id != 1 {
			t.Fatalf("top-k 1 drew %d", id)
		}
	}
}

func TestSamplingValidate(t *testing.T) {
	for _, s := range []Sampling{{Temperature: -1}, {Temperature: math.NaN()}, {Temperature: 1, TopK: -1}, {Temperature: 1, TopP: 1.5}, {Temperature: 1, TopP: -0.1}} {
		if s.Validate() == nil {
			t.Errorf("%+v: no error", s)
		}
	}
	if err := (Sampling{Temperature: 0.8, TopK: 40, TopP: 0.95}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestStopWriter: text is passed on as it comes, except a tail that may
// start a stop string; a stop string spanning pieces is found and cut.
func TestStopWriter(t *testing.T) {
	tests := []struct {
		pieces  []string
		stops   []string
		writes  []string // what reaches the writer after each piece
		text    string
		stopped bool
	}{
		{[]string{"ab", "c", "d"}, nil, []string{"ab", "c", "d"}, "abcd", false},
		{[]string{"hello ", "wor", "ld", "!"}, []string{"world"}, []string{"hello ", "", "", ""}, "hello ", true},
		{[]string{"x<", "/", "a>y"}, []string{"</b>"}, []string{"x", "", "</a>y"}, "x</a>y", false},
		{[]string{"end\n", "\nmore"}, []string{"\n\n"}, []string{"end", ""}, "end", true},
		{[]string{"aXb"}, []string{"b", "X"}, []string{"a"}, "a", true},
		{[]string{"ab", "a"}, []string{"aab"}, []string{"ab", ""}, "aba", false}, // the last "a" is held back until finish
	}
	for i, tc := range tests {
		var w stringsWriter
		s := &stopWriter{w: &w, stops: tc.stops}
		stopped := false
		for j, p := range tc.pieces {
			if stopped {
				break
			}
			before := len(w.s)
			stopped = s.add(p)
			if j < len(tc.writes) && w.s[before:] != tc.writes[j] {
				t.Errorf("case %d piece %d %q: wrote %q, want %q", i, j, p, w.s[before:], tc.writes[j])
			}
		}
		if err := s.finish(); err != nil {
			t.Fatal(err)
		}
		if s.text.String() != tc.text || w.s != tc.text || stopped != tc.stopped {
			t.Errorf("case %d: text %q written %q stopped %v; want %q, %v", i, s.text.String(), w.s, stopped, tc.text, tc.stopped)
		}
	}
}

type stringsWriter struct{ s string }

func (w *stringsWriter) Write(p []byte) (int, error) { w.s += string(p); return len(p), nil }
