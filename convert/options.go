// Package convert retrofits SSMax attention into a checkpoint: it streams
// every tensor of the source into a new checkpoint, byte for byte unless a
// dtype change is asked for, adds the per-head SSMax parameters of the
// chosen variant and initialisation, and records them in config.json. The
// output is written to a temporary sibling directory and renamed into place,
// so an error or an interrupt leaves nothing at the destination; the source
// is only ever read.
package convert

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/safetensors"
)

// Init strategies for the SSMax parameters (see arch.ResolveInit).
const (
	InitMatch    = arch.InitMatch
	InitConst    = arch.InitConst
	InitIdentity = arch.InitIdentity
	// InitCalibrate takes per-head values chosen on calibration text
	// (package calibrate, called by the command line): Options.PerHead.
	InitCalibrate = "calibrate"
)

// PerHead is a per-head initialisation: S[i] (and B[i]) are the values of
// the heads of the i-th converted layer, in the order of Options.Layers.
type PerHead struct {
	S, B [][]float64
	// Notes is Markdown appended to the model card (e.g. the calibration's
	// losses and the values chosen).
	Notes string
}

// Options configure a conversion.
type Options struct {
	// Src is a checkpoint directory or a .safetensors file; Dst a directory.
	Src, Dst string
	// SrcName, if not empty, is how the source was named when that is not
	// Src (a Hugging Face model id resolved to a cache snapshot); the
	// model card gives both.
	SrcName string
	// ConfigPath is the source config.json when Src is a lone .safetensors file.
	ConfigPath string
	// Variant is the SSMax variant to add.
	Variant attnscale.Variant
	// Init is the initialisation strategy (InitMatch, InitConst, InitIdentity).
	Init string
	// TrainLen is L for InitMatch; 0 takes the checkpoint's context.
	TrainLen int
	// S is the value of s for InitConst.
	S *float64
	// B is the value of b for the bias variant (default 0; 1 with identity).
	B *float64
	// PerHead holds the values of InitCalibrate (nil otherwise).
	PerHead *PerHead
	// Layers to convert, as a list such as "0-5,10"; "" converts every layer.
	Layers string
	// DType of the copied weights: "keep", "f32", "f16" or "bf16".
	DType string
	// ShardSize is the maximum shard size in bytes; 0 keeps the source's sharding.
	ShardSize int64
	// Force replaces an existing Dst.
	Force bool
	// Reinit converts an already converted checkpoint again with new settings.
	Reinit bool
	// Revert writes the plain softmax checkpoint: SSMax tensors and config dropped.
	Revert bool
	// Command is the command line recorded in the model card.
	Command string
	// Progress, when set, is called with bytes written so far and the total.
	Progress func(done, total int64)
}

// ParseLayers parses a layer list such as "0-5,10" for a model with n layers.
func ParseLayers(s string, n int) ([]int, error) {
	if strings.TrimSpace(s) == "" || s == "all" {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out, nil
	}
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("layers %q: %q is not a layer number or range", s, part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("layers %q: %q is not a range like 0-5", s, part)
			}
		}
		if a < 0 || b >= n {
			return nil, fmt.Errorf("layers %q: %q is outside the model's layers 0-%d", s, part, n-1)
		}
		for l := a; l <= b; l++ {
			seen[l] = true
		}
	}
	out := make([]int, 0, len(seen))
	for l := range seen {
		out = append(out, l)
	}
	sort.Ints(out)
	return out, nil
}

// ParseDType maps a --dtype value to a safetensors dtype; "keep" gives "".
func ParseDType(s string) (safetensors.DType, error) {
	switch strings.ToLower(s) {
	case "", "keep":
		return "", nil
	case "f32", "float32", "fp32":
		return safetensors.F32, nil
	case "f16", "float16", "fp16":
		return safetensors.F16, nil
	case "bf16", "bfloat16":
		return safetensors.BF16, nil
	}
	return "", fmt.Errorf("dtype %q: want keep, f32, f16 or bf16", s)
}
