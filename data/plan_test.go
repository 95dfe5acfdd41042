package data

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
)

// TestNextWindowsFollowsNext: the windows NextWindows names, read back from
// WriteTokens' stream with DocEnds cutting documents as Next does, are the
// batches of Next, across several epochs and from a restored position.
func TestNextWindowsFollowsNext(t *testing.T) {
	d := identityCorpus(50, 40, 3)
	s := d.Stream()
	const T, B = 8, 3
	var buf bytes.Buffer
	if err := s.WriteTokens(&buf, 2); err != nil {
		t.Fatal(err)
	}
	toks := make([]uint16, s.Len())
	if err := binary.Read(&buf, binary.LittleEndian, toks); err != nil {
		t.Fatal(err)
	}
	ends := s.DocEnds()
	if len(ends) != s.NumDocs() || ends[len(ends)-1] != int64(s.Len()) {
		t.Fatalf("doc ends %v for %d docs of %d tokens", ends, s.NumDocs(), s.Len())
	}
	// rebuild is what another engine does with a window index.
	rebuild := func(b *Batch, row int, k uint32) {
		off := int(k) * T
		for i := 0; i < T; i++ {
			b.Inputs = append(b.Inputs, int(toks[off+i]))
			b.Targets = append(b.Targets, int(toks[off+i+1]))
		}
		b.Segments = append(b.Segments, row*T)
		for _, e := range ends {
			if e > int64(off) && e <= int64(off+T) {
				b.Targets[row*T+int(e)-off-1] = -1
				if int(e) < off+T {
					b.Segments = append(b.Segments, row*T+int(e)-off)
				}
			}
		}
	}
	l, _ := NewLoader(s, T, B, 5)
	p, _ := NewLoader(s, T, B, 5)
	steps := 3*l.WindowsPerEpoch()/B + 2
	for step := 0; step < steps; step++ {
		if step == steps/2 { // a restored loader continues the same plan
			st := p.State()
			p, _ = NewLoader(s, T, B, 99)
			if err := p.Restore(st); err != nil {
				t.Fatal(err)
			}
		}
		want := l.Next()
		ks := p.NextWindows(nil, B)
		got := Batch{BatchSize: B, SeqLen: T, Segments: []int{}}
		for row, k := range ks {
			rebuild(&got, row, k)
		}
		if !slices.Equal(got.Inputs, want.Inputs) || !slices.Equal(got.Targets, want.Targets) || !slices.Equal(got.Segments, want.Segments) {
			t.Fatalf("step %d: windows %v do not rebuild Next's batch\n got %+v\nwant %+v", step, ks, got, want)
		}
		if p.State() != l.State() {
			t.Fatalf("step %d: state %+v, Next's loader %+v", step, p.State(), l.State())
		}
	}
}

func TestWriteTokensWidth(t *testing.T) {
	_, s := handCorpus(t)
	var buf bytes.Buffer
	if err := s.WriteTokens(&buf, 4); err != nil || buf.Len() != 4*s.Len() {
		t.Fatalf("%v, %d bytes", err, buf.Len())
	}
	if err := s.WriteTokens(&buf, 3); err == nil {
		t.Fatal("width 3 accepted")
	}
	big := &Dataset{Tokens: IntTokens{1, 70000}, Docs: []Span{{0, 2}}}
	if err := big.Stream().WriteTokens(&buf, 2); err == nil {
		t.Fatal("id 70000 written in 2 bytes")
	}
}
