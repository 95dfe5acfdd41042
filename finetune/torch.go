package finetune

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/internal/outlock"
	"github.com/ssmax/ssmax/kernels"
	"github.com/ssmax/ssmax/model"
)

// Engines of a training run.
const (
	EngineSpago = "spago"
	EngineTorch = "torch"
)

// Precisions of the torch engine.
const (
	PrecisionFP32 = "fp32"
	PrecisionBF16 = "bf16"
)

// TorchOptions choose how RunTorch hands a run to PyTorch's distributed
// launcher (torch.distributed.run, what torchrun runs).
type TorchOptions struct {
	// NProcPerNode is the number of processes on this node (one per GPU,
	// or CPU processes with gloo).
	NProcPerNode int
	// NNodes, NodeRank, MasterAddr and MasterPort are torchrun's static
	// rendezvous: every node runs the same command with its own NodeRank;
	// node 0's address and a free port are the master's. A single node
	// with no master given runs standalone (a local rendezvous on a free
	// port).
	NNodes     int
	NodeRank   int
	MasterAddr string
	MasterPort int
	// FSDP wraps the model in FullyShardedDataParallel instead of
	// DistributedDataParallel.
	FSDP bool
	// Python is the interpreter to run; "" takes the one of torchrun on
	// PATH, else python3.
	Python string
	// Precision is fp32, or bf16 (autocast on CUDA GPUs that support it).
	Precision string
	// Output receives the launcher's and the workers' stderr (warnings,
	// tracebacks); nil discards it.
	Output interface{ Write([]byte) (int, error) }
}

// DefaultTorchOptions are one process, one node, fp32, DDP.
func DefaultTorchOptions() TorchOptions {
	return TorchOptions{NProcPerNode: 1, NNodes: 1, Precision: PrecisionFP32}
}

// Validate checks the options before any work is done.
func (o *TorchOptions) Validate(c *Config) error {
	switch {
	case o.NProcPerNode <= 0:
		return fmt.Errorf("--nproc-per-node must be positive, got %d", o.NProcPerNode)
	case o.NNodes <= 0:
		return fmt.Errorf("--nnodes must be positive, got %d", o.NNodes)
	case o.NodeRank < 0 || o.NodeRank >= o.NNodes:
		return fmt.Errorf("--node-rank %d: want 0 to %d (--nnodes %d)", o.NodeRank, o.NNodes-1, o.NNodes)
	case o.MasterPort < 0 || o.MasterPort > 65535:
		return fmt.Errorf("--master-port %d: want 1 to 65535", o.MasterPort)
	case o.NNodes > 1 && o.MasterAddr == "":
		return fmt.Errorf("--nnodes %d needs --master-addr (the address of node 0) and --master-port", o.NNodes)
	}
	switch o.Precision {
	case PrecisionFP32, PrecisionBF16:
	default:
		return fmt.Errorf("--precision %q: want fp32 or bf16", o.Precision)
	}
	if o.FSDP && c.SwitchToSSMaxAt > 0 {
		return fmt.Errorf("--fsdp cannot add parameters mid-run: --switch-to-ssmax-at needs the DDP engine (drop --fsdp)")
	}
	return nil
}

// worldSize is the number of processes of the run.
func (o *TorchOptions) worldSize() int { return o.NProcPerNode * o.NNodes }

// RunTorch trains as Run does, on PyTorch: it checks the options, the model
// and the data exactly as Run does (same errors, before any Python starts),
// writes OUT/run_config.json, OUT/spec.json (the resolved architecture) and
// what the workers read (the token streams, the batch plan, the learning
// rates, the checkpoint layout) under OUT/torch/node<R>/, then runs
// torch.distributed.run with python/ssmax_torch's train module on every
// process and reports its progress through hooks. The workers write the
// same outputs as Run: OUT/step_N/, OUT/final/, OUT/metrics.jsonl.
func RunTorch(ctx context.Context, cfg Config, o TorchOptions, hooks Hooks) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := o.Validate(&cfg); err != nil {
		return nil, err
	}
	t := &trainer{cfg: cfg, hooks: hooks, total: cfg.totalSteps()}
	// One run per output directory, as Run: node 0 holds OUT's lock (the
	// other nodes of a run share OUT and write only OUT/torch/node<R>).
	if o.NodeRank == 0 {
		lock, err := outlock.Dir(cfg.Out)
		if errors.Is(err, outlock.ErrBusy) {
			return nil, err
		}
		if err != nil {
			return nil, fmt.Errorf("--out %s: %w", cfg.Out, err)
		}
		defer lock.Release()
		if err := removeLeftovers(cfg.Out); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(cfg.Out, 0o777); err != nil {
		return nil, fmt.Errorf("--out %s: %w", cfg.Out, err)
	}
	node := filepath.Join(cfg.Out, torchDir, "node"+strconv.Itoa(o.NodeRank))
	p, err := t.prepareTorch(ctx, node)
	if err != nil {
		return nil, err
	}
	defer p.close()
	py, err := findPython(o.Python)
	if err != nil {
		return nil, err
	}
	if err := p.write(t, o); err != nil {
		return nil, err
	}
	if err := t.writeRunConfig(); err != nil {
		return nil, err
	}
	return t.launchTorch(ctx, py, node, o)
}

// torchDir is the directory under OUT holding what the torch workers read.
const torchDir = "torch"

// torchPrep is what prepareTorch checked and resolved.
type torchPrep struct {
	node     string
	source   string // checkpoint the weights start from
	ckpt     *checkpoint.Checkpoint
	spec     *arch.Spec
	resume   string // step directory to resume from, "" for none
	state    *trainerState
	params   []*model.Param // header-only stand-ins for the stored tensors
	switched *torchSwitch
}

func (p *torchPrep) close() {
	if p.ckpt != nil {
		p.ckpt.Close()
	}
}

// openSpec opens a checkpoint's config and tensor headers (no weights) and
// checks them as model.Open does.
func openSpec(dir string) (*checkpoint.Checkpoint, *arch.Spec, error) {
	c, err := checkpoint.Open(dir, checkpoint.Options{})
	if err != nil {
		return nil, nil, err
	}
	spec, err := arch.Load(c)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	if _, ok := kernels.ActivationNamed(spec.Activation); !ok {
		c.Close()
		return nil, nil, fmt.Errorf("%s: %w activation %q (supported: %s)", c.ConfigPath, arch.ErrUnsupported, spec.Activation, strings.Join(kernels.ActivationNames(), ", "))
	}
	return c, spec, nil
}

// freePort returns a TCP port free on this machine now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
