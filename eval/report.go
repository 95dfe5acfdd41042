package eval

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/ssmax/ssmax/internal/atomicfile"
)

// ModelLabels returns a short, distinct label for each model path: its base
// name, with parent directories prepended while labels collide or the base
// is a training run's output name (final, step_N), e.g. "base/final".
func ModelLabels(paths []string) []string {
	parts := make([][]string, len(paths))
	depth := make([]int, len(paths))
	for i, p := range paths {
		clean := filepath.ToSlash(filepath.Clean(p))
		parts[i] = strings.Split(strings.Trim(clean, "/"), "/")
		depth[i] = 1
		if base := parts[i][len(parts[i])-1]; base == "final" || strings.HasPrefix(base, "step_") {
			depth[i] = 2
		}
	}
	label := func(i int) string {
		ps := parts[i]
		return strings.Join(ps[max(0, len(ps)-depth[i]):], "/")
	}
	for changed := true; changed; {
		changed = false
		seen := map[string][]int{}
		for i := range paths {
			seen[label(i)] = append(seen[label(i)], i)
		}
		for _, idx := range seen {
			if len(idx) < 2 {
				continue
			}
			for _, i := range idx {
				if depth[i] < len(parts[i]) {
					depth[i]++
					changed = true
				}
			}
		}
	}
	out := make([]string, len(paths))
	for i := range paths {
		out[i] = label(i)
	}
	return out
}

// fmtLoss formats a loss for tables.
func fmtLoss(x float64) string { return strconv.FormatFloat(x, 'f', 4, 64) }

// lengthColumns returns the bucket columns of the results: the buckets of
// the longest evaluated length (a shorter length's last bucket may be
// truncated, e.g. 257-300, and is shown in the column of its full bucket).
func lengthColumns(results []*LengthResult) []Bucket {
	var cols []Bucket
	for _, r := range results {
		for _, p := range r.Points {
			if p.LengthStats != nil && len(p.Buckets) > len(cols) {
				cols = PositionBuckets(FirstBucket << (len(p.Buckets) - 1))
			}
		}
	}
	return cols
}

// WriteLengthTable writes the loss-versus-length table: one row per model
// and length with the overall mean loss and the mean loss of each
// power-of-two context bucket (n/a where not evaluated).
func WriteLengthTable(w io.Writer, results []*LengthResult) error {
	cols := lengthColumns(results)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"model", "length", "samples", "source", "mean"}
	for _, b := range cols {
		head = append(head, b.String())
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	notes := map[string]bool{}
	var order []string
	for _, r := range results {
		for _, p := range r.Points {
			row := []string{r.Model, strconv.Itoa(p.Length)}
			if p.LengthStats == nil {
				row = append(row, "-", "-", "n/a")
				for range cols {
					row = append(row, "n/a")
				}
				note := fmt.Sprintf("n/a: %s: %s", r.Model, p.NA)
				if !notes[note] {
					notes[note] = true
					order = append(order, note)
				}
			} else {
				row = append(row, strconv.Itoa(len(p.Offsets)), p.Source, fmtLoss(p.MeanLoss))
				for i := range cols {
					if i < len(p.Buckets) {
						row = append(row, fmtLoss(p.Buckets[i].MeanLoss))
					} else {
						row = append(row, "")
					}
				}
			}
			fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range order {
		fmt.Fprintln(w, n)
	}
	return nil
}

// WriteLengthCSV writes the results in long form: one row per model, length
// and bucket, plus a row with bucket "all" for the overall mean (the only
// row of a length that is n/a, with the reason in column na).
func WriteLengthCSV(w io.Writer, results []*LengthResult) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"model", "length", "bucket", "lo", "hi", "mean_loss", "count", "samples", "source", "na"})
	for _, r := range results {
		for _, p := range r.Points {
			L := strconv.Itoa(p.Length)
			if p.LengthStats == nil {
				cw.Write([]string{r.Model, L, "all", "1", L, "", "", "", "", p.NA})
				continue
			}
			k := strconv.Itoa(len(p.Offsets))
			loss := strconv.FormatFloat(p.MeanLoss, 'g', 10, 64)
			cw.Write([]string{r.Model, L, "all", "1", L, loss, strconv.Itoa(len(p.Offsets) * p.Length), k, p.Source, ""})
			for _, b := range p.Buckets {
				cw.Write([]string{r.Model, L, b.String(), strconv.Itoa(b.Lo), strconv.Itoa(b.Hi),
					strconv.FormatFloat(b.MeanLoss, 'g', 10, 64), strconv.Itoa(b.Count), k, p.Source, ""})
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// fmtPercent formats an accuracy as a whole percentage.
func fmtPercent(x float64) string { return strconv.FormatFloat(100*x, 'f', 0, 64) + "%" }

// fmtDepth formats a depth.
func fmtDepth(d float64) string { return strconv.FormatFloat(d, 'g', 4, 64) }

// WriteNIAHTable writes each model's accuracy grid: rows are lengths,
// columns depths.
func WriteNIAHTable(w io.Writer, results []*NIAHResult) error {
	for k, r := range results {
		if k > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s: accuracy %s over %d trials per cell\n", r.Model, fmtPercent(r.Accuracy), r.Trials)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		head := []string{"length \\ depth"}
		for _, d := range r.Depths {
			head = append(head, fmtDepth(d))
		}
		fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
		var na string
		for i, L := range r.Lengths {
			row := []string{strconv.Itoa(L)}
			for _, c := range r.Cells[i] {
				if c.NA != "" {
					row = append(row, "n/a")
					na = c.NA
				} else {
					row = append(row, fmtPercent(c.Accuracy))
				}
			}
			fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
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

// WriteNIAHCSV writes one row per model, length and depth.
func WriteNIAHCSV(w io.Writer, results []*NIAHResult) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"model", "length", "depth", "correct", "trials", "accuracy", "na"})
	for _, r := range results {
		for i := range r.Cells {
			for _, c := range r.Cells[i] {
				acc := ""
				if c.NA == "" {
					acc = strconv.FormatFloat(c.Accuracy, 'g', 6, 64)
				}
				cw.Write([]string{r.Model, strconv.Itoa(c.Length), fmtDepth(c.Depth), strconv.Itoa(c.Correct), strconv.Itoa(c.Trials), acc, c.NA})
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteAttentionTable writes the attention mass on the needle: one row per
// layer and head, one column per model (side by side), after a line per
// model with its prompt and uniform baseline.
func WriteAttentionTable(w io.Writer, results []*AttentionResult) error {
	layers, heads := 0, 0
	for _, r := range results {
		fmt.Fprintf(w, "%s: length %d, depth %s (needle at %.3f), needle %.1f tokens, uniform share %.4f, first answer digit right in %d/%d trials\n",
			r.Model, r.Length, fmtDepth(r.Depth), r.ActualDepth, r.NeedleTokens, r.Uniform, r.FirstTokenCorrect, r.Trials)
		layers = max(layers, len(r.Mass))
		for _, l := range r.Mass {
			heads = max(heads, len(l))
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"layer", "head"}
	for _, r := range results {
		mode := "mixed"
		if len(r.Modes) > 0 {
			mode = r.Modes[0]
			for _, m := range r.Modes {
				if m != mode {
					mode = "mixed"
				}
			}
		}
		head = append(head, r.Model+" ("+mode+")")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for l := 0; l < layers; l++ {
		for h := 0; h < heads; h++ {
			row := []string{strconv.Itoa(l), strconv.Itoa(h)}
			for _, r := range results {
				if l < len(r.Mass) && h < len(r.Mass[l]) {
					row = append(row, strconv.FormatFloat(r.Mass[l][h], 'f', 4, 64))
				} else {
					row = append(row, "")
				}
			}
			fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
		}
	}
	return tw.Flush()
}

// WriteAttentionCSV writes one row per model, layer and head.
func WriteAttentionCSV(w io.Writer, results []*AttentionResult) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"model", "layer", "head", "mode", "needle_mass", "uniform", "length", "depth"})
	for _, r := range results {
		for l, row := range r.Mass {
			for h, x := range row {
				cw.Write([]string{r.Model, strconv.Itoa(l), strconv.Itoa(h), r.Modes[l], strconv.FormatFloat(x, 'g', 8, 64),
					strconv.FormatFloat(r.Uniform, 'g', 8, 64), strconv.Itoa(r.Length), fmtDepth(r.Depth)})
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// report is the JSON document of an evaluation.
type report[T any] struct {
	Eval   string `json:"eval"`
	Models []T    `json:"models"`
}

// writeJSON writes {"eval": kind, "models": results}, indented.
func writeJSON[T any](w io.Writer, kind string, results []T) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(report[T]{Eval: kind, Models: results})
}

// writeFiles writes each named file into dir (created if needed) with
// package atomicfile.
func writeFiles(dir string, files map[string]func(io.Writer) error, order []string) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return fmt.Errorf("--out %s: %w", dir, err)
	}
	for _, name := range order {
		var buf bytes.Buffer
		if err := files[name](&buf); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, name), buf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// SaveLength writes length.json, length.csv and length.png into dir.
func SaveLength(dir string, results []*LengthResult) error {
	return writeFiles(dir, map[string]func(io.Writer) error{
		"length.json": func(w io.Writer) error { return writeJSON(w, "length", results) },
		"length.csv":  func(w io.Writer) error { return WriteLengthCSV(w, results) },
		"length.png":  func(w io.Writer) error { return PlotLength(w, results) },
	}, []string{"length.json", "length.csv", "length.png"})
}

// SaveNIAH writes niah.json, niah.csv and niah.png into dir.
func SaveNIAH(dir string, results []*NIAHResult) error {
	return writeFiles(dir, map[string]func(io.Writer) error{
		"niah.json": func(w io.Writer) error { return writeJSON(w, "niah", results) },
		"niah.csv":  func(w io.Writer) error { return WriteNIAHCSV(w, results) },
		"niah.png":  func(w io.Writer) error { return PlotNIAH(w, results) },
	}, []string{"niah.json", "niah.csv", "niah.png"})
}

// SaveAttention writes attention.json, attention.csv and attention.png into
// dir.
func SaveAttention(dir string, results []*AttentionResult) error {
	return writeFiles(dir, map[string]func(io.Writer) error{
		"attention.json": func(w io.Writer) error { return writeJSON(w, "attention", results) },
		"attention.csv":  func(w io.Writer) error { return WriteAttentionCSV(w, results) },
		"attention.png":  func(w io.Writer) error { return PlotAttention(w, results) },
	}, []string{"attention.json", "attention.csv", "attention.png"})
}
