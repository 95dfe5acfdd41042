package cmd

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/schollz/progressbar/v3"
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
minute on the Go source tree of the installed Go, and fine-tune the unconverted
softmax checkpoint with the same steps, data order and settings, so that the two
are compared like with like. Print the validation loss of both before and after,
and their loss against context length up to four times the training length on
the same held-out samples, with the paired difference (SSMax minus softmax) and
its standard error over samples: a difference within two standard errors is
within the noise of the evaluation (and one fine-tuning run says nothing about
the spread over seeds; scripts/reproduce.sh measures that).`,
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
			var bar *progressbar.ProgressBar
			o.Hooks = finetune.Hooks{
				Log: o.Log,
				Start: func(first, total int, info string) {
					finishProgress(bar)
					bar = newProgressBar(c, int64(total), "fine-tuning", false)
				},
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
			if r.ValBefore != nil && r.ValAfter != nil && r.SoftmaxValBefore != nil && r.SoftmaxValAfter != nil {
				fmt.Fprintf(w, "validation loss (nats/byte) before -> after %d fine-tuning steps (same data and settings):\n", r.Steps)
				fmt.Fprintf(w, "  softmax  %.4f -> %.4f\n  SSMax    %.4f -> %.4f\n", *r.SoftmaxValBefore, *r.SoftmaxValAfter, *r.ValBefore, *r.ValAfter)
			}
			if t := r.Length; t != nil {
				fmt.Fprintf(w, "\nloss against context length, both fine-tuned (training length %d, RoPE theta x%g, %d samples per length):\n", t.TrainLen, t.RoPEThetaScale, o.Samples)
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "length\tsoftmax\tSSMax\tSSMax - softmax (± 2 SE)\t")
				for i, n := range t.Lengths {
					verdict := "n/a"
					switch {
					case math.IsNaN(t.Diff[i]):
					case t.WithinNoise(i):
						verdict = "within noise"
					case t.Diff[i] < 0:
						verdict = "SSMax lower"
					default:
						verdict = "softmax lower"
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%+.4f ± %.4f: %s\t\n", n, loss(t.Softmax[i]), loss(t.SSMax[i]), t.Diff[i], 2*t.SE[i], verdict)
				}
				tw.Flush()
			}
			fmt.Fprintf(w, "\nwrote:\n  %s  (bundled softmax checkpoint)\n  %s  (converted to SSMax)\n  %s  (SSMax fine-tuned; metrics in %s)\n  %s  (softmax fine-tuned; metrics in %s)\n",
				r.Base, r.Converted, r.Finetuned, filepath.Join(filepath.Dir(r.Finetuned), "metrics.jsonl"),
				r.SoftmaxFinetuned, filepath.Join(filepath.Dir(r.SoftmaxFinetuned), "metrics.jsonl"))
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
	f.Float64Var(&o.RoPEThetaScale, "rope-theta-scale", o.RoPEThetaScale, "multiply RoPE theta for the length evaluation (the paper used 50)")
	return c
}

func loss(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.4f", v)
}
