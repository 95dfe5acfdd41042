package eval

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// fmtCI formats an accuracy with its interval: "62% [48-75]".
func fmtCI(a Accuracy) string {
	return fmt.Sprintf("%s [%.0f-%.0f]", fmtPercent(a.Accuracy), 100*a.Lo, 100*a.Hi)
}

// WriteRetrievalTable writes each model's accuracy: one row per length
// with the accuracy over every depth and its 95% interval, the answer loss
// (nats per value token) and the accuracy at each depth.
func WriteRetrievalTable(w io.Writer, results []*RetrievalResult) error {
	for k, r := range results {
		if k > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s: exact match of %d-digit values, %d prompts per length, one query per depth each (chance loss %.3f)\n",
			r.Model, r.Task.ValueLen, r.Trials, 2.302585)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		head := []string{"length", "tokens", "accuracy [95% CI]", "answer loss"}
		for _, d := range r.Depths {
			head = append(head, "depth "+fmtDepth(d))
		}
		probed := false
		for _, row := range r.ByLength {
			probed = probed || row.Attention != nil
		}
		if probed {
			head = append(head, "key attention (head)", "uniform")
		}
		fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
		var na string
		for i, row := range r.ByLength {
			cells := []string{strconv.Itoa(row.Length)}
			if row.NA != "" {
				na = row.NA
				cells = append(cells, "n/a", "n/a", "n/a")
				for range r.Depths {
					cells = append(cells, "n/a")
				}
				if probed {
					cells = append(cells, "n/a", "n/a")
				}
			} else {
				cells = append(cells, strconv.FormatFloat(row.PromptTokens, 'f', 0, 64), fmtCI(row.Accuracy), fmtLoss(row.AnswerLoss))
				for _, c := range r.Cells[i] {
					cells = append(cells, fmtPercent(c.Accuracy.Accuracy))
				}
				if a := row.Attention; a != nil {
					cells = append(cells, fmt.Sprintf("%.3f (L%dH%d)", a.Max, a.MaxLayer, a.MaxHead), fmt.Sprintf("%.4f", a.Uniform))
				} else if probed {
					cells = append(cells, "", "")
				}
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if na != "" {
			fmt.Fprintf(w, "n/a: %s\n", na)
		}
	}
	return nil
}

// WriteRetrievalCSV writes one row per model, length and depth, plus a row
// with depth "all" per length.
func WriteRetrievalCSV(w io.Writer, results []*RetrievalResult) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"model", "length", "depth", "correct", "trials", "accuracy", "ci_lo", "ci_hi", "answer_loss", "na"})
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	row := func(model string, L int, depth string, a Accuracy, na string) {
		if na != "" {
			cw.Write([]string{model, strconv.Itoa(L), depth, "", "", "", "", "", "", na})
			return
		}
		cw.Write([]string{model, strconv.Itoa(L), depth, strconv.Itoa(a.Correct), strconv.Itoa(a.Trials),
			f(a.Accuracy), f(a.Lo), f(a.Hi), f(a.AnswerLoss), ""})
	}
	for _, r := range results {
		for i, l := range r.ByLength {
			row(r.Model, l.Length, "all", l.Accuracy, l.NA)
			for _, c := range r.Cells[i] {
				row(r.Model, c.Length, fmtDepth(c.Depth), c.Accuracy, c.NA)
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// SaveRetrieval writes retrieval.json, retrieval.csv and retrieval.png
// into dir.
func SaveRetrieval(dir string, results []*RetrievalResult) error {
	return writeFiles(dir, map[string]func(io.Writer) error{
		"retrieval.json": func(w io.Writer) error { return writeJSON(w, "retrieval", results) },
		"retrieval.csv":  func(w io.Writer) error { return WriteRetrievalCSV(w, results) },
		"retrieval.png":  func(w io.Writer) error { return PlotRetrieval(w, results) },
	}, []string{"retrieval.json", "retrieval.csv", "retrieval.png"})
}

// PlotRetrieval draws retrieval.png: on the left the accuracy over every
// depth against the prompt length with its 95% interval as error bars, on
// the right the answer loss (nats per value token) with chance (ln 10) as
// a dashed line; one line per model, x axes logarithmic.
func PlotRetrieval(out io.Writer, results []*RetrievalResult) error {
	if len(results) == 0 {
		return fmt.Errorf("no results to plot")
	}
	acc, loss := plot.New(), plot.New()
	acc.Title.Text = "key retrieval: exact match vs length"
	acc.X.Label.Text = "prompt length (tokens)"
	acc.Y.Label.Text = "accuracy (95% CI)"
	loss.Title.Text = "loss on the value tokens"
	loss.X.Label.Text = "prompt length (tokens)"
	loss.Y.Label.Text = "nats per value token"
	var lengths []int
	seen := map[int]bool{}
	for i, r := range results {
		var xy, lxy plotter.XYs
		var errs plotter.YErrors
		// Models are offset a little along x so that error bars do not
		// hide each other.
		shift := 1 + 0.02*(float64(i)-float64(len(results)-1)/2)
		for _, row := range r.ByLength {
			if row.NA != "" {
				continue
			}
			if !seen[row.Length] {
				seen[row.Length] = true
				lengths = append(lengths, row.Length)
			}
			x := float64(row.Length) * shift
			xy = append(xy, plotter.XY{X: x, Y: row.Accuracy.Accuracy})
			errs = append(errs, struct{ Low, High float64 }{row.Accuracy.Accuracy - row.Lo, row.Hi - row.Accuracy.Accuracy})
			lxy = append(lxy, plotter.XY{X: float64(row.Length), Y: row.AnswerLoss})
		}
		if len(xy) == 0 {
			continue
		}
		if err := addLine(acc, i, r.Model, xy); err != nil {
			return err
		}
		eb, err := plotter.NewYErrorBars(struct {
			plotter.XYer
			plotter.YErrorer
		}{xy, errs})
		if err != nil {
			return err
		}
		eb.Color = plotutil.Color(i)
		acc.Add(eb)
		if err := addLine(loss, i, r.Model, lxy); err != nil {
			return err
		}
	}
	if len(lengths) == 0 {
		return fmt.Errorf("no length evaluated")
	}
	chance, err := plotter.NewLine(plotter.XYs{{X: float64(lengths[0]), Y: 2.302585}, {X: float64(lengths[len(lengths)-1]), Y: 2.302585}})
	if err != nil {
		return err
	}
	chance.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	loss.Add(chance)
	loss.Legend.Add("chance (ln 10)", chance)
	acc.Y.Min, acc.Y.Max = 0, 1
	loss.Y.Min = 0
	for _, p := range []*plot.Plot{acc, loss} {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = intTicks(lengths)
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		legendRoom(p, len(results)+1)
	}
	return drawRow(out, []*plot.Plot{acc, loss}, 11*vg.Inch, 4.5*vg.Inch)
}
