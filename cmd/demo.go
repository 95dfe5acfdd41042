package cmd

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/ssmax/ssmax/demo"
	"github.com/ssmax/ssmax/finetune"
)

func newDemoCommand() *cobra.Command {
	o := demo.Defaults()
	var lengths string
	c := &cobra.Command{
		Use:   "demo",
		Short: "Run the main job on the bundled tiny checkpoint and the Go source tree",
		Long: `Take the bundled tiny softmax checkpoint (a GPT-2 with rotary positions, 4
layers, d 128, reading bytes, pretrained by ssmax pretrain on the Go source
tree), convert it to SSMax (variant ssmax, init match), fine-tune it for about a
minute on the Go source tree of the installed Go, and print the validation loss
before and after and the loss against context length, up to four times the
training length, for the original and the fine-tuned model.`,
		Example: `  go run . demo
  ssmax demo --out /tmp/demo --steps 120`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.Lengths = nil
			for _, f := range strings.Split(lengths, ",") {
				if f = strings.TrimSpace(f); f == "" {
					continue
				}
				n, err := strconv.Atoi(f)
				if err != nil || n < 2 {
					return fmt.Errorf("--lengths: %q is not a length", f)
				}
				o.Lengths = append(o.Lengths, n)
			}
			log := logger(c)
			o.Log = func(msg string) { log.Info(msg) }
			bar := newProgressBar(c, int64(o.Steps), "fine-tuning", false)
			o.Hooks = finetune.Hooks{
				Log: o.Log,
				Step: func(m finetune.Metrics, total int) {
					if bar != nil {
						bar.Describe(fmt.Sprintf("loss %.3f  %.0f tok/s", m.Loss, m.TokensPerSec))
					}
					setProgress(bar, int64(m.Step))
				},
			}
			r, err := demo.Run(c.Context(), o)
			finishProgress(bar)
			if err != nil {
				return err
			}
			w := c.OutOrStdout()
			if r.ValBefore != nil && r.ValAfter != nil {
				fmt.Fprintf(w, "validation loss (nats/byte) of the converted model: %.4f before, %.4f after %d fine-tuning steps\n", *r.ValBefore, *r.ValAfter, r.Steps)
			}
			if t := r.Length; t != nil {
				fmt.Fprintf(w, "\nloss against context length (training length %d):\n", t.TrainLen)
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "length\tsoftmax (bundled)\tSSMax (fine-tuned)")
				for i, n := range t.Lengths {
					fmt.Fprintf(tw, "%d\t%s\t%s\n", n, loss(t.Base[i]), loss(t.Finetuned[i]))
				}
				tw.Flush()
			}
			fmt.Fprintf(w, "\nwrote:\n  %s  (bundled softmax checkpoint)\n  %s  (converted to SSMax)\n  %s  (fine-tuned; metrics in %s)\n",
				r.Base, r.Converted, r.Finetuned, strings.TrimSuffix(r.Finetuned, "/final")+"/metrics.jsonl")
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&o.Out, "out", o.Out, "output directory (an earlier demo's output is replaced)")
	f.StringVar(&o.Data, "data", o.Data, "fine-tuning corpus")
	f.StringVar(&o.Glob, "glob", o.Glob, "base-name glob for --data")
	f.IntVar(&o.Steps, "steps", o.Steps, "fine-tuning steps")
	f.StringVar(&lengths, "lengths", "128,256,512,1024", "context lengths of the length evaluation (empty: skip)")
	f.IntVar(&o.Samples, "samples", o.Samples, "samples per length")
	return c
}

func loss(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.4f", v)
}
