package cmd

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/ssmax/ssmax/finetune"
)

// trainFlags registers the options shared by finetune and pretrain.
func trainFlags(f *pflag.FlagSet, c *finetune.Config, s, b *float64) {
	d := finetune.Defaults()
	f.StringVar(&c.Data, "data", "", "training text: a file, a directory (with --glob), or token files (.bin)")
	f.StringVar(&c.Glob, "glob", "", "base-name glob for a --data directory, e.g. '*.go'")
	f.StringVar(&c.Tokenizer, "tokenizer", d.Tokenizer, "tokenizer: auto (the checkpoint's files), bytes, or a tokenizer.json path")
	f.Float64Var(&c.ValFraction, "val-fraction", d.ValFraction, "fraction of documents held out for validation")
	f.StringVar(&c.Out, "out", "", "output directory: step_N/ checkpoints, final/, metrics.jsonl")
	f.IntVar(&c.Steps, "steps", d.Steps, "optimizer steps")
	f.Int64Var(&c.TokenBudget, "tokens", 0, "token budget instead of --steps")
	f.IntVar(&c.BatchSize, "batch-size", d.BatchSize, "sequences per micro-batch")
	f.IntVar(&c.SeqLen, "seq-len", d.SeqLen, "tokens per sequence")
	f.IntVar(&c.GradAccum, "grad-accum", d.GradAccum, "micro-batches per optimizer step")
	f.Float64Var(&c.LR, "lr", d.LR, "peak learning rate")
	f.Float64Var(&c.MinLR, "min-lr", d.MinLR, "final learning rate of the decay")
	f.IntVar(&c.Warmup, "warmup", d.Warmup, "linear warmup steps")
	f.StringVar(&c.Schedule, "schedule", d.Schedule, "learning-rate schedule after warmup: cosine, linear or constant")
	f.Float64Var(&c.Beta1, "beta1", d.Beta1, "AdamW beta1")
	f.Float64Var(&c.Beta2, "beta2", d.Beta2, "AdamW beta2")
	f.Float64Var(&c.Eps, "eps", d.Eps, "AdamW epsilon")
	f.Float64Var(&c.WeightDecay, "weight-decay", d.WeightDecay, "AdamW weight decay (matrices only)")
	f.Float64Var(&c.ClipNorm, "clip-norm", d.ClipNorm, "clip the global gradient norm (0: off)")
	f.Float64Var(&c.SSMaxLR, "ssmax-lr", 0, "learning rate of the SSMax s and b (default: --lr)")
	f.StringVar(&c.Train, "train", d.Train, "trainable set: all, attention, or ssmax (only s and b)")
	f.StringSliceVar(&c.TrainPatterns, "train-pattern", nil, "regular expression of tensor names to train as well")
	f.StringSliceVar(&c.FreezePatterns, "freeze", nil, "regular expression of tensor names to freeze")
	f.IntVar(&c.SwitchToSSMaxAt, "switch-to-ssmax-at", 0, "switch softmax layers to SSMax at this step (0: never)")
	f.StringVar(&c.Variant, "variant", d.Variant, "SSMax variant for the switch: ssmax, fixed or bias")
	f.StringVar(&c.Init, "init", d.Init, "initialisation for the switch: match, const or identity")
	f.IntVar(&c.TrainLen, "train-len", 0, "L of --init match (default: --seq-len)")
	f.Float64Var(s, "s", 0, "s for --init const")
	f.Float64Var(b, "b", 0, "b for the bias variant")
	f.Float64Var(&c.MixRetrieval, "mix-retrieval", 0, "fraction of training sequences replaced by synthetic key-value retrieval documents (0: none)")
	f.Uint64Var(&c.Seed, "seed", d.Seed, "seed of the data order (and of the initial weights when pretraining)")
	f.IntVar(&c.RetrievalTask.KeyLen, "retrieval-key-len", 0, "letters per key of the retrieval documents (default 3)")
	f.IntVar(&c.RetrievalTask.ValueLen, "retrieval-value-len", 0, "digits per value of the retrieval documents (default 4)")
	f.Float64Var(&c.RetrievalTask.QueryRate, "retrieval-query-rate", 0, "fraction of a retrieval document's lines that are queries (default 0.5)")
	f.Float64Var(&c.RetrievalTask.Interleave, "retrieval-interleave", 0, "fraction of retrieval documents that interleave queries with records (default 0: queries after the records)")
	f.Float64Var(&c.RetrievalTask.Ordered, "retrieval-ordered", 0, "fraction of retrieval documents whose queries follow the records' order (a copying curriculum; default 0)")
	f.BoolVar(&c.RetrievalTask.Passkey, "retrieval-passkey", false, "retrieval documents are passkeys: filler words holding one record, queried at the end (learnt in minutes; the key-value records need an induction circuit)")
	f.IntVar(&c.RetrievalMinDoc, "retrieval-min-doc", 0, "shortest retrieval document packed into a mixed sequence, in tokens (default 32)")
	f.Uint64Var(&c.SplitSeed, "split-seed", 0, "seed of the validation split (default: --seed), to hold out the same documents across seeds")
	f.IntVar(&c.EvalEvery, "eval-every", d.EvalEvery, "validation loss every N steps (0: only at the end)")
	f.IntVar(&c.EvalBatches, "eval-batches", d.EvalBatches, "validation batches per evaluation")
	f.IntVar(&c.SaveEvery, "save-every", 0, "checkpoint every N steps (default: --eval-every)")
	f.IntVar(&c.Keep, "keep", d.Keep, "keep the newest N step checkpoints")
	f.BoolVar(&c.Resume, "resume", false, "continue from the newest complete checkpoint in --out")
	f.Float64Var(&c.RoPEScale, "rope-theta-scale", 0, "multiply RoPE theta (train beyond the model's context)")
	f.BoolVar(&c.ActivationCheckpointing, "activation-checkpointing", false, "recompute each block's forward pass in the backward pass: same gradients, less memory, about a third more time")
}

// engineOptions are the flags of the training engine: spago in this
// process, or PyTorch's distributed launcher (finetune.RunTorch).
type engineOptions struct {
	engine string
	torch  finetune.TorchOptions
}

// engineFlags registers the engine flags shared by finetune and pretrain.
func engineFlags(f *pflag.FlagSet, e *engineOptions) {
	d := finetune.DefaultTorchOptions()
	e.torch = d
	f.StringVar(&e.engine, "engine", finetune.EngineSpago, "training engine: spago (this process) or torch (PyTorch distributed: torchrun, DDP or FSDP)")
	f.IntVar(&e.torch.NProcPerNode, "nproc-per-node", d.NProcPerNode, "torch: processes on this node (one per GPU; CPU processes use gloo)")
	f.IntVar(&e.torch.NNodes, "nnodes", d.NNodes, "torch: number of nodes")
	f.IntVar(&e.torch.NodeRank, "node-rank", 0, "torch: rank of this node (0 to --nnodes - 1)")
	f.StringVar(&e.torch.MasterAddr, "master-addr", "", "torch: address of node 0 (several nodes)")
	f.IntVar(&e.torch.MasterPort, "master-port", 0, "torch: rendezvous port on node 0 (default: 29500 with several nodes, a free port on one)")
	f.BoolVar(&e.torch.FSDP, "fsdp", false, "torch: FullyShardedDataParallel instead of DistributedDataParallel")
	f.StringVar(&e.torch.Python, "python", "", "torch: Python interpreter with PyTorch (default: torchrun's, else python3)")
	f.StringVar(&e.torch.Precision, "precision", d.Precision, "torch: fp32, or bf16 (autocast on CUDA GPUs that support it)")
}

// pauseEnv names a hidden hook for tests: with SSMAX_TEST_PAUSE_AT_STEP=N a
// training command, once step N is complete (its metrics line written and
// its step_N checkpoint, if it saves one, complete), prints "paused after
// step N" on stderr and makes no further progress until it is killed or
// interrupted. finetune's kill test uses it to SIGKILL a run at a known
// point, however fast the machine.
const pauseEnv = "SSMAX_TEST_PAUSE_AT_STEP"

// pauseStep reads pauseEnv: the step to pause after, 0 for none.
func pauseStep() (int, error) {
	v := os.Getenv(pauseEnv)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s=%q: want a step number", pauseEnv, v)
	}
	return n, nil
}

// runTraining runs a configured training with a progress bar and logs.
func runTraining(c *cobra.Command, cfg finetune.Config, s, b *float64, e *engineOptions) error {
	pauseAt, err := pauseStep()
	if err != nil {
		return err
	}
	if c.Flags().Changed("s") {
		cfg.S = s
	}
	if c.Flags().Changed("b") {
		cfg.B = b
	}
	var bar *progressbar.ProgressBar
	log := logger(c)
	hooks := finetune.Hooks{
		Log: func(msg string) { log.Info(msg) },
		Start: func(first, total int, info string) {
			log.Info("training", "model", info, "steps", total, "from", first, "out", cfg.Out)
			bar = newProgressBar(c, int64(total), "training", false)
			setProgress(bar, int64(first))
		},
		Step: func(m finetune.Metrics, total int) {
			if bar != nil {
				bar.Describe(fmt.Sprintf("loss %.4f  %.0f tok/s", m.Loss, m.TokensPerSec))
				setProgress(bar, int64(m.Step))
			} else if m.ValLoss != nil || m.Step == total || m.Step%10 == 0 {
				args := []any{"step", m.Step, "loss", fmt.Sprintf("%.4f", m.Loss), "lr", fmt.Sprintf("%.3g", m.LR), "tok/s", fmt.Sprintf("%.0f", m.TokensPerSec)}
				if m.ValLoss != nil {
					args = append(args, "val_loss", fmt.Sprintf("%.4f", *m.ValLoss))
				}
				log.Info("step", args...)
			}
			if m.Step == pauseAt {
				fmt.Fprintf(c.ErrOrStderr(), "paused after step %d (%s)\n", m.Step, pauseEnv)
				<-c.Context().Done()
			}
		},
	}
	start := time.Now()
	var res *finetune.Result
	switch e.engine {
	case finetune.EngineSpago:
		for _, name := range []string{"nproc-per-node", "nnodes", "node-rank", "master-addr", "master-port", "fsdp", "python", "precision"} {
			if c.Flags().Changed(name) {
				return fmt.Errorf("--%s needs --engine torch", name)
			}
		}
		res, err = finetune.Run(c.Context(), cfg, hooks)
	case finetune.EngineTorch:
		if q, _ := c.Flags().GetBool("quiet"); !q {
			e.torch.Output = c.ErrOrStderr()
		}
		res, err = finetune.RunTorch(c.Context(), cfg, e.torch, hooks)
	default:
		return fmt.Errorf("--engine %q: want spago or torch", e.engine)
	}
	finishProgress(bar)
	if err != nil {
		return err
	}
	w := c.OutOrStdout()
	fmt.Fprintf(w, "trained %d steps in %s: final loss %.4f\n", res.Steps, time.Since(start).Round(time.Second), res.LastLoss)
	if res.FirstValLoss != nil && res.ValLoss != nil {
		fmt.Fprintf(w, "validation loss %.4f -> %.4f\n", *res.FirstValLoss, *res.ValLoss)
	}
	fmt.Fprintf(w, "wrote %s\n", res.Final)
	return nil
}

func newFinetuneCommand() *cobra.Command {
	cfg := finetune.Defaults()
	var s, b float64
	var e engineOptions
	c := &cobra.Command{
		Use:   "finetune --model DIR --data PATH --out DIR",
		Short: "Fine-tune a checkpoint (all weights, attention only, or only SSMax s and b)",
		Long: `Train a checkpoint, typically one converted by ssmax convert, on text or token
files. AdamW (spago) with weight decay on matrices, warmup then cosine, linear or
constant decay, global gradient-norm clipping, gradient accumulation.
--train ssmax trains only the SSMax parameters: every other tensor of the output
is byte-identical to the input.

OUT receives step_N/ checkpoints (complete model directories plus trainer_state/
and a DONE marker written last), final/, metrics.jsonl and run_config.json.
--resume continues from the newest complete checkpoint with the same losses as an
uninterrupted run.`,
		Example: `  ssmax finetune --model ./gpt2-ssmax --data ./corpus.txt --out ./run --steps 500
  ssmax finetune --model ./llama-ssmax --data $(go env GOROOT)/src --glob '*.go' --out ./run --train ssmax --ssmax-lr 1e-2
  ssmax finetune --model ./gpt2-ssmax --data ./tokens.bin --out ./run --resume`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if cfg.Model == "" {
				return fmt.Errorf("finetune needs --model DIR")
			}
			var err error
			if cfg.Model, err = modelPath(c, cfg.Model); err != nil {
				return err
			}
			return runTraining(c, cfg, &s, &b, &e)
		},
	}
	c.Flags().StringVar(&cfg.Model, "model", "", "checkpoint directory to fine-tune, or a Hugging Face model id (org/name[@revision]) in the local cache")
	trainFlags(c.Flags(), &cfg, &s, &b)
	engineFlags(c.Flags(), &e)
	return c
}

func newPretrainCommand() *cobra.Command {
	cfg := finetune.Defaults()
	var s, b float64
	var e engineOptions
	c := &cobra.Command{
		Use:   "pretrain --arch configs/models/NAME.yaml --data PATH --out DIR",
		Short: "Train a model from scratch, optionally switching to SSMax at a step",
		Long: `Create a randomly initialised model from a preset (the keys of a config.json, in
YAML) and train it. --attention chooses the attention from the start; with
--switch-to-ssmax-at STEP, training starts with softmax and switches every layer to
SSMax (--variant, --init) at STEP, keeping the optimizer state of existing
weights; the new parameters start with zero moments (the paper's "during
pretraining" configuration). Models trained on bytes (--tokenizer bytes, the
default here) record it in config.json.`,
		Example: `  ssmax pretrain --arch configs/models/gpt2-rope-tiny.yaml --data $(go env GOROOT)/src --glob '*.go' --out ./base --steps 300
  ssmax pretrain --arch configs/models/gpt2-rope-small.yaml --data corpus.txt --out ./late --attention softmax --switch-to-ssmax-at 800`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if cfg.Arch == "" {
				return fmt.Errorf("pretrain needs --arch FILE")
			}
			return runTraining(c, cfg, &s, &b, &e)
		},
	}
	c.Flags().StringVar(&cfg.Arch, "arch", "", "model preset YAML (configs/models/)")
	c.Flags().StringVar(&cfg.Attention, "attention", "softmax", "attention from the start: softmax, ssmax, fixed or bias")
	trainFlags(c.Flags(), &cfg, &s, &b)
	engineFlags(c.Flags(), &e)
	return c
}
