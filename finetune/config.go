package finetune

import (
	"fmt"
	"math"
	"regexp"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/retrieval"
)

// Config is a training run. Zero values take the defaults of Defaults.
type Config struct {
	// Model is the checkpoint to fine-tune; empty when pretraining.
	Model string `json:"model,omitempty"`
	// Arch is the model preset YAML for pretraining; empty when fine-tuning.
	Arch string `json:"arch,omitempty"`
	// Attention is the attention a pretrained model starts with: softmax,
	// ssmax, fixed or bias.
	Attention string `json:"attention,omitempty"`

	Data        string  `json:"data"`
	Glob        string  `json:"glob,omitempty"`
	Tokenizer   string  `json:"tokenizer"`
	ValFraction float64 `json:"val_fraction"`
	Out         string  `json:"out"`

	Steps       int     `json:"steps"`
	TokenBudget int64   `json:"tokens,omitempty"`
	BatchSize   int     `json:"batch_size"`
	SeqLen      int     `json:"seq_len"`
	GradAccum   int     `json:"grad_accum"`
	LR          float64 `json:"lr"`
	MinLR       float64 `json:"min_lr"`
	Warmup      int     `json:"warmup"`
	Schedule    string  `json:"schedule"`
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
	Eps         float64 `json:"eps"`
	WeightDecay float64 `json:"weight_decay"`
	ClipNorm    float64 `json:"clip_norm"`
	// SSMaxLR is the learning rate of s and b (0: LR).
	SSMaxLR float64 `json:"ssmax_lr"`

	// Train selects the trainable parameters: all, attention or ssmax.
	Train string `json:"train"`
	// TrainPatterns and FreezePatterns are regular expressions over tensor
	// names that add to or remove from the trainable set.
	TrainPatterns  []string `json:"train_patterns,omitempty"`
	FreezePatterns []string `json:"freeze_patterns,omitempty"`

	// SwitchToSSMaxAt switches every softmax layer to SSMax at this step
	// (0: never), with the variant and initialisation below.
	SwitchToSSMaxAt int      `json:"switch_to_ssmax_at,omitempty"`
	Variant         string   `json:"variant,omitempty"`
	Init            string   `json:"init,omitempty"`
	TrainLen        int      `json:"train_len,omitempty"`
	S               *float64 `json:"s,omitempty"`
	B               *float64 `json:"b,omitempty"`

	// MixRetrieval is the fraction of training sequences replaced by
	// synthetic key-value retrieval documents (package retrieval), 0 for
	// none.
	MixRetrieval float64 `json:"mix_retrieval,omitempty"`
	// RetrievalTask is the shape of those documents (zero fields:
	// retrieval.Default).
	RetrievalTask retrieval.Task `json:"retrieval_task,omitzero"`
	// RetrievalMinDoc is the shortest retrieval document packed into a
	// mixed sequence (default 32 tokens).
	RetrievalMinDoc int `json:"retrieval_min_doc,omitempty"`

	Seed uint64 `json:"seed"`
	// SplitSeed, when not 0, seeds the validation split instead of Seed, so
	// runs with different seeds can hold out the same documents.
	SplitSeed   uint64  `json:"split_seed,omitempty"`
	EvalEvery   int     `json:"eval_every"`
	EvalBatches int     `json:"eval_batches"`
	SaveEvery   int     `json:"save_every"`
	Keep        int     `json:"keep"`
	Resume      bool    `json:"resume"`
	RoPEScale   float64 `json:"rope_theta_scale,omitempty"`
	// ActivationCheckpointing recomputes each block's forward pass in the
	// backward pass instead of keeping its activations (same gradients;
	// less memory for long sequences, one more forward pass of time).
	ActivationCheckpointing bool `json:"activation_checkpointing,omitempty"`
}

// Defaults returns the default configuration.
func Defaults() Config {
	return Config{
		Tokenizer: "auto", ValFraction: 0.05, BatchSize: 8, SeqLen: 256, GradAccum: 1,
		LR: 3e-4, MinLR: 3e-5, Warmup: 0, Schedule: "cosine", Beta1: 0.9, Beta2: 0.95, Eps: 1e-8,
		WeightDecay: 0.1, ClipNorm: 1.0, Train: "all", Attention: "softmax",
		Variant: string(attnscale.SSMax), Init: arch.InitMatch, Seed: 1,
		EvalEvery: 100, EvalBatches: 8, SaveEvery: 0, Keep: 2, Steps: 100,
	}
}

// Validate checks the configuration before any work is done.
func (c *Config) Validate() error {
	if (c.Model == "") == (c.Arch == "") {
		return fmt.Errorf("give exactly one of a model to fine-tune (--model) or an architecture to pretrain (--arch)")
	}
	if c.Data == "" {
		return fmt.Errorf("no training data (--data)")
	}
	if c.Out == "" {
		return fmt.Errorf("no output directory (--out)")
	}
	pos := map[string]int{"--batch-size": c.BatchSize, "--seq-len": c.SeqLen, "--grad-accum": c.GradAccum}
	for name, v := range pos {
		if v <= 0 {
			return fmt.Errorf("%s must be positive, got %d", name, v)
		}
	}
	if c.Steps <= 0 && c.TokenBudget <= 0 {
		return fmt.Errorf("--steps or --tokens must be positive")
	}
	if c.SSMaxLR < 0 || math.IsNaN(c.SSMaxLR) || math.IsInf(c.SSMaxLR, 0) {
		return fmt.Errorf("--ssmax-lr %g: want a finite rate, 0 for --lr", c.SSMaxLR)
	}
	// A NaN rate fails the comparisons and is refused.
	if !(c.LR > 0) || math.IsInf(c.LR, 0) || !(c.MinLR >= 0) || c.MinLR > c.LR {
		return fmt.Errorf("learning rates: want 0 <= --min-lr <= --lr and a finite --lr > 0, got %g and %g", c.MinLR, c.LR)
	}
	switch c.Schedule {
	case "cosine", "linear", "constant":
	default:
		return fmt.Errorf("--schedule %q: want cosine, linear or constant", c.Schedule)
	}
	switch c.Train {
	case "all", "attention", "ssmax":
	default:
		return fmt.Errorf("--train %q: want all, attention or ssmax", c.Train)
	}
	for _, p := range append(append([]string{}, c.TrainPatterns...), c.FreezePatterns...) {
		if _, err := regexp.Compile(p); err != nil {
			return fmt.Errorf("pattern %q: %w", p, err)
		}
	}
	if c.ValFraction < 0 || c.ValFraction >= 1 {
		return fmt.Errorf("--val-fraction %g: want [0, 1)", c.ValFraction)
	}
	if c.Beta1 < 0 || c.Beta1 >= 1 || c.Beta2 < 0 || c.Beta2 >= 1 {
		return fmt.Errorf("betas must be in [0, 1)")
	}
	if !(c.MixRetrieval >= 0 && c.MixRetrieval <= 1) {
		return fmt.Errorf("--mix-retrieval %g: want a fraction in [0, 1]", c.MixRetrieval)
	}
	if c.MixRetrieval > 0 {
		if err := c.RetrievalTask.WithDefaults().Check(); err != nil {
			return err
		}
	}
	if c.SwitchToSSMaxAt < 0 {
		return fmt.Errorf("--switch-to-ssmax-at must not be negative")
	}
	if c.SwitchToSSMaxAt > 0 {
		if _, err := attnscale.ParseSSMax(c.Variant); err != nil {
			return fmt.Errorf("--variant: %w", err)
		}
	}
	return nil
}

// tokensPerStep is how many tokens one optimizer step consumes.
func (c *Config) tokensPerStep() int64 {
	return int64(c.BatchSize) * int64(c.SeqLen) * int64(c.GradAccum)
}

// totalSteps resolves --steps or the --tokens budget.
func (c *Config) totalSteps() int {
	if c.TokenBudget > 0 {
		return int((c.TokenBudget + c.tokensPerStep() - 1) / c.tokensPerStep())
	}
	return c.Steps
}

// splitSeed seeds the validation split: SplitSeed when set, else Seed.
func (c *Config) splitSeed() uint64 {
	if c.SplitSeed != 0 {
		return c.SplitSeed
	}
	return c.Seed
}
