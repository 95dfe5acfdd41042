package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ssmax/ssmax/generate"
)

func newGenerateCommand() *cobra.Command {
	var (
		o      generate.RunOptions
		seed   int64
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "generate --model DIR --prompt TEXT",
		Short: "Continue a prompt with a model, streaming the text",
		Long: `Encode the prompt with the checkpoint's tokenizer (with its special tokens, as
Hugging Face's tokenizer(text) does: a BOS for Llama-style tokenizers), feed it
through the model's KV cache and generate one token per step, printing the text
as it is decoded. Generation stops at an EOS token (the tokenizer's, and every
eos_token_id of config.json and generation_config.json), when the text reaches a
--stop string (not printed), or after --max-new-tokens tokens (or at the end of
a learned-position model's context).

--temperature 0 decodes greedily (argmax, the lowest id on ties). Otherwise the
next token is sampled: the logits are divided by the temperature, then top-k and
top-p (nucleus) keep the most likely tokens, as Hugging Face's warpers do, with
a random source seeded by --seed (the same seed gives the same text; without
--seed a random seed is drawn and logged).

--json prints one object instead of streaming: prompt_ids, ids (generated only,
an ending EOS included), text, stop ("eos", "stop" or "length"), and the seed
when sampling.`,
		Example: `  ssmax generate --model ./demo/base --prompt 'func main() {' --max-new-tokens 64
  ssmax generate --model Qwen/Qwen2.5-0.5B --prompt 'The capital of France is' --temperature 0
  ssmax generate --model ./run/final --prompt 'package ' --seed 7 --top-k 40 --top-p 0.95 --stop '\n\n' --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.Model == "" {
				return fmt.Errorf("generate needs --model DIR")
			}
			if !c.Flags().Changed("prompt") && o.Prompt == "" {
				return fmt.Errorf("generate needs --prompt TEXT")
			}
			var err error
			if o.Model, err = modelPath(c, o.Model); err != nil {
				return err
			}
			if seed >= 0 {
				o.Seed = uint64(seed)
			} else {
				o.Seed = rand.Uint64() >> 11 // fits a JSON number exactly
			}
			o.Logger = logger(c)
			if !o.Greedy() {
				o.Logger.Info("sampling", "seed", o.Seed)
			}
			w := c.OutOrStdout()
			if asJSON {
				res, err := generate.Run(c.Context(), o, nil)
				if err != nil {
					return err
				}
				enc := json.NewEncoder(w)
				enc.SetEscapeHTML(false)
				return enc.Encode(res)
			}
			res, err := generate.Run(c.Context(), o, w)
			if res != nil && res.Text != "" && !strings.HasSuffix(res.Text, "\n") && isTerminal(w) {
				io.WriteString(w, "\n")
			}
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&o.Model, "model", "", "checkpoint directory or Hugging Face model id (org/name[@revision]) in the local cache")
	f.StringVar(&o.Tokenizer, "tokenizer", "auto", "tokenizer: auto (the checkpoint's files, or bytes when it was trained on bytes), bytes, or a tokenizer path")
	f.StringVar(&o.Prompt, "prompt", "", "text to continue")
	f.IntVar(&o.MaxNewTokens, "max-new-tokens", 128, "most tokens to generate")
	f.Float64Var(&o.Temperature, "temperature", 0.8, "sampling temperature; 0 decodes greedily")
	f.IntVar(&o.TopK, "top-k", 0, "sample among the k most likely tokens (0: all)")
	f.Float64Var(&o.TopP, "top-p", 1, "sample among the most likely tokens whose probability reaches p (1: all)")
	f.Int64Var(&seed, "seed", -1, "random seed of the sampler (-1: a random seed, logged)")
	f.StringArrayVar(&o.Stop, "stop", nil, "stop when the generated text contains this string (repeatable); it is not printed")
	f.Float64Var(&o.RoPEThetaScale, "rope-theta-scale", 1, "multiply RoPE theta by this factor")
	f.BoolVar(&asJSON, "json", false, "print one JSON object (prompt_ids, ids, text, stop) instead of streaming")
	return c
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
