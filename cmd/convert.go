package cmd

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/calibrate"
	"github.com/ssmax/ssmax/convert"
	"github.com/ssmax/ssmax/safetensors"
)

func newConvertCommand() *cobra.Command {
	var (
		o             convert.Options
		variant, size string
		s, b          float64
		cal           calibrate.Options
	)
	c := &cobra.Command{
		Use:   "convert SRC DST",
		Short: "Retrofit SSMax attention into a checkpoint",
		Long: `Stream a safetensors checkpoint (a directory, single file or sharded, or a lone
.safetensors file with --model-config) into a new checkpoint directory DST with
SSMax parameters added to each converted layer's attention:

  <attention prefix>.ssmax_s   F32 [num_attention_heads]   (variants ssmax, bias)
  <attention prefix>.ssmax_b   F32 [num_attention_heads]   (variant bias)

and an "ssmax" object in config.json. Every other tensor is copied byte for byte
(unless --dtype asks for another dtype), in the same order and shards; the
tokenizer and generation files are copied; a README.md model card records what
was done. Memory use does not grow with the model: tensors are streamed.

Variants multiply the attention logits of a query that sees n keys by
  ssmax   s*ln(n)        learned s per head
  fixed   ln(n)          no parameter
  bias    s*ln(n) + b    learned s and b per head

Initialisations:
  match      s = 1/ln(L), L = --train-len or the model's context: equals softmax at n = L
  const      s = --s VALUE
  identity   (bias only) s = 0, b = 1: exactly the original model at every position
  calibrate  s (and b) per head chosen on --calib-data: the values that keep the
             model's next-token loss on --calib-tokens tokens of that text (windows
             of L tokens) lowest, by Adam on s and b alone from match (or identity
             for bias, if better); never worse than match on that text. Needs the
             model loaded once (seconds to minutes on small models); the model
             card reports the losses before and after and the values chosen.

The output is written to a temporary directory beside DST and renamed into place;
on an error or an interrupt nothing is left at DST. SRC is never modified. SRC
may be a Hugging Face model id (org/name or org/name@revision) in the local hub
cache; DST then holds copies of the cached files, never links into the cache.`,
		Example: `  ssmax convert ./gpt2 ./gpt2-ssmax
  ssmax convert Qwen/Qwen2.5-0.5B ./qwen-ssmax
  ssmax convert ./llama ./llama-ssmax --variant bias --init identity
  ssmax convert ./qwen ./qwen-ssmax --init const --s 0.43 --layers 0-11 --dtype bf16 --shard-size 2GB
  ssmax convert ./gpt2-ssmax ./gpt2-again --reinit --variant fixed
  ssmax convert ./gpt2-ssmax ./gpt2-plain --revert
  ssmax convert ./gpt2 ./gpt2-cal --init calibrate --calib-data ./text --calib-tokens 16384`,
		Args: cobra.ExactArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			var err error
			if o.Src, err = modelPath(c, args[0]); err != nil {
				return err
			}
			o.SrcName = args[0]
			o.Dst = args[1]
			if o.Variant, err = attnscale.ParseSSMax(variant); err != nil {
				return fmt.Errorf("--variant: %w", err)
			}
			if c.Flags().Changed("s") {
				o.S = &s
			}
			if c.Flags().Changed("b") {
				o.B = &b
			}
			if size != "" {
				if o.ShardSize, err = safetensors.ParseSize(size); err != nil {
					return fmt.Errorf("--shard-size: %w", err)
				}
			}
			o.Command = commandLine(c, args)
			if o.Init == convert.InitCalibrate {
				cal.Model, cal.Variant, cal.TrainLen, cal.Layers = o.Src, o.Variant, o.TrainLen, o.Layers
				if o.ConfigPath != "" {
					return fmt.Errorf("--init calibrate reads a checkpoint directory, not a lone file with --model-config")
				}
				if o.S != nil || o.B != nil {
					return fmt.Errorf("--init calibrate chooses s and b: do not give --s or --b")
				}
				cal.Logger = logger(c)
				r, err := calibrate.Run(c.Context(), cal)
				if err != nil {
					return err
				}
				o.PerHead = r.PerHead()
				fmt.Fprintf(c.OutOrStdout(), "calibrated s%s per head on %d tokens in %.1f s: loss softmax %.4f, match %.4f, calibrated %.4f\n",
					map[bool]string{true: " and b", false: ""}[r.B != nil], r.Tokens, r.Seconds, r.LossSoftmax, r.LossMatch, r.LossCalibrated)
			}
			bar := newProgressBar(c, 0, "converting", true)
			o.Progress = func(done, total int64) {
				if bar != nil && bar.GetMax64() != total {
					bar.ChangeMax64(total)
				}
				setProgress(bar, done)
			}
			res, err := convert.Run(c.Context(), o)
			finishProgress(bar)
			if err != nil {
				return err
			}
			w := c.OutOrStdout()
			if res.SSMax == nil {
				fmt.Fprintf(w, "reverted %s to softmax: removed %d SSMax tensors\n", res.Dst, len(res.Dropped))
			} else {
				fmt.Fprintf(w, "converted %d layers to SSMax variant %s (init %s, train_len %d): added %d tensors\n",
					len(res.SSMax.Layers), res.SSMax.Variant, res.SSMax.Init, res.SSMax.TrainLen, len(res.Added))
			}
			fmt.Fprintf(w, "wrote %s: %d tensors, %d bytes, %d shard(s)\n", res.Dst, res.Tensors, res.Bytes, len(res.Shards))
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&variant, "variant", "ssmax", "SSMax variant: ssmax, fixed or bias")
	f.StringVar(&o.Init, "init", convert.InitMatch, "initialisation: match, const, identity or calibrate")
	f.StringVar(&cal.Data, "calib-data", "", "calibration text for --init calibrate: a file, a directory (with --calib-glob) or token files (.bin)")
	f.StringVar(&cal.Glob, "calib-glob", "", "base-name glob for a --calib-data directory, e.g. '*.go'")
	f.IntVar(&cal.Tokens, "calib-tokens", 16384, "calibration tokens read from the start of --calib-data")
	f.IntVar(&cal.Steps, "calib-steps", 40, "Adam steps on s (and b) for --init calibrate")
	f.StringVar(&cal.Tokenizer, "tokenizer", "auto", "tokenizer of --calib-data: auto (the checkpoint's files, or bytes when it was trained on bytes), bytes, or a tokenizer.json path")
	f.IntVar(&o.TrainLen, "train-len", 0, "training context L for --init match (default: the model's n_positions / max_position_embeddings)")
	f.Float64Var(&s, "s", 0, "value of s for --init const")
	f.Float64Var(&b, "b", 0, "value of b for the bias variant (default 0)")
	f.StringVar(&o.Layers, "layers", "", "layers to convert, e.g. 0-5,10 (default all; others keep softmax)")
	f.StringVar(&o.DType, "dtype", "keep", "dtype of the copied weights: keep, f32, f16 or bf16 (SSMax tensors are always F32)")
	f.StringVar(&size, "shard-size", "", "maximum shard size, e.g. 5GB, 500MB, 2GiB (default: keep the source's sharding)")
	f.BoolVar(&o.Force, "force", false, "replace DST if it exists")
	f.BoolVar(&o.Reinit, "reinit", false, "convert an already converted checkpoint again with new settings")
	f.BoolVar(&o.Revert, "revert", false, "write the plain softmax checkpoint: drop SSMax tensors and the config object")
	f.StringVar(&o.ConfigPath, "model-config", "", "config.json of the model (for a lone .safetensors SRC)")
	return c
}
