package convert

import (
	"fmt"
	"strings"

	"github.com/ssmax/ssmax/checkpoint"
)

// modelCard is the README.md written beside the converted weights.
func modelCard(src *checkpoint.Checkpoint, res *Result, o *Options) []byte {
	var b strings.Builder
	b.WriteString("# SSMax checkpoint\n\n")
	from := "`" + src.Path + "`"
	if o.SrcName != "" && o.SrcName != src.Path {
		from = "`" + o.SrcName + "` (`" + src.Path + "`)"
	}
	switch {
	case o.Revert:
		fmt.Fprintf(&b, "Plain softmax checkpoint reverted by ssmax from %s: the SSMax parameters and the `ssmax` config object were removed.\n", from)
	default:
		sc := res.SSMax
		fmt.Fprintf(&b, "Converted by ssmax from %s to Scalable-Softmax attention (Nakanishi 2025, arXiv 2501.19399):\n", from)
		b.WriteString("attention logits are multiplied by ")
		switch sc.Variant {
		case "ssmax":
			b.WriteString("s·ln(n), with s learned per head")
		case "fixed":
			b.WriteString("ln(n), with no parameter")
		case "bias":
			b.WriteString("s·ln(n) + b, with s and b learned per head")
		}
		b.WriteString(", where n is the number of keys a query attends to.\n\n")
		fmt.Fprintf(&b, "- variant: `%s`\n- init: `%s`", sc.Variant, sc.Init)
		if sc.SInit != nil {
			fmt.Fprintf(&b, " (s = %.6g", *sc.SInit)
			if sc.BInit != nil {
				fmt.Fprintf(&b, ", b = %.6g", *sc.BInit)
			}
			b.WriteString(")")
		}
		fmt.Fprintf(&b, "\n- training length L: %d\n- converted layers: %v\n", sc.TrainLen, sc.Layers)
		if len(res.Added) > 0 {
			fmt.Fprintf(&b, "- new tensors: %d (`%s`, ...), F32, one value per head\n", len(res.Added), res.Added[0])
		}
		b.WriteString("\nEvery other tensor is copied unchanged")
		if o.DType != "" && o.DType != "keep" {
			fmt.Fprintf(&b, " (converted to %s)", o.DType)
		}
		b.WriteString(". The model needs an SSMax-aware runtime (ssmax finetune / eval / score); plain transformers ignores the new tensors and computes softmax attention.\n")
		if sc.Init == InitCalibrate && o.PerHead != nil && o.PerHead.Notes != "" {
			b.WriteString("\n" + strings.TrimRight(o.PerHead.Notes, "\n") + "\n")
		}
	}
	fmt.Fprintf(&b, "\nShards: %d, tensors: %d, data bytes: %d.\n", len(res.Shards), res.Tensors, res.Bytes)
	if o.Command != "" {
		fmt.Fprintf(&b, "\nCommand:\n\n```\n%s\n```\n", o.Command)
	}
	return []byte(b.String())
}
