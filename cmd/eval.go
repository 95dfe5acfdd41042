package cmd

import (
	"fmt"
	"io"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/ssmax/ssmax/eval"
	"github.com/ssmax/ssmax/finetune"
)

// registerCheckpointFlags registers the options every eval subcommand
// shares: the models and how to read them, and --out.
func registerCheckpointFlags(fs *pflag.FlagSet, ck *eval.Checkpoints, out *string) {
	fs.StringSliceVar(&ck.Models, "model", nil, "checkpoint directory or Hugging Face model id (org/name[@revision]) in the local cache (repeat, or comma-separate, for several models)")
	fs.Float64Var(&ck.RoPEThetaScale, "rope-theta-scale", 1, "multiply RoPE theta by this factor (the paper used 50 beyond the training length)")
	fs.StringVar(&ck.Tokenizer, "tokenizer", "auto", "tokenizer: auto (the checkpoint's files, or bytes when it was trained on bytes), bytes, or a tokenizer.json path")
	fs.StringVar(out, "out", "", "directory for the JSON, CSV and PNG reports")
}

// registerNeedleFlags registers the prompt options of niah and attention.
func registerNeedleFlags(fs *pflag.FlagSet, n *eval.NeedleOptions, trials int) {
	fs.StringVar(&n.Haystack, "haystack", "", "haystack text: a file or a directory (with --glob)")
	fs.StringVar(&n.Glob, "glob", "", "base-name glob for a --haystack directory, e.g. '*.go'")
	fs.StringVar(&n.Needle, "needle", eval.DefaultNeedle, "needle template; {number} is replaced by the random number")
	fs.StringVar(&n.Question, "question", eval.DefaultQuestion, "question that ends the prompt; the model continues it with the number")
	fs.IntVar(&n.Digits, "digits", 5, "digits of the needle's number")
	fs.IntVar(&n.Trials, "trials", trials, "prompts per cell, each with its own number and haystack start")
	fs.Uint64Var(&n.Seed, "seed", 1, "seed of the numbers and haystack starts (the same for every model)")
}

// evalReport is the result of eval.Length, eval.NIAH or eval.Attention.
type evalReport interface {
	WriteTable(w io.Writer) error
	Save(dir string) ([]string, error)
}

// runEval runs one evaluation: it takes the lock of --out (one run per
// output directory), gives ck the command's logger and a progress bar per
// model (described by kind and the model's label), calls evaluate, prints
// the report's table and, with --out, writes its files.
func runEval(c *cobra.Command, kind string, ck *eval.Checkpoints, out string, evaluate func() (evalReport, error)) error {
	ck.Logger = logger(c)
	// Models are labelled by what was given (a model id's name, not its
	// snapshot hash) and read from where it resolves.
	ck.Labels = eval.ModelLabels(ck.Models)
	var err error
	if ck.Models, err = modelPaths(c, ck.Models); err != nil {
		return err
	}
	var (
		bar     *progressbar.ProgressBar
		current string
	)
	if out != "" {
		release, err := eval.LockOut(out)
		if err != nil {
			return err
		}
		defer release()
	}
	ck.Progress = func(model string, done, total int) {
		if bar == nil || model != current {
			finishProgress(bar)
			bar, current = newProgressBar(c, int64(total), kind+" "+model, false), model
		}
		setProgress(bar, int64(done))
	}
	rep, err := evaluate()
	finishProgress(bar)
	if err != nil {
		return err
	}
	w := c.OutOrStdout()
	if err := rep.WriteTable(w); err != nil {
		return err
	}
	if out != "" {
		files, err := rep.Save(out)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "wrote %s\n", strings.Join(files, ", "))
	}
	return nil
}

// newEvalCommand is "ssmax eval" with its subcommands length, niah and
// attention.
func newEvalCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "eval",
		Short: "Long-context evaluations: loss vs length, needle in a haystack, attention on the needle",
		Long: `Evaluate checkpoints' long-context behaviour, as in the SSMax paper:

  length     mean loss per position bucket for contexts up to each length
  niah       needle-in-a-haystack retrieval accuracy per length and depth
  attention  the attention each layer and head puts on the needle
  retrieval  exact-match key retrieval (synthetic key-value records) per length and depth

Each takes one or more --model directories (labelled by their base name), prints
a table and, with --out DIR, writes JSON, CSV and a PNG plot there. Models with
learned positions report n/a beyond their context; RoPE models can be read
beyond their training length with --rope-theta-scale (the paper used 50).`,
		Args: cobra.NoArgs,
	}
	c.AddCommand(newEvalLengthCommand(), newEvalNIAHCommand(), newEvalAttentionCommand(), newEvalRetrievalCommand())
	return c
}

func newEvalLengthCommand() *cobra.Command {
	var (
		o   eval.LengthOptions
		out string
	)
	d := finetune.Defaults()
	c := &cobra.Command{
		Use:   "length --model DIR [--model DIR2 ...] --data PATH",
		Short: "Mean loss per position bucket for contexts up to each length",
		Long: `For each length L, take --samples samples of L+1 tokens of held-out text, run
one forward pass per sample (one document: a query at position p sees n = p+1
keys) and report the mean next-token loss in power-of-two buckets of context
size n (1-64, 65-128, 129-256, ...) and overall.

Held-out text: the validation documents of --data, split exactly as training
splits it (--val-fraction and --seed default to the trainer's, so evaluating on
the training corpus uses the documents training held out); --val-fraction 0
uses all of --data.

Samples (--source): "documents" starts each sample at the start of a document
of at least L+1 tokens; "concat" reads disjoint windows of the documents laid
end to end, their EOS tokens kept, as ONE document with no segment boundary
(attention and n run across document ends); "auto" (default) uses documents
when at least --samples are long enough for L, concat otherwise. Lengths
beyond a model's learned positions are n/a.`,
		Example: `  ssmax eval length --model ./base/final --model ./ssmax/final --data $(go env GOROOT)/src --glob '*.go' \
      --lengths 128,256,512,1024,2048 --rope-theta-scale 50 --out ./eval`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runEval(c, "length", &o.Checkpoints, out, func() (evalReport, error) { return eval.Length(c.Context(), o) })
		},
	}
	fs := c.Flags()
	registerCheckpointFlags(fs, &o.Checkpoints, &out)
	fs.StringVar(&o.Data, "data", "", "held-out text: a file, a directory (with --glob), or token files (.bin)")
	fs.StringVar(&o.Glob, "glob", "", "base-name glob for a --data directory, e.g. '*.go'")
	fs.IntSliceVar(&o.Lengths, "lengths", []int{256, 512, 1024, 2048, 4096, 8192, 16384}, "context lengths to evaluate")
	fs.IntVar(&o.Samples, "samples", 4, "samples per length")
	fs.StringVar(&o.Source, "source", eval.SourceAuto, "where samples come from: auto, documents or concat")
	fs.Float64Var(&o.ValFraction, "val-fraction", d.ValFraction, "evaluate the validation split of this fraction of --data (0: all of it)")
	fs.Uint64Var(&o.Seed, "seed", d.Seed, "seed of the validation split (the trainer's --seed)")
	return c
}

func newEvalNIAHCommand() *cobra.Command {
	var (
		o   eval.NIAHOptions
		out string
	)
	c := &cobra.Command{
		Use:   "niah --model DIR [--model DIR2 ...] --haystack PATH",
		Short: "Needle-in-a-haystack retrieval accuracy per length and depth",
		Long: `For every length (prompt tokens), depth and trial, insert a needle sentence
with a random number ("The special magic number is 48213.") as its own line at
the line start of the haystack nearest to the depth (0 start, 1 end), end the
prompt with the question ("What is the special magic number? The special magic
number is") and let the model decode greedily with its KV cache: the prompt in
one prefill, then one token per step, as many tokens as the encoding of
" 48213", stopping at a newline or EOS. A trial is correct when the answer's
digits equal the number. The haystack is the text of the --haystack files read
in path order from a seeded random file on, joined by newlines; the same
--seed gives every model the same prompts. Prompts beyond a model's learned
positions are n/a. Byte-level models use the same templates.`,
		Example: `  ssmax eval niah --model ./base/final --model ./ssmax/final --haystack $(go env GOROOT)/src/net/http --glob '*.go' \
      --lengths 256,512,1024 --depths 0,0.25,0.5,0.75,1 --trials 8 --out ./eval`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runEval(c, "niah", &o.Checkpoints, out, func() (evalReport, error) { return eval.NIAH(c.Context(), o) })
		},
	}
	fs := c.Flags()
	registerCheckpointFlags(fs, &o.Checkpoints, &out)
	registerNeedleFlags(fs, &o.NeedleOptions, 4)
	fs.IntSliceVar(&o.Lengths, "lengths", []int{256, 512, 1024, 2048, 4096}, "prompt lengths in tokens")
	fs.Float64SliceVar(&o.Depths, "depths", []float64{0, 0.25, 0.5, 0.75, 1}, "needle depths: 0 start of the haystack, 1 end")
	return c
}

func newEvalAttentionCommand() *cobra.Command {
	var (
		o   eval.AttentionOptions
		out string
	)
	c := &cobra.Command{
		Use:   "attention --model DIR [--model DIR2] --haystack PATH --length N",
		Short: "Attention each layer and head puts on the needle when answering",
		Long: `Build a needle-in-a-haystack prompt of --length tokens with the needle at
--depth (as eval niah does), feed it to the model and take the attention
probabilities of the last prompt position, the query whose logits give the first
answer token: for every layer and head, the sum of its probabilities over the
needle sentence's tokens (softmax, or SSMax with the layer's s·ln n scale).
With --trials N the masses are averaged over N prompts. The uniform share
(needle tokens / length) is what attention spread evenly would give. Give two
models (e.g. softmax and SSMax) to compare them side by side.`,
		Example: `  ssmax eval attention --model ./base/final --model ./ssmax/final --haystack $(go env GOROOT)/src/net/http --glob '*.go' \
      --length 1024 --depth 0.5 --out ./eval`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runEval(c, "attention", &o.Checkpoints, out, func() (evalReport, error) { return eval.Attention(c.Context(), o) })
		},
	}
	fs := c.Flags()
	registerCheckpointFlags(fs, &o.Checkpoints, &out)
	registerNeedleFlags(fs, &o.NeedleOptions, 1)
	fs.IntVar(&o.Length, "length", 0, "prompt length in tokens")
	fs.Float64Var(&o.Depth, "depth", 0.5, "needle depth: 0 start of the haystack, 1 end")
	return c
}

func newEvalRetrievalCommand() *cobra.Command {
	var (
		o   eval.RetrievalOptions
		out string
	)
	c := &cobra.Command{
		Use:   "retrieval --model DIR [--model DIR2 ...] --lengths ...",
		Short: "Exact-match key retrieval per length and depth, with confidence intervals",
		Long: `Key retrieval on synthetic documents of key-value records (package retrieval,
the task "ssmax pretrain --mix-retrieval" trains on):

  kqz4821
  ?bav0937       a query repeats an earlier record's key and value
  ...

For every length and trial, a prompt of that many tokens (less at most one
line) holds filler records and queries with one target record at each depth
(0 the first line, 1 the last before the final queries) and ends with a query
"?key" for each target, in random order, each followed by its value. The
model reads the prompt through its KV cache; a query is right when greedy
decoding reproduces the value exactly (checked token by token: until its first
wrong token greedy decoding feeds exactly the value). Reported per length and
depth: accuracy with its 95% Wilson interval and the loss on the value tokens
(chance ln 10 = 2.303 nats per digit). With --attention, also the attention
each layer and head of that query puts on the target record (its mean over the
queries of a length, the largest head, and the uniform share the record would
get from attention spread evenly). The same --seed gives every model the same
prompts. Lengths beyond a model's learned positions are n/a.`,
		Example: `  ssmax eval retrieval --model ./softmax/final --model ./ssmax/final --lengths 256,512,1024,2048,4096 \
      --depths 0,0.5,1 --trials 16 --rope-theta-scale 50 --out ./eval/retrieval`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return runEval(c, "retrieval", &o.Checkpoints, out, func() (evalReport, error) { return eval.Retrieval(c.Context(), o) })
		},
	}
	fs := c.Flags()
	registerCheckpointFlags(fs, &o.Checkpoints, &out)
	fs.IntSliceVar(&o.Lengths, "lengths", []int{256, 512, 1024, 2048, 4096}, "prompt lengths in tokens")
	fs.Float64SliceVar(&o.Depths, "depths", []float64{0, 0.25, 0.5, 0.75, 1}, "target depths: 0 first filler line, 1 last")
	fs.IntVar(&o.Trials, "trials", 8, "prompts per length (each holds one query per depth; with --passkey, one prompt per depth)")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the prompts (the same for every model)")
	fs.BoolVar(&o.Attention, "attention", false, "also measure the attention each head puts on the target record when the value's first token is predicted")
	fs.IntVar(&o.Task.KeyLen, "key-len", 0, "letters per key (default 3, as training)")
	fs.IntVar(&o.Task.ValueLen, "value-len", 0, "digits per value (default 4, as training)")
	fs.BoolVar(&o.Task.Passkey, "passkey", false, "passkey prompts (filler words with one record, one prompt per depth), as training with --retrieval-passkey")
	return c
}
