package eval

import (
	"fmt"
	"image/color"
	"io"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// pngDPI is the resolution of the PNG plots.
const pngDPI = 96

// drawRow draws plots side by side on a w×h PNG written to out.
func drawRow(out io.Writer, plots []*plot.Plot, w, h vg.Length) error {
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(pngDPI))
	dc := draw.New(img)
	tiles := draw.Tiles{
		Rows: 1, Cols: len(plots),
		PadX: vg.Centimeter, PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3,
		PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3,
	}
	canvases := plot.Align([][]*plot.Plot{plots}, tiles, dc)
	for i, p := range plots {
		p.Draw(canvases[0][i])
	}
	_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(out)
	return err
}

// intTicks are tick marks at the given values, labelled as integers.
func intTicks(vals []int) plot.ConstantTicks {
	var ts plot.ConstantTicks
	for _, v := range vals {
		ts = append(ts, plot.Tick{Value: float64(v), Label: strconv.Itoa(v)})
	}
	return ts
}

// addLine adds a line with points, the i-th color and shape, to p and its
// legend.
func addLine(p *plot.Plot, i int, name string, xys plotter.XYs) error {
	l, s, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	l.Color = plotutil.Color(i)
	s.Color = plotutil.Color(i)
	s.Shape = plotutil.Shape(i)
	p.Add(l, s)
	p.Legend.Add(name, l, s)
	return nil
}

// PlotLength draws length.png: on the left the mean loss against the
// evaluated length, on the right the loss against the context size
// (power-of-two buckets, plotted at their upper edge) at each model's
// longest evaluated length; one line per model, both x axes logarithmic.
func PlotLength(out io.Writer, results []*LengthResult) error {
	byLen, byPos := plot.New(), plot.New()
	byLen.Title.Text = "mean loss vs context length"
	byLen.X.Label.Text = "evaluated length (tokens)"
	byLen.Y.Label.Text = "mean loss (nats)"
	byPos.Title.Text = "loss vs position (longest length)"
	byPos.X.Label.Text = "context size n (bucket upper edge)"
	byPos.Y.Label.Text = "mean loss (nats)"
	var lengths, edges []int
	seenL, seenE := map[int]bool{}, map[int]bool{}
	drawn := 0
	for i, r := range results {
		var xy plotter.XYs
		var last *LengthPoint
		for k := range r.Points {
			p := &r.Points[k]
			if p.LengthStats == nil {
				continue
			}
			xy = append(xy, plotter.XY{X: float64(p.Length), Y: p.MeanLoss})
			if !seenL[p.Length] {
				seenL[p.Length] = true
				lengths = append(lengths, p.Length)
			}
			if last == nil || p.Length > last.Length {
				last = p
			}
		}
		if last == nil {
			continue
		}
		drawn++
		if err := addLine(byLen, i, r.Model, xy); err != nil {
			return err
		}
		var pos plotter.XYs
		for _, b := range last.Buckets {
			pos = append(pos, plotter.XY{X: float64(b.Hi), Y: b.MeanLoss})
			if !seenE[b.Hi] {
				seenE[b.Hi] = true
				edges = append(edges, b.Hi)
			}
		}
		if err := addLine(byPos, i, fmt.Sprintf("%s (L=%d)", r.Model, last.Length), pos); err != nil {
			return err
		}
	}
	if drawn == 0 {
		byLen.Title.Text += " (no length evaluated)"
	}
	for _, p := range []*plot.Plot{byLen, byPos} {
		p.X.Scale = plot.LogScale{}
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		legendRoom(p, len(results))
	}
	if len(lengths) > 0 {
		byLen.X.Tick.Marker = intTicks(lengths)
		byPos.X.Tick.Marker = intTicks(edges)
	} else {
		byLen.X.Min, byLen.X.Max = 1, 2
		byPos.X.Min, byPos.X.Max = 1, 2
	}
	return drawRow(out, []*plot.Plot{byLen, byPos}, 11*vg.Inch, 4.5*vg.Inch)
}

// legendRoom raises the top of p's y axis so that a top legend of n
// entries clears the data (about 6% of the height per entry).
func legendRoom(p *plot.Plot, n int) {
	lo, hi := p.Y.Min, p.Y.Max
	if !(hi > lo) {
		return
	}
	p.Y.Max = hi + (hi-lo)*0.07*float64(n+1)
}

// accuracyColor maps an accuracy in [0, 1] from red through yellow to green.
func accuracyColor(a float64) color.Color {
	red := [3]float64{215, 48, 39}
	yellow := [3]float64{254, 224, 139}
	green := [3]float64{26, 152, 80}
	from, to, t := red, yellow, 2*a
	if a > 0.5 {
		from, to, t = yellow, green, 2*a-1
	}
	var c [3]uint8
	for i := range c {
		c[i] = uint8(from[i] + t*(to[i]-from[i]) + 0.5)
	}
	return color.RGBA{c[0], c[1], c[2], 255}
}

// PlotNIAH draws niah.png: one heatmap per model (depth across, length up),
// each cell colored by its accuracy (red 0%, yellow 50%, green 100%, grey
// n/a) and labelled with it.
func PlotNIAH(out io.Writer, results []*NIAHResult) error {
	var plots []*plot.Plot
	for _, r := range results {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s: %s", r.Model, fmtPercent(r.Accuracy))
		p.X.Label.Text = "needle depth"
		p.Y.Label.Text = "length (tokens)"
		var xt, yt plot.ConstantTicks
		for j, d := range r.Depths {
			xt = append(xt, plot.Tick{Value: float64(j), Label: fmtDepth(d)})
		}
		for i, L := range r.Lengths {
			yt = append(yt, plot.Tick{Value: float64(i), Label: strconv.Itoa(L)})
		}
		labels := plotter.XYLabels{}
		for i := range r.Cells {
			for j, c := range r.Cells[i] {
				x, y := float64(j), float64(i)
				poly, err := plotter.NewPolygon(plotter.XYs{{X: x - .5, Y: y - .5}, {X: x + .5, Y: y - .5}, {X: x + .5, Y: y + .5}, {X: x - .5, Y: y + .5}})
				if err != nil {
					return err
				}
				poly.LineStyle.Color = color.White
				text := "n/a"
				if c.NA == "" {
					poly.Color = accuracyColor(c.Accuracy)
					text = fmtPercent(c.Accuracy)
				} else {
					poly.Color = color.Gray{Y: 200}
				}
				p.Add(poly)
				labels.XYs = append(labels.XYs, plotter.XY{X: x, Y: y})
				labels.Labels = append(labels.Labels, text)
			}
		}
		l, err := plotter.NewLabels(labels)
		if err != nil {
			return err
		}
		for i := range l.TextStyle {
			l.TextStyle[i].XAlign = draw.XCenter
			l.TextStyle[i].YAlign = draw.YCenter
		}
		p.Add(l)
		p.X.Tick.Marker, p.Y.Tick.Marker = xt, yt
		p.X.Min, p.X.Max = -.5, float64(len(r.Depths))-.5
		p.Y.Min, p.Y.Max = -.5, float64(len(r.Lengths))-.5
		p.X.Padding, p.Y.Padding = 0, 0
		plots = append(plots, p)
	}
	if len(plots) == 0 {
		return fmt.Errorf("no results to plot")
	}
	w := vg.Length(len(plots)) * 5 * vg.Inch
	return drawRow(out, plots, w, 4.5*vg.Inch)
}

// PlotAttention draws attention.png: for each layer and head (L0H0, L0H1,
// ...), one bar per model with the attention mass on the needle, and a
// dashed line per model at its uniform share (the mass of attention spread
// evenly over the prompt).
func PlotAttention(out io.Writer, results []*AttentionResult) error {
	if len(results) == 0 {
		return fmt.Errorf("no results to plot")
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("attention of the answer query on the needle (length %d, depth %s)", results[0].Length, fmtDepth(results[0].Depth))
	p.Y.Label.Text = "attention mass on needle"
	var names []string
	for l, row := range results[0].Mass {
		for h := range row {
			names = append(names, fmt.Sprintf("L%dH%d", l, h))
		}
	}
	width := vg.Points(min(40, 300/float64(max(1, len(names)*len(results)))))
	for i, r := range results {
		var vals plotter.Values
		for _, row := range r.Mass {
			vals = append(vals, row...)
		}
		vals = vals[:min(len(vals), len(names))]
		b, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return err
		}
		b.Color = plotutil.Color(i)
		b.LineStyle.Width = 0
		b.Offset = vg.Length(float64(i)-float64(len(results)-1)/2) * width
		mode := ""
		if len(r.Modes) > 0 {
			mode = " (" + r.Modes[0] + ")"
		}
		p.Add(b)
		p.Legend.Add(r.Model+mode, b)
		u, err := plotter.NewLine(plotter.XYs{{X: -.5, Y: r.Uniform}, {X: float64(len(names)) - .5, Y: r.Uniform}})
		if err != nil {
			return err
		}
		u.Color = plotutil.Color(i)
		u.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(u)
		if i == len(results)-1 {
			p.Legend.Add("uniform share", u)
		}
	}
	p.Legend.Top = true
	p.NominalX(names...)
	p.Y.Min = 0
	legendRoom(p, len(results))
	w := max(8*vg.Inch, vg.Length(len(names)*len(results))*vg.Points(22)+2*vg.Inch)
	return drawRow(out, []*plot.Plot{p}, w, 4.5*vg.Inch)
}
