package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// errXY is points with symmetric y error bars (the seed standard
// deviation).
type errXY struct {
	plotter.XYs
	plotter.YErrors
}

// addSpread adds one configuration's mean line with ±sd error bars.
func addSpread(p *plot.Plot, i int, name string, xs []float64, st []stat, shift float64) error {
	var pts errXY
	for k, x := range xs {
		if st[k].N == 0 {
			continue
		}
		pts.XYs = append(pts.XYs, plotter.XY{X: x * shift, Y: st[k].Mean})
		pts.YErrors = append(pts.YErrors, struct{ Low, High float64 }{st[k].SD, st[k].SD})
	}
	if len(pts.XYs) == 0 {
		return nil
	}
	l, s, err := plotter.NewLinePoints(pts.XYs)
	if err != nil {
		return err
	}
	l.Color, s.Color, s.Shape = plotutil.Color(i), plotutil.Color(i), plotutil.Shape(i)
	eb, err := plotter.NewYErrorBars(pts)
	if err != nil {
		return err
	}
	eb.Color = plotutil.Color(i)
	p.Add(l, s, eb)
	p.Legend.Add(name, l, s)
	return nil
}

// lengthPlot plots a per-length metric of every configuration.
func lengthPlot(s *Summary, path, title, ylabel string, get func(*Config) map[string]vals, yMin, yMax float64) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "length (tokens)"
	p.Y.Label.Text = ylabel
	var ticks plot.ConstantTicks
	seen := map[int]bool{}
	for i, c := range configs {
		m := get(s.Configs[c])
		Ls := lengthKeys(m)
		var xs []float64
		var st []stat
		for _, L := range Ls {
			xs = append(xs, float64(L))
			st = append(st, at(m, L))
			if !seen[L] {
				seen[L] = true
				ticks = append(ticks, plot.Tick{Value: float64(L), Label: strconv.Itoa(L)})
			}
		}
		if err := addSpread(p, i, c, xs, st, 1+0.025*(float64(i)-2.5)); err != nil {
			return err
		}
	}
	if len(ticks) == 0 {
		return nil
	}
	sort.Slice(ticks, func(a, b int) bool { return ticks[a].Value < ticks[b].Value })
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = ticks
	if !math.IsNaN(yMin) {
		p.Y.Min = yMin
	}
	if !math.IsNaN(yMax) {
		p.Y.Max = yMax
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	return save(p, path)
}

func save(p *plot.Plot, path string) error {
	w, err := p.WriterTo(8*vg.Inch, 5*vg.Inch, "png")
	if err != nil {
		return err
	}
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	if _, err := w.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// plots writes DIR/plots/*.png.
func plots(out string, s *Summary) error {
	dir := filepath.Join(out, "plots")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	nan := math.NaN()
	if err := lengthPlot(s, filepath.Join(dir, "length_loss.png"), "loss at context sizes L/2+1..L (RoPE theta x50), mean ± sd over seeds",
		"nats/byte", func(c *Config) map[string]vals { return c.LengthLoss }, nan, nan); err != nil {
		return err
	}
	if err := lengthPlot(s, filepath.Join(dir, "retrieval.png"), "key retrieval exact match (RoPE theta x50), mean ± sd over seeds",
		"accuracy", func(c *Config) map[string]vals { return c.Retrieval }, 0, 1.05); err != nil {
		return err
	}
	if err := lengthPlot(s, filepath.Join(dir, "answer_loss.png"), "loss on the value digits (chance 2.303), mean ± sd over seeds",
		"nats/digit", func(c *Config) map[string]vals { return c.RetrievalAnswerLoss }, 0, nan); err != nil {
		return err
	}
	if err := lengthPlot(s, filepath.Join(dir, "key_attention.png"), "attention of the most retrieving head on the target record, mean ± sd",
		"attention mass", func(c *Config) map[string]vals { return c.KeyAttention }, 0, nan); err != nil {
		return err
	}
	// Training curves.
	p := plot.New()
	p.Title.Text = "validation loss during training, mean ± sd over seeds"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "nats/byte"
	for i, c := range configs {
		var steps []int
		for st := range s.Configs[c].curves {
			steps = append(steps, st)
		}
		sort.Ints(steps)
		var xs []float64
		var sts []stat
		for _, st := range steps {
			if st == 0 {
				continue
			}
			xs = append(xs, float64(st))
			sts = append(sts, summarise(s.Configs[c].curves[st]))
		}
		if err := addSpread(p, i, c, xs, sts, 1); err != nil {
			return err
		}
	}
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	if err := save(p, filepath.Join(dir, "val_loss.png")); err != nil {
		return fmt.Errorf("val_loss.png: %w", err)
	}
	return nil
}
