package data

import (
	"fmt"
)

// Batch is BatchSize sequences of SeqLen tokens, concatenated row-major.
type Batch struct {
	// Inputs are the token ids.
	Inputs []int
	// Targets[j] is the token after Inputs[j], or -1 when Inputs[j] is the
	// last token of its document (its EOS): the EOS is predicted from the
	// token before it, but the next document's first token is not predicted
	// from the EOS.
	Targets []int
	// Segments are the rows of Inputs where a document piece starts, sorted;
	// they include every sequence start k*SeqLen (so the first is 0).
	Segments []int
	// BatchSize and SeqLen are the batch's shape; len(Inputs) is their
	// product.
	BatchSize, SeqLen int
}

// window fills sequence b of batch with the stream window starting at off
// (SeqLen+1 tokens are read; the extra one is the last target).
func (s *Stream) window(batch *Batch, b, off int, buf []int) {
	T := batch.SeqLen
	s.read(buf[:T+1], off)
	row := b * T
	copy(batch.Inputs[row:row+T], buf[:T])
	copy(batch.Targets[row:row+T], buf[1:T+1])
	batch.Segments = append(batch.Segments, row)
	for k := s.spanAt(off); k < len(s.spans) && s.cum[k+1] <= off+T; k++ {
		end := s.cum[k+1] - off // first position after span k, in (0, T]
		batch.Targets[row+end-1] = -1
		if end < T {
			batch.Segments = append(batch.Segments, row+end)
		}
	}
}

func newBatch(batchSize, seqLen int) Batch {
	return Batch{
		Inputs:    make([]int, batchSize*seqLen),
		Targets:   make([]int, batchSize*seqLen),
		Segments:  make([]int, 0, batchSize),
		BatchSize: batchSize,
		SeqLen:    seqLen,
	}
}

// numWindows is the number of windows of seqLen inputs (plus one target)
// at offsets k*seqLen that fit in n tokens.
func numWindows(n, seqLen int) int {
	if n <= seqLen {
		return 0
	}
	return (n - 1) / seqLen
}

// Loader yields training batches from a Stream. The stream is cut into
// fixed windows at offsets k*SeqLen (each reading SeqLen+1 tokens, so
// documents are packed across window boundaries); every epoch visits all
// windows once in an order shuffled by a permutation derived only from
// (seed, epoch). Batches run across epoch boundaries. The position is
// therefore just (epoch, cursor), which State and Restore save and restore
// exactly. A Loader is not safe for concurrent use.
type Loader struct {
	s                 *Stream
	seqLen, batchSize int
	seed              uint64
	windows           int
	epoch, cursor     int
	perm              []uint32 // window order of epoch
	buf               []int
}

// LoaderState is a Loader's serialisable position.
type LoaderState struct {
	Seed      uint64 `json:"seed"`
	Epoch     int    `json:"epoch"`
	Cursor    int    `json:"cursor"` // windows of Epoch already yielded
	SeqLen    int    `json:"seq_len"`
	BatchSize int    `json:"batch_size"`
	Windows   int    `json:"windows"` // windows per epoch
	Tokens    int    `json:"tokens"`  // stream length
}

// NewLoader returns a Loader over s yielding batchSize sequences of seqLen
// tokens, shuffled by seed. The stream needs at least seqLen+1 tokens.
func NewLoader(s *Stream, seqLen, batchSize int, seed uint64) (*Loader, error) {
	if seqLen <= 0 || batchSize <= 0 {
		return nil, fmt.Errorf("loader: sequence length %d and batch size %d must be positive", seqLen, batchSize)
	}
	w := numWindows(s.Len(), seqLen)
	if w == 0 {
		return nil, fmt.Errorf("loader: %d tokens are too few for one window of %d+1", s.Len(), seqLen)
	}
	if w > 1<<32-1 {
		return nil, fmt.Errorf("loader: %d windows are too many", w)
	}
	l := &Loader{s: s, seqLen: seqLen, batchSize: batchSize, seed: seed, windows: w, buf: make([]int, seqLen+1)}
	l.shuffle()
	return l, nil
}

// shuffle computes the window permutation of l.epoch.
func (l *Loader) shuffle() {
	if len(l.perm) != l.windows {
		l.perm = make([]uint32, l.windows)
	}
	for i := range l.perm {
		l.perm[i] = uint32(i)
	}
	rng := newSplitMix(mix64(l.seed) ^ mix64(uint64(l.epoch)+0x632BE59BD9B4E019))
	for i := len(l.perm) - 1; i > 0; i-- {
		j := rng.intn(i + 1)
		l.perm[i], l.perm[j] = l.perm[j], l.perm[i]
	}
}

// Next returns the next batch; it never ends (epochs repeat).
func (l *Loader) Next() Batch {
	batch := newBatch(l.batchSize, l.seqLen)
	for b := 0; b < l.batchSize; b++ {
		if l.cursor == l.windows {
			l.epoch++
			l.cursor = 0
			l.shuffle()
		}
		w := int(l.perm[l.cursor])
		l.cursor++
		l.s.window(&batch, b, w*l.seqLen, l.buf)
	}
	return batch
}

// Epoch returns the current epoch (0 first).
func (l *Loader) Epoch() int { return l.epoch }

// WindowsPerEpoch returns the number of sequences in one epoch.
func (l *Loader) WindowsPerEpoch() int { return l.windows }

// State returns the loader's position.
func (l *Loader) State() LoaderState {
	return LoaderState{Seed: l.seed, Epoch: l.epoch, Cursor: l.cursor, SeqLen: l.seqLen,
		BatchSize: l.batchSize, Windows: l.windows, Tokens: l.s.Len()}
}

// Restore moves the loader to a saved position, adopting the state's seed,
// so that the following batches equal those the saved loader would have
// produced. The stream length and SeqLen must match; the batch size may
// differ (the position counts windows).
func (l *Loader) Restore(st LoaderState) error {
	switch {
	case st.SeqLen != l.seqLen:
		return fmt.Errorf("loader state: sequence length %d, loader has %d", st.SeqLen, l.seqLen)
	case st.Tokens != l.s.Len() || st.Windows != l.windows:
		return fmt.Errorf("loader state: %d tokens in %d windows, loader has %d in %d (different data?)", st.Tokens, st.Windows, l.s.Len(), l.windows)
	case st.Epoch < 0 || st.Cursor < 0 || st.Cursor > l.windows:
		return fmt.Errorf("loader state: invalid position epoch %d cursor %d", st.Epoch, st.Cursor)
	}
	l.seed, l.epoch, l.cursor = st.Seed, st.Epoch, st.Cursor
	l.shuffle()
	return nil
}

// EvalLoader yields the windows of a Stream in order, without shuffling,
// for validation loss: windows start at k*SeqLen and read SeqLen+1 tokens,
// so every token after the first is a target exactly once, except for the
// tail that does not fill a window. The last batch may hold fewer
// sequences.
type EvalLoader struct {
	s                 *Stream
	seqLen, batchSize int
	windows, next     int
	buf               []int
}

// NewEvalLoader returns an EvalLoader over s; s needs at least seqLen+1
// tokens.
func NewEvalLoader(s *Stream, seqLen, batchSize int) (*EvalLoader, error) {
	if seqLen <= 0 || batchSize <= 0 {
		return nil, fmt.Errorf("eval loader: sequence length %d and batch size %d must be positive", seqLen, batchSize)
	}
	w := numWindows(s.Len(), seqLen)
	if w == 0 {
		return nil, fmt.Errorf("eval loader: %d tokens are too few for one window of %d+1", s.Len(), seqLen)
	}
	return &EvalLoader{s: s, seqLen: seqLen, batchSize: batchSize, windows: w, buf: make([]int, seqLen+1)}, nil
}

// Next returns the next batch, or false after the last.
func (e *EvalLoader) Next() (Batch, bool) {
	if e.next >= e.windows {
		return Batch{}, false
	}
	n := min(e.batchSize, e.windows-e.next)
	batch := newBatch(n, e.seqLen)
	for b := 0; b < n; b++ {
		e.s.window(&batch, b, e.next*e.seqLen, e.buf)
		e.next++
	}
	return batch, true
}

// Reset restarts from the first window.
func (e *EvalLoader) Reset() { e.next = 0 }

// NumWindows returns the number of sequences per pass.
func (e *EvalLoader) NumWindows() int { return e.windows }
