package demo

import (
	"context"
	"math"

	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/eval"
	"github.com/ssmax/ssmax/finetune"
	"github.com/ssmax/ssmax/model"
)

// lengthTable measures the mean loss at each context length of the
// fine-tuned softmax and SSMax models on the same held-out samples (the
// split finetune validated on), and their paired difference.
func lengthTable(ctx context.Context, softmax, ssmax string, o Options) (*LengthTable, error) {
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
	scale := o.RoPEThetaScale
	if scale <= 0 {
		scale = 1
	}
	t := &LengthTable{Lengths: o.Lengths, RoPEThetaScale: scale}
	var samples [2][][]float64 // [model][length][sample]
	for i, dir := range []string{softmax, ssmax} {
		m, err := model.Open(dir, "", model.Options{Inference: true, RoPEThetaScale: scale})
		if err != nil {
			return nil, err
		}
		t.TrainLen = m.Spec.Context
		res, err := eval.LossByLength(ctx, m, val, eval.LossByLengthOptions{Lengths: o.Lengths, Samples: o.Samples})
		if err != nil {
			return nil, err
		}
		row := make([]float64, len(o.Lengths))
		samples[i] = make([][]float64, len(o.Lengths))
		for j, p := range res.Points {
			row[j] = math.NaN()
			if p.LengthStats != nil {
				row[j] = p.MeanLoss
				samples[i][j] = p.SampleLoss
			}
		}
		if i == 0 {
			t.Softmax = row
		} else {
			t.SSMax = row
		}
		o.log("loss against context length measured for %s", dir)
	}
	for j := range o.Lengths {
		d, se := pairedDiff(samples[1][j], samples[0][j])
		t.Diff, t.SE = append(t.Diff, d), append(t.SE, se)
	}
	return t, nil
}

// pairedDiff is the mean of a[k]-b[k] and its standard error (NaN when
// the samples do not pair up or are fewer than two).
func pairedDiff(a, b []float64) (mean, se float64) {
	n := len(a)
	if n < 2 || len(b) != n {
		return math.NaN(), math.NaN()
	}
	for k := range a {
		mean += a[k] - b[k]
	}
	mean /= float64(n)
	var ss float64
	for k := range a {
		d := a[k] - b[k] - mean
		ss += d * d
	}
	return mean, math.Sqrt(ss/float64(n-1)) / math.Sqrt(float64(n))
}
