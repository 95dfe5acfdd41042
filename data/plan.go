package data

import (
	"encoding/binary"
	"fmt"
	"io"
)

// NextWindows advances the loader by n sequences, exactly as Next does
// (n/BatchSize calls of Next move it as far), and appends to dst the index
// of each sequence's window without reading any token: window k holds the
// stream tokens [k·SeqLen, k·SeqLen+SeqLen+1), its inputs the first SeqLen
// and its targets the last SeqLen, cut at document ends as Next cuts them.
// Another engine given the stream's tokens and document ends (WriteTokens,
// DocEnds) rebuilds the batches of Next from these indices.
func (l *Loader) NextWindows(dst []uint32, n int) []uint32 {
	for i := 0; i < n; i++ {
		if l.cursor == l.windows {
			l.epoch++
			l.cursor = 0
			l.shuffle()
		}
		dst = append(dst, l.perm[l.cursor])
		l.cursor++
	}
	return dst
}

// DocEnds returns the stream offset just past each document (span) of s,
// in order: document k is [DocEnds[k-1], DocEnds[k]) (from 0 for k = 0).
func (s *Stream) DocEnds() []int64 {
	out := make([]int64, len(s.spans))
	for i := range out {
		out[i] = int64(s.cum[i+1])
	}
	return out
}

// WriteTokens writes the stream's tokens in stream order as little-endian
// unsigned integers of width bytes (2 or 4; every id must fit).
func (s *Stream) WriteTokens(w io.Writer, width int) error {
	if width != 2 && width != 4 {
		return fmt.Errorf("token width %d: want 2 or 4", width)
	}
	const chunk = 1 << 16
	buf := make([]int, chunk)
	out := make([]byte, 0, chunk*width)
	for off := 0; off < s.Len(); off += chunk {
		part := buf[:min(chunk, s.Len()-off)]
		s.read(part, off)
		out = out[:0]
		for _, t := range part {
			if t < 0 || (width == 2 && t >= 1<<16) || int64(t) >= 1<<32 {
				return fmt.Errorf("token id %d at stream offset %d does not fit %d bytes", t, off, width)
			}
			if width == 2 {
				out = binary.LittleEndian.AppendUint16(out, uint16(t))
			} else {
				out = binary.LittleEndian.AppendUint32(out, uint32(t))
			}
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
	}
	return nil
}
