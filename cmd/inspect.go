package cmd

import (
	"encoding/json"

	"github.com/spf13/cobra"
	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/inspect"
)

func newInspectCommand() *cobra.Command {
	var (
		opts     inspect.Options
		asJSON   bool
		resolved bool
		ro       arch.ResolveOptions
	)
	c := &cobra.Command{
		Use:   "inspect PATH|ORG/NAME[@REVISION]",
		Short: "Describe a checkpoint: architecture, shapes, dtypes, parameters, SSMax state",
		Long: `Describe a checkpoint directory (config.json + safetensors weights, single or
sharded) or a single .safetensors file with --model-config: family, layers,
heads, head_dim, hidden and vocabulary sizes, context, RoPE theta, dtypes,
parameter count, bytes on disk, shards, tokenizer files, and the SSMax state of
a converted checkpoint (variant, init, per-layer min/mean/max of s and b).
Every weight file is validated; a malformed one is an error naming the file,
the tensor and the rule it breaks. PATH may be a Hugging Face model id
(org/name or org/name@revision) in the local hub cache.`,
		Example: `  ssmax inspect ./gpt2
  ssmax inspect ./llama-ssmax --json
  ssmax inspect Qwen/Qwen2.5-0.5B
  ssmax inspect model.safetensors --model-config config.json --tensors`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			path, err := modelPath(c, args[0])
			if err != nil {
				return err
			}
			if resolved {
				return writeResolved(c, path, opts.ConfigPath, ro)
			}
			r, err := inspect.Run(path, opts)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			return r.WriteText(c.OutOrStdout())
		},
	}
	f := c.Flags()
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.BoolVar(&opts.Tensors, "tensors", false, "list every tensor with dtype, shape, shard and offset")
	f.StringVar(&opts.ConfigPath, "model-config", "", "config.json of the model (for a single .safetensors file without one beside it)")
	f.BoolVar(&resolved, "resolved", false, "print the resolved architecture as JSON (the spec.json of a torch run: every feature, tensor, window and RoPE table)")
	f.IntVar(&ro.SeqLen, "seq-len", 0, "with --resolved: the sequence length to tabulate RoPE for (default: the context)")
	f.Float64Var(&ro.RoPEThetaScale, "rope-theta-scale", 0, "with --resolved: multiply every RoPE theta")
	return c
}

// writeResolved prints the resolved spec of a checkpoint (arch.Resolve).
func writeResolved(c *cobra.Command, path, configPath string, o arch.ResolveOptions) error {
	ck, err := checkpoint.Open(path, checkpoint.Options{ConfigPath: configPath})
	if err != nil {
		return err
	}
	defer ck.Close()
	spec, err := arch.Load(ck)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(c.OutOrStdout())
	enc.SetIndent("", " ")
	return enc.Encode(spec.Resolve(o))
}
