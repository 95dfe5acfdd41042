package cmd

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/ssmax/ssmax/eval"
	"github.com/ssmax/ssmax/model"
)

func newScoreCommand() *cobra.Command {
	var (
		modelDir, modelConfig, tokensFile string
		thetaScale                        float64
		asJSON                            bool
	)
	c := &cobra.Command{
		Use:   "score --model DIR --tokens FILE",
		Short: "Per-token next-token loss, mean loss and perplexity of a sequence",
		Long: `Feed one token sequence through the model (one document, causal) and report
the negative log-likelihood of each next token, their mean and the perplexity.
The tokens file holds whitespace-separated token ids. --rope-theta-scale
multiplies RoPE theta, to evaluate beyond the training length.`,
		Example: `  ssmax score --model ./gpt2-ssmax --tokens tokens.txt
  ssmax score --model ./llama --tokens tokens.txt --json --rope-theta-scale 50`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if modelDir == "" || tokensFile == "" {
				return fmt.Errorf("score needs --model DIR and --tokens FILE")
			}
			ids, err := readTokenIDs(tokensFile)
			if err != nil {
				return err
			}
			m, err := model.Open(modelDir, modelConfig, model.Options{RoPEThetaScale: thetaScale, Inference: true})
			if err != nil {
				return err
			}
			// Inference: no autograd graph, so a forward pass holds a few
			// activations; they are dropped layer after layer, so collect
			// early (unless GOGC says otherwise) to keep the peak near them.
			if os.Getenv("GOGC") == "" {
				debug.SetGCPercent(10)
			}
			s, err := eval.ScoreTokens(m, ids)
			if err != nil {
				return fmt.Errorf("%s: %w", tokensFile, err)
			}
			w := c.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			fmt.Fprintf(w, "tokens scored  %d\nmean loss      %.6f\nperplexity     %.4f\n", s.Tokens, s.MeanLoss, s.Perplexity)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&modelDir, "model", "", "checkpoint directory")
	f.StringVar(&modelConfig, "model-config", "", "config.json for a lone .safetensors --model")
	f.StringVar(&tokensFile, "tokens", "", "file of whitespace-separated token ids")
	f.Float64Var(&thetaScale, "rope-theta-scale", 1, "multiply RoPE theta by this factor")
	f.BoolVar(&asJSON, "json", false, "print JSON with mean_loss, perplexity and per-token nll")
	return c
}

// readTokenIDs reads whitespace-separated non-negative integers.
func readTokenIDs(path string) ([]int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fields := strings.Fields(string(data))
	ids := make([]int, len(fields))
	for i, f := range fields {
		v, err := strconv.Atoi(f)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%s: token %d: %q is not a token id", path, i, f)
		}
		ids[i] = v
	}
	return ids, nil
}
