package demo

import (
	"context"
	"math"

	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/eval"
	"github.com/ssmax/ssmax/finetune"
	"github.com/ssmax/ssmax/model"
)

// lengthTable measures the mean loss at each context length of the base
// and the fine-tuned model, on the held-out part of the corpus (the same
// split finetune validated on).
func lengthTable(ctx context.Context, base, tuned string, o Options) (*LengthTable, error) {
	tok := data.NewByteTokenizer(256)
	ds, err := data.LoadDataset(ctx, data.DatasetOptions{Input: o.Data, Glob: o.Glob, Tokenizer: tok})
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	_, val, err := data.SplitDataset(ds, finetune.Defaults().ValFraction, bundledSeed)
	if err != nil {
		return nil, err
	}
	t := &LengthTable{Lengths: o.Lengths}
	for i, dir := range []string{base, tuned} {
		m, err := model.Open(dir, "", model.Options{Inference: true})
		if err != nil {
			return nil, err
		}
		t.TrainLen = m.Spec.Context
		res, err := eval.LossByLength(ctx, m, val, eval.LossByLengthOptions{Lengths: o.Lengths, Samples: o.Samples})
		if err != nil {
			return nil, err
		}
		row := make([]float64, len(o.Lengths))
		for j, p := range res.Points {
			row[j] = math.NaN()
			if p.LengthStats != nil {
				row[j] = p.MeanLoss
			}
		}
		if i == 0 {
			t.Base = row
		} else {
			t.Finetuned = row
		}
		o.log("loss against context length measured for %s", dir)
	}
	return t, nil
}
