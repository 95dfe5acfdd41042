package cmd

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
	"github.com/ssmax/ssmax/eval"
)

func newScoreCommand() *cobra.Command {
	var (
		o      eval.ScoreOptions
		asJSON bool
	)
	c := &cobra.Command{
		Use:   "score --model DIR (--tokens FILE | --text TEXT | --data FILE)",
		Short: "Per-token next-token loss, mean loss and perplexity of a sequence",
		Long: `Feed one sequence through the model (one document, causal) and report the
negative log-likelihood of each next token, their mean and the perplexity.

The sequence is a file of whitespace-separated token ids (--tokens), or a text
(--text) or text file (--data) encoded with the checkpoint's tokenizer (or
--tokenizer bytes|PATH) with its special tokens, as Hugging Face's
tokenizer(text) does (a BOS for Llama-style tokenizers).

A sequence longer than a window is scored with the sliding window of Hugging
Face's perplexity guide: windows of --window tokens (default: the model's
context, n_positions / max_position_embeddings) start every --stride tokens
(default: the window, i.e. disjoint windows); each window scores only its
tokens after the previous window's end, so every token is scored once, with the
context its window gives it (a window's first token has none: with disjoint
windows it is not scored; the sequence's first token never is). A smaller
stride gives more context per prediction and costs more passes. --no-window
scores the whole sequence in one pass (RoPE models beyond their context, e.g.
with --rope-theta-scale; learned positions refuse it).

--json prints tokens (the number scored), mean_loss, perplexity, nll (one entry
per token after the first, null for tokens no window scored), windows, window
and stride.`,
		Example: `  ssmax score --model ./gpt2-ssmax --tokens tokens.txt
  ssmax score --model ./demo/base --text 'func main() { fmt.Println("hi") }'
  ssmax score --model meta-llama/Llama-3.2-1B --data wiki.txt --stride 512 --json
  ssmax score --model ./llama --tokens tokens.txt --no-window --rope-theta-scale 50`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.Model == "" {
				return fmt.Errorf("score needs --model DIR")
			}
			if c.Flags().Changed("text") && o.Text == "" {
				return fmt.Errorf("--text is empty")
			}
			var err error
			if o.Model, err = modelPath(c, o.Model); err != nil {
				return err
			}
			// Inference: no autograd graph, so a forward pass holds a few
			// activations; they are dropped layer after layer, so collect
			// early (unless GOGC says otherwise) to keep the peak near them.
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(10)
			}
			s, err := eval.RunScore(c.Context(), o)
			if err != nil {
				return err
			}
			w := c.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			fmt.Fprintf(w, "tokens scored  %d\nmean loss      %.6f\nperplexity     %.4f\nwindows        %d (window %d, stride %d)\n",
				s.Tokens, s.MeanLoss, s.Perplexity, s.Windows, s.Window, s.Stride)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&o.Model, "model", "", "checkpoint directory or Hugging Face model id (org/name[@revision]) in the local cache")
	f.StringVar(&o.ModelConfig, "model-config", "", "config.json for a lone .safetensors --model")
	f.StringVar(&o.TokensFile, "tokens", "", "file of whitespace-separated token ids")
	f.StringVar(&o.Text, "text", "", "text to score, encoded with the model's tokenizer")
	f.StringVar(&o.DataFile, "data", "", "text file to score as one document, encoded with the model's tokenizer")
	f.StringVar(&o.Tokenizer, "tokenizer", "auto", "tokenizer for --text and --data: auto (the checkpoint's), bytes, or a tokenizer path")
	f.IntVar(&o.Window, "window", 0, "tokens per window (0: the model's context)")
	f.IntVar(&o.Stride, "stride", 0, "step between windows (0: the window length, i.e. disjoint windows)")
	f.BoolVar(&o.NoWindow, "no-window", false, "score the whole sequence in one forward pass")
	f.Float64Var(&o.RoPEThetaScale, "rope-theta-scale", 1, "multiply RoPE theta by this factor")
	f.BoolVar(&asJSON, "json", false, "print JSON: tokens, mean_loss, perplexity, nll, windows, window, stride")
	return c
}
