package cmd

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/ssmax/ssmax/data"
	"github.com/ssmax/ssmax/eval"
	"github.com/ssmax/ssmax/finetune"
	"github.com/ssmax/ssmax/model"
)

// evalModelFlags are the options every eval subcommand shares.
type evalModelFlags struct {
	models     []string
	thetaScale float64
	tokenizer  string
	out        string
}

func (f *evalModelFlags) register(fs *pflag.FlagSet) {
	fs.StringSliceVar(&f.models, "model", nil, "checkpoint directory (repeat, or comma-separate, for several models)")
	fs.Float64Var(&f.thetaScale, "rope-theta-scale", 1, "multiply RoPE theta by this factor (the paper used 50 beyond the training length)")
	fs.StringVar(&f.tokenizer, "tokenizer", "auto", "tokenizer: auto (the checkpoint's files, or bytes when it was trained on bytes), bytes, or a tokenizer.json path")
	fs.StringVar(&f.out, "out", "", "directory for the JSON, CSV and PNG reports")
}

// evalModel is one opened model with its tokenizer.
type evalModel struct {
	dir, label string
	m          *model.Model
	tok        data.Tokenizer
	tokKey     string // identifies the tokenizer, to share tokenized data
}

// open loads the i-th model and its tokenizer.
func (f *evalModelFlags) open(log *slog.Logger, i int, labels []string) (*evalModel, error) {
	dir := f.models[i]
	m, err := model.Open(dir, "", model.Options{RoPEThetaScale: f.thetaScale, Inference: true})
	if err != nil {
		return nil, fmt.Errorf("--model %s: %w", dir, err)
	}
	kind := finetune.TokenizerKind(m, f.tokenizer)
	tok, err := data.LoadTokenizer(dir, kind, m.Spec.EOS, m.Spec.BOS)
	if err != nil {
		return nil, fmt.Errorf("--tokenizer %s: %w", f.tokenizer, err)
	}
	if tok.VocabSize() > m.Spec.Vocab {
		return nil, fmt.Errorf("--model %s: tokenizer %s has %d ids but the model's vocabulary is %d", dir, tok.Name(), tok.VocabSize(), m.Spec.Vocab)
	}
	key := fmt.Sprintf("bytes/%d", tok.EOS())
	if tok.Name() != "bytes" {
		key = kind + "|" + filepath.Clean(dir)
	}
	log.Info("model", "dir", dir, "family", m.Spec.Family, "layers", m.Spec.Layers, "attention", m.Attention(0).Mode.String(), "tokenizer", tok.Name())
	return &evalModel{dir: dir, label: labels[i], m: m, tok: tok, tokKey: key}, nil
}

func (f *evalModelFlags) check(cmd string) error {
	if len(f.models) == 0 {
		return fmt.Errorf("eval %s needs --model DIR", cmd)
	}
	if f.thetaScale <= 0 {
		return fmt.Errorf("--rope-theta-scale %v: want a positive factor", f.thetaScale)
	}
	return nil
}

// progressFunc returns a progress callback drawing a bar described by
// label, created at the first call (when the total is known), and a
// function that clears it.
func progressFunc(c *cobra.Command, label string) (func(done, total int), func()) {
	var bar *progressbar.ProgressBar
	return func(done, total int) {
			if bar == nil {
				bar = newProgressBar(c, int64(total), label, false)
			}
			setProgress(bar, int64(done))
		}, func() {
			finishProgress(bar)
			bar = nil
		}
}

// checkLengths validates a --lengths list.
func checkLengths(lengths []int) error {
	if len(lengths) == 0 {
		return fmt.Errorf("--lengths: need at least one length")
	}
	for _, L := range lengths {
		if L < 1 {
			return fmt.Errorf("--lengths: %d is not a positive length", L)
		}
	}
	return nil
}

// wrote reports the files written into dir.
func wrote(c *cobra.Command, dir, kind string) {
	fmt.Fprintf(c.OutOrStdout(), "wrote %s\n", strings.Join([]string{
		filepath.Join(dir, kind+".json"), filepath.Join(dir, kind+".csv"), filepath.Join(dir, kind+".png"),
	}, ", "))
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

Each takes one or more --model directories (labelled by their base name), prints
a table and, with --out DIR, writes JSON, CSV and a PNG plot there. Models with
learned positions report n/a beyond their context; RoPE models can be read
beyond their training length with --rope-theta-scale (the paper used 50).`,
		Args: cobra.NoArgs,
	}
	c.AddCommand(newEvalLengthCommand(), newEvalNIAHCommand(), newEvalAttentionCommand())
	return c
}

func newEvalLengthCommand() *cobra.Command {
	var (
		mf          evalModelFlags
		input, glob string
		source      string
		lengths     []int
		samples     int
		valFraction float64
		seed        uint64
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
			if err := mf.check("length"); err != nil {
				return err
			}
			if input == "" {
				return fmt.Errorf("eval length needs --data PATH")
			}
			if err := checkLengths(lengths); err != nil {
				return err
			}
			if samples < 1 {
				return fmt.Errorf("--samples %d: want at least 1", samples)
			}
			switch source {
			case eval.SourceAuto, eval.SourceDocuments, eval.SourceConcat:
			default:
				return fmt.Errorf("--source %q: want auto, documents or concat", source)
			}
			if valFraction < 0 || valFraction >= 1 {
				return fmt.Errorf("--val-fraction %v: want [0, 1)", valFraction)
			}
			labels := eval.ModelLabels(mf.models)
			streams := map[string]*data.Stream{}
			var results []*eval.LengthResult
			for i := range mf.models {
				em, err := mf.open(logger(c), i, labels)
				if err != nil {
					return err
				}
				s, ok := streams[em.tokKey]
				if !ok {
					ds, err := data.LoadDataset(c.Context(), data.DatasetOptions{Input: input, Glob: glob, Tokenizer: em.tok})
					if err != nil {
						return fmt.Errorf("--data %s: %w", input, err)
					}
					defer ds.Close()
					if err := ds.Validate(em.m.Spec.Vocab); err != nil {
						return err
					}
					if valFraction == 0 {
						s = ds.Stream()
					} else if _, s, err = data.SplitDataset(ds, valFraction, seed); err != nil {
						return fmt.Errorf("--data %s: %w", input, err)
					}
					logger(c).Info("held-out text", "data", input, "documents", s.NumDocs(), "tokens", s.Len())
					streams[em.tokKey] = s
				}
				progress, done := progressFunc(c, "length "+em.label)
				res, err := eval.EvalLength(c.Context(), em.m, s, eval.LengthOptions{
					Lengths: lengths, Samples: samples, Source: source, Progress: progress,
				})
				done()
				if err != nil {
					return fmt.Errorf("--model %s: %w", em.dir, err)
				}
				res.Model, res.Path, res.RoPEThetaScale = em.label, em.dir, mf.thetaScale
				results = append(results, res)
			}
			if err := eval.WriteLengthTable(c.OutOrStdout(), results); err != nil {
				return err
			}
			if mf.out != "" {
				if err := eval.SaveLength(mf.out, results); err != nil {
					return err
				}
				wrote(c, mf.out, "length")
			}
			return nil
		},
	}
	fs := c.Flags()
	mf.register(fs)
	fs.StringVar(&input, "data", "", "held-out text: a file, a directory (with --glob), or token files (.bin)")
	fs.StringVar(&glob, "glob", "", "base-name glob for a --data directory, e.g. '*.go'")
	fs.IntSliceVar(&lengths, "lengths", []int{256, 512, 1024, 2048, 4096, 8192, 16384}, "context lengths to evaluate")
	fs.IntVar(&samples, "samples", 4, "samples per length")
	fs.StringVar(&source, "source", eval.SourceAuto, "where samples come from: auto, documents or concat")
	fs.Float64Var(&valFraction, "val-fraction", d.ValFraction, "evaluate the validation split of this fraction of --data (0: all of it)")
	fs.Uint64Var(&seed, "seed", d.Seed, "seed of the validation split (the trainer's --seed)")
	return c
}

// needleFlags are the prompt options of niah and attention.
type needleFlags struct {
	haystack, glob   string
	needle, question string
	digits           int
	trials           int
	seed             uint64
}

func (n *needleFlags) register(fs *pflag.FlagSet, trials int) {
	fs.StringVar(&n.haystack, "haystack", "", "haystack text: a file or a directory (with --glob)")
	fs.StringVar(&n.glob, "glob", "", "base-name glob for a --haystack directory, e.g. '*.go'")
	fs.StringVar(&n.needle, "needle", eval.DefaultNeedle, "needle template; {number} is replaced by the random number")
	fs.StringVar(&n.question, "question", eval.DefaultQuestion, "question that ends the prompt; the model continues it with the number")
	fs.IntVar(&n.digits, "digits", 5, "digits of the needle's number")
	fs.IntVar(&n.trials, "trials", trials, "prompts per cell, each with its own number and haystack start")
	fs.Uint64Var(&n.seed, "seed", 1, "seed of the numbers and haystack starts (the same for every model)")
}

func (n *needleFlags) open(cmd string) (*eval.Haystack, error) {
	if n.haystack == "" {
		return nil, fmt.Errorf("eval %s needs --haystack PATH", cmd)
	}
	if !strings.Contains(n.needle, "{number}") {
		return nil, fmt.Errorf("--needle %q: the template needs {number}", n.needle)
	}
	if strings.TrimSpace(n.question) == "" {
		return nil, fmt.Errorf("--question: empty")
	}
	if n.digits < 1 || n.digits > 18 {
		return nil, fmt.Errorf("--digits %d: want 1 to 18", n.digits)
	}
	if n.trials < 1 {
		return nil, fmt.Errorf("--trials %d: want at least 1", n.trials)
	}
	h, err := eval.OpenHaystack(n.haystack, n.glob)
	if err != nil {
		return nil, fmt.Errorf("--haystack %s: %w", n.haystack, err)
	}
	return h, nil
}

func newEvalNIAHCommand() *cobra.Command {
	var (
		mf      evalModelFlags
		nf      needleFlags
		lengths []int
		depths  []float64
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
			if err := mf.check("niah"); err != nil {
				return err
			}
			hay, err := nf.open("niah")
			if err != nil {
				return err
			}
			if err := checkLengths(lengths); err != nil {
				return err
			}
			if len(depths) == 0 {
				return fmt.Errorf("--depths: need at least one depth")
			}
			for _, d := range depths {
				if !(d >= 0 && d <= 1) {
					return fmt.Errorf("--depths: %v not in [0, 1]", d)
				}
			}
			labels := eval.ModelLabels(mf.models)
			var results []*eval.NIAHResult
			for i := range mf.models {
				em, err := mf.open(logger(c), i, labels)
				if err != nil {
					return err
				}
				progress, done := progressFunc(c, "niah "+em.label)
				res, err := eval.RunNIAH(c.Context(), eval.NewModelGenerator(em.m, eval.LineEnd(em.tok)), em.tok, hay, eval.NIAHOptions{
					Lengths: lengths, Depths: depths, Trials: nf.trials, Seed: nf.seed,
					Needle: nf.needle, Question: nf.question, Digits: nf.digits,
					MaxTokens: eval.MaxLength(em.m), Progress: progress,
				})
				done()
				if err != nil {
					return fmt.Errorf("--model %s: %w", em.dir, err)
				}
				res.Model, res.Path, res.RoPEThetaScale = em.label, em.dir, mf.thetaScale
				results = append(results, res)
			}
			if err := eval.WriteNIAHTable(c.OutOrStdout(), results); err != nil {
				return err
			}
			if mf.out != "" {
				if err := eval.SaveNIAH(mf.out, results); err != nil {
					return err
				}
				wrote(c, mf.out, "niah")
			}
			return nil
		},
	}
	fs := c.Flags()
	mf.register(fs)
	nf.register(fs, 4)
	fs.IntSliceVar(&lengths, "lengths", []int{256, 512, 1024, 2048, 4096}, "prompt lengths in tokens")
	fs.Float64SliceVar(&depths, "depths", []float64{0, 0.25, 0.5, 0.75, 1}, "needle depths: 0 start of the haystack, 1 end")
	return c
}

func newEvalAttentionCommand() *cobra.Command {
	var (
		mf     evalModelFlags
		nf     needleFlags
		length int
		depth  float64
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
			if err := mf.check("attention"); err != nil {
				return err
			}
			hay, err := nf.open("attention")
			if err != nil {
				return err
			}
			if length < 1 {
				return fmt.Errorf("eval attention needs --length N (prompt tokens)")
			}
			if !(depth >= 0 && depth <= 1) {
				return fmt.Errorf("--depth %v: not in [0, 1]", depth)
			}
			labels := eval.ModelLabels(mf.models)
			var results []*eval.AttentionResult
			for i := range mf.models {
				em, err := mf.open(logger(c), i, labels)
				if err != nil {
					return err
				}
				if limit := eval.MaxLength(em.m); limit > 0 && length > limit {
					return fmt.Errorf("--length %d: beyond the %d learned positions of --model %s", length, limit, em.dir)
				}
				progress, done := progressFunc(c, "attention "+em.label)
				res, err := eval.NeedleAttention(c.Context(), em.m, em.tok, hay, eval.AttentionOptions{
					Length: length, Depth: depth, Trials: nf.trials, Seed: nf.seed,
					Needle: nf.needle, Question: nf.question, Digits: nf.digits, Progress: progress,
				})
				done()
				if err != nil {
					return fmt.Errorf("--model %s: %w", em.dir, err)
				}
				res.Model, res.Path, res.RoPEThetaScale = em.label, em.dir, mf.thetaScale
				results = append(results, res)
			}
			if err := eval.WriteAttentionTable(c.OutOrStdout(), results); err != nil {
				return err
			}
			if mf.out != "" {
				if err := eval.SaveAttention(mf.out, results); err != nil {
					return err
				}
				wrote(c, mf.out, "attention")
			}
			return nil
		},
	}
	fs := c.Flags()
	mf.register(fs)
	nf.register(fs, 1)
	fs.IntVar(&length, "length", 0, "prompt length in tokens")
	fs.Float64Var(&depth, "depth", 0.5, "needle depth: 0 start of the haystack, 1 end")
	return c
}
