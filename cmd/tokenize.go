package cmd

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/ssmax/ssmax/data"
)

func newTokenizeCommand() *cobra.Command {
	var (
		input, glob, output, modelDir, kind string
		eos                                 int
	)
	c := &cobra.Command{
		Use:   "tokenize --data PATH --out FILE (--model DIR | --tokenizer bytes)",
		Short: "Tokenize a text corpus once into a token file",
		Long: `Tokenize a text file or a directory tree (with --glob) into an llm.c token
file (256-int32 header; uint16 tokens when the vocabulary fits, else uint32), so
repeated training runs do not tokenize again. Each file is one document ending
with the tokenizer's EOS. The tokenizer is the model's (--model DIR: its
tokenizer files, or the byte tokenizer it was trained with), or --tokenizer
bytes with --eos.`,
		Example: `  ssmax tokenize --model ./gpt2 --data ./corpus --glob '*.txt' --out corpus.bin
  ssmax tokenize --tokenizer bytes --eos 256 --data $(go env GOROOT)/src --glob '*.go' --out go.bin`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if input == "" || output == "" {
				return fmt.Errorf("tokenize needs --data PATH and --out FILE")
			}
			var tok data.Tokenizer
			var err error
			switch {
			case modelDir != "":
				if tok, err = data.LoadModelTokenizer(modelDir, kind); err != nil {
					return fmt.Errorf("--model %s: %w", modelDir, err)
				}
			case kind == "bytes":
				tok = data.NewByteTokenizer(eos)
			default:
				if tok, err = data.LoadTokenizer(kind, "auto", eos, -1); err != nil {
					return err
				}
			}
			bar := newProgressBar(c, 0, "tokenizing", true)
			st, err := data.Tokenize(c.Context(), data.TokenizeOptions{
				Input: input, Glob: glob, Tokenizer: tok, Output: output,
				Progress: func(done, total int) {
					if bar != nil && bar.GetMax64() != int64(total) {
						bar.ChangeMax64(int64(total))
					}
					setProgress(bar, int64(done))
				},
			})
			finishProgress(bar)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "wrote %s: %d tokens from %d documents (%s tokenizer)\n", output, st.Tokens, st.Documents, tok.Name())
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&input, "data", "", "text file or directory")
	f.StringVar(&glob, "glob", "", "base-name glob for a directory, e.g. '*.go'")
	f.StringVar(&output, "out", "", "token file to write")
	f.StringVar(&modelDir, "model", "", "checkpoint whose tokenizer to use")
	f.StringVar(&kind, "tokenizer", "auto", "auto (the model's), bytes, or a directory with tokenizer files")
	f.IntVar(&eos, "eos", 256, "end-of-document id for --tokenizer bytes (256 adds an id after the bytes)")
	return c
}
