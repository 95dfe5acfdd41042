package cmd

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/ssmax/ssmax/data"
)

func newTokenizeCommand() *cobra.Command {
	var (
		input, glob, output, modelDir, kind, text string
		eos                                       int
		asJSON                                    bool
	)
	c := &cobra.Command{
		Use:   "tokenize (--text TEXT | --data PATH --out FILE) (--model DIR | --tokenizer bytes|PATH)",
		Short: "Tokenize a text, or a corpus once into a token file",
		Long: `With --text, print the token ids of TEXT on one line, separated by spaces, as
Hugging Face's tokenizer(text)["input_ids"] gives them: with the special tokens
the tokenizer's post-processor adds (e.g. a BOS for Llama). --json prints
{"ids": [...], "tokens": [...]} with each id's vocabulary string.

With --data and --out, tokenize a text file or a directory tree (with --glob)
into an llm.c token file (256-int32 header; uint16 tokens when the vocabulary
fits, else uint32), so repeated training runs do not tokenize again. Each file
is one document ending with the tokenizer's EOS; no BOS is added.

The tokenizer is the model's (--model DIR or a Hugging Face model id in the
local cache: its tokenizer files, or the byte tokenizer it was trained with;
--tokenizer overrides it), or --tokenizer bytes (with --eos) or a tokenizer
path without a model. Only the checkpoint's config.json and tokenizer files are
read, not its weights.`,
		Example: `  ssmax tokenize --model ./llama --text 'Hello world'
  ssmax tokenize --model Qwen/Qwen2.5-0.5B --text 'Hello world' --json
  ssmax tokenize --model ./gpt2 --data ./corpus --glob '*.txt' --out corpus.bin
  ssmax tokenize --tokenizer bytes --eos 256 --data $(go env GOROOT)/src --glob '*.go' --out go.bin`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			textMode := c.Flags().Changed("text")
			switch {
			case textMode && (input != "" || output != ""):
				return fmt.Errorf("tokenize takes --text TEXT or --data PATH --out FILE, not both")
			case !textMode && (input == "" || output == ""):
				return fmt.Errorf("tokenize needs --text TEXT, or --data PATH and --out FILE")
			}
			var tok data.Tokenizer
			var err error
			switch {
			case modelDir != "":
				if modelDir, err = modelPath(c, modelDir); err != nil {
					return err
				}
				if tok, err = data.LoadModelTokenizer(modelDir, kind); err != nil {
					return fmt.Errorf("--model %s: %w", modelDir, err)
				}
			case kind == "bytes":
				tok = data.NewByteTokenizer(eos)
			case kind == "auto" || kind == "":
				return fmt.Errorf("tokenize needs --model DIR, or --tokenizer bytes or a tokenizer path")
			default:
				if tok, err = data.LoadTokenizer(".", kind, eos, -1); err != nil {
					return err
				}
			}
			w := c.OutOrStdout()
			if textMode {
				ids := tok.EncodeSpecial(text)
				if asJSON {
					enc := json.NewEncoder(w)
					enc.SetEscapeHTML(false)
					return enc.Encode(struct {
						IDs    []int    `json:"ids"`
						Tokens []string `json:"tokens"`
					}{append([]int{}, ids...), append([]string{}, tok.TokenStrings(ids)...)})
				}
				parts := make([]string, len(ids))
				for i, id := range ids {
					parts[i] = strconv.Itoa(id)
				}
				_, err := fmt.Fprintln(w, strings.Join(parts, " "))
				return err
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
	f.StringVar(&text, "text", "", "text to tokenize; its ids are printed")
	f.BoolVar(&asJSON, "json", false, "with --text: print {\"ids\": [...], \"tokens\": [...]}")
	f.StringVar(&modelDir, "model", "", "checkpoint (or Hugging Face model id) whose tokenizer to use")
	f.StringVar(&kind, "tokenizer", "auto", "auto (the model's), bytes, or a tokenizer.json, tokenizer.model or a directory with tokenizer files")
	f.IntVar(&eos, "eos", 256, "end-of-document id for --tokenizer bytes (256 adds an id after the bytes)")
	return c
}
