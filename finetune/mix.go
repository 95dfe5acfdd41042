package finetune

import (
	"cmp"
	"fmt"
	"math"
	"sort"

	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/model"
	"github.com/ssmax/ssmax/retrieval"
)

// retrievalEvalSeed seeds the fixed retrieval documents whose answer loss
// is logged at every validation: the same documents for every run.
const retrievalEvalSeed = 0x5eed

// retrievalEvalDocs is the number of those documents.
const retrievalEvalDocs = 16

// mixMinDoc is the shortest retrieval document mixed into training: each
// mixed sequence packs documents of log-uniform lengths between it and the
// sequence length.
const mixMinDoc = 32

// isMixed reports whether the g-th training sequence of the run (counted
// over steps, micro-batches and rows) is a retrieval document, and its
// index among them: with fraction f, sequence g is one when
// floor((g+1)f) > floor(gf), which spreads them evenly (exactly f of every
// 1/f sequences when 1/f is whole).
func isMixed(g int64, f float64) (int64, bool) {
	if f <= 0 {
		return 0, false
	}
	hi := int64(math.Floor(float64(g+1) * f))
	lo := int64(math.Floor(float64(g) * f))
	return hi - 1, hi > lo
}

// nextBatch is the next training batch: the corpus loader's, with the
// sequences the retrieval mix selects replaced by fresh retrieval
// documents (retrieval.GeneratePacked: documents of 32 tokens to the whole
// sequence, packed with their boundaries kept). The documents are a pure
// function of the seed and the sequence's position in the run, so a
// resumed run trains on the same ones.
func (t *trainer) nextBatch(micro int) (data.Batch, error) {
	b := t.train.Next()
	c := &t.cfg
	if c.MixRetrieval <= 0 {
		return b, nil
	}
	T := b.SeqLen
	for row := 0; row < b.BatchSize; row++ {
		g := (int64(t.step)*int64(c.GradAccum)+int64(micro))*int64(b.BatchSize) + int64(row)
		idx, ok := isMixed(g, c.MixRetrieval)
		if !ok {
			continue
		}
		doc, err := retrieval.GeneratePacked(retrieval.DocSeed(c.Seed, idx), t.tok, c.RetrievalTask, T+1, cmp.Or(c.RetrievalMinDoc, mixMinDoc))
		if err != nil {
			return b, err
		}
		lo := row * T
		copy(b.Inputs[lo:lo+T], doc.IDs[:T])
		copy(b.Targets[lo:lo+T], doc.IDs[1:])
		segs := b.Segments[:0]
		for _, s := range b.Segments {
			if s <= lo || s >= lo+T {
				segs = append(segs, s)
			}
		}
		// A document's last token predicts nothing; the next starts a
		// segment.
		var added []int
		for _, e := range doc.Ends {
			if e < T {
				b.Targets[lo+e] = -1
				if e+1 < T {
					added = append(added, lo+e+1)
				}
			}
		}
		segs = append(segs, added...)
		sort.Ints(segs)
		b.Segments = segs
	}
	return b, nil
}

// retrievalBatch builds the fixed retrieval documents of validation: one
// sequence per document, targets only at the value tokens of queries.
func retrievalBatch(tok data.Tokenizer, task retrieval.Task, seqLen int) (model.Input, []int, error) {
	in := model.Input{}
	var targets []int
	for i := 0; i < retrievalEvalDocs; i++ {
		doc, err := retrieval.Generate(retrieval.DocSeed(retrievalEvalSeed, int64(i)), tok, evalTask(task), seqLen+1)
		if err != nil {
			return in, nil, err
		}
		in.Segments = append(in.Segments, len(in.IDs))
		in.IDs = append(in.IDs, doc.IDs[:seqLen]...)
		for j := 0; j < seqLen; j++ {
			if doc.Answer[j+1] {
				targets = append(targets, doc.IDs[j+1])
			} else {
				targets = append(targets, -1)
			}
		}
	}
	return in, targets, nil
}

// retrievalLoss is the mean loss on the value tokens of the fixed
// retrieval documents at the training length (chance: ln 10 per digit).
func (t *trainer) retrievalLoss() (float64, error) {
	if t.retrievalIn == nil {
		in, targets, err := retrievalBatch(t.tok, t.cfg.RetrievalTask, t.cfg.SeqLen)
		if err != nil {
			return 0, err
		}
		t.retrievalIn, t.retrievalTargets = &in, targets
	}
	loss, err := t.m.Loss(*t.retrievalIn, t.retrievalTargets)
	if err != nil {
		return 0, fmt.Errorf("retrieval validation: %w", err)
	}
	return loss.Value().Item().F64(), nil
}

// evalTask is the task of the validation documents: the training task with
// the queries after the records, as evaluation prompts have them.
func evalTask(t retrieval.Task) retrieval.Task {
	t.Interleave, t.Ordered = 0, 0
	return t
}
