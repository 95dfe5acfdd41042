package inspect

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/ssmax/ssmax/arch"
)

// WriteText renders the report for a terminal.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	row("path", "%s", r.Path)
	fam := string(r.Family)
	if len(r.Architectures) > 0 {
		fam += " (" + strings.Join(r.Architectures, ", ") + ")"
	}
	row("family", "%s", fam)
	row("layers", "%d", r.Layers)
	row("heads", "%d query, %d key/value, head_dim %d", r.Heads, r.KVHeads, r.HeadDim)
	row("hidden", "%d (intermediate %d)", r.Hidden, r.Intermediate)
	row("vocab", "%d", r.Vocab)
	row("context", "%d", r.Context)
	pos := string(r.Position)
	if r.RoPETheta > 0 {
		pos += fmt.Sprintf(", theta %g", r.RoPETheta)
		if r.RotaryDim != r.HeadDim {
			pos += fmt.Sprintf(", %d of %d dims rotated", r.RotaryDim, r.HeadDim)
		}
	}
	if sc := r.RoPEScaling; sc != nil {
		pos += ", scaling " + ropeScalingText(sc)
	}
	if r.LocalRoPETheta > 0 {
		pos += fmt.Sprintf("; sliding-window layers theta %g", r.LocalRoPETheta)
	}
	row("positions", "%s", pos)
	if len(r.Windows) > 0 {
		row("sliding windows", "%s", windowsText(r.Windows))
	}
	attn := fmt.Sprintf("logit scale %.6g", r.AttnScale)
	if r.AttnSoftcap > 0 {
		attn += fmt.Sprintf(", soft-cap %g", r.AttnSoftcap)
	}
	if r.QKNorm != "" {
		attn += fmt.Sprintf(", q/k norm per %s", r.QKNorm)
	}
	attn += ", projections " + string(r.QKV)
	row("attention layout", "%s", attn)
	norm := fmt.Sprintf("%s (eps %g) %s", r.Norm, r.NormEps, r.NormPlacement)
	if r.NormOffset != 0 {
		norm += fmt.Sprintf(", weights + %g", r.NormOffset)
	}
	row("norm", "%s, %s residual", norm, r.Residual)
	mlp := r.Activation
	if r.GatedMLP {
		mlp = "gated " + mlp
	}
	row("mlp", "%s", mlp)
	if r.EmbedScale != 0 || r.FinalSoftcap != 0 {
		var parts []string
		if r.EmbedScale != 0 {
			parts = append(parts, fmt.Sprintf("embeddings x %.6g", r.EmbedScale))
		}
		if r.FinalSoftcap != 0 {
			parts = append(parts, fmt.Sprintf("final logit soft-cap %g", r.FinalSoftcap))
		}
		row("scaling", "%s", strings.Join(parts, ", "))
	}
	row("tied embeddings", "%t", r.TiedEmbeddings)
	row("parameters", "%s (%d)", humanCount(r.Params), r.Params)
	row("tensors", "%d: %s", r.Tensors, dtypeList(r.DTypes))
	if r.ConfigDType != "" {
		row("config dtype", "%s", r.ConfigDType)
	}
	row("bytes on disk", "%s (%d)", humanBytes(r.BytesOnDisk), r.BytesOnDisk)
	row("shards", "%d: %s", len(r.Shards), strings.Join(r.Shards, ", "))
	tok := "none"
	if len(r.TokenizerFiles) > 0 {
		tok = strings.Join(r.TokenizerFiles, ", ")
	}
	row("tokenizer files", "%s", tok)
	if r.SSMax == nil {
		row("attention", "softmax (no SSMax state)")
	} else {
		s := r.SSMax
		row("attention", "SSMax variant %s, init %s, train_len %d, %d of %d layers", s.Variant, s.Init, s.TrainLen, len(s.Layers), r.Layers)
		for _, l := range s.PerLayer {
			var parts []string
			if l.S != nil {
				parts = append(parts, fmt.Sprintf("s min %.4f mean %.4f max %.4f", l.S.Min, l.S.Mean, l.S.Max))
			}
			if l.B != nil {
				parts = append(parts, fmt.Sprintf("b min %.4f mean %.4f max %.4f", l.B.Min, l.B.Mean, l.B.Max))
			}
			if len(parts) == 0 {
				parts = append(parts, "ln(n), no parameters")
			}
			row(fmt.Sprintf("  layer %d", l.Layer), "%s", strings.Join(parts, "; "))
		}
	}
	if len(r.Unexpected) > 0 {
		row("other tensors", "%d kept as is: %s", len(r.Unexpected), strings.Join(r.Unexpected, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.TensorList) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "\nNAME\tDTYPE\tSHAPE\tSHARD\tOFFSET\tBYTES")
		for _, t := range r.TensorList {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%d\t%d\n", t.Name, t.DType, t.Shape, t.Shard, t.Offset, t.Bytes)
		}
		return tw.Flush()
	}
	return nil
}

func dtypeList(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", m[k], k)
	}
	return strings.Join(parts, ", ")
}

func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ropeScalingText describes a RoPE scaling entry with the values its type
// uses.
func ropeScalingText(sc *arch.RoPEScaling) string {
	t := sc.Type
	if sc.Factor != 0 {
		t += fmt.Sprintf(" x%g", sc.Factor)
	}
	switch sc.Type {
	case arch.RoPELlama3:
		t += fmt.Sprintf(" (low %g, high %g, original %d)", sc.LowFreqFactor, sc.HighFreqFactor, sc.OriginalMaxPositions)
	case arch.RoPEYaRN, arch.RoPELongRoPE:
		if sc.OriginalMaxPositions > 0 {
			t += fmt.Sprintf(" (original %d)", sc.OriginalMaxPositions)
		}
	}
	return t
}

// windowsText lists layer windows compactly: "8 on layers 0, 2; full on 1, 3".
func windowsText(ws []int) string {
	byWindow := map[int][]string{}
	var order []int
	for l, w := range ws {
		if _, ok := byWindow[w]; !ok {
			order = append(order, w)
		}
		byWindow[w] = append(byWindow[w], fmt.Sprint(l))
	}
	var parts []string
	for _, w := range order {
		name := "full"
		if w > 0 {
			name = fmt.Sprint(w)
		}
		parts = append(parts, name+" on layers "+strings.Join(byWindow[w], ","))
	}
	return strings.Join(parts, "; ")
}
