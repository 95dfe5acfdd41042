// Package checkpoint opens a model checkpoint: a directory holding
// config.json, one or more safetensors weight files (sharded through
// model.safetensors.index.json) and tokenizer files, or a single
// .safetensors file whose config is given separately. It knows files, not
// architectures: package arch interprets the config and tensor names.
package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ssmax/ssmax/safetensors"
)

// ConfigFile is the Hugging Face model configuration's file name (the
// weight files' names are safetensors.SingleFileName and
// safetensors.IndexFileName).
const ConfigFile = "config.json"

// AuxiliaryFiles are the tokenizer and generation files carried along with a
// checkpoint, in the order they are listed.
var AuxiliaryFiles = []string{
	"tokenizer.json",
	"tokenizer_config.json",
	"special_tokens_map.json",
	"vocab.json",
	"merges.txt",
	"tokenizer.model",
	"added_tokens.json",
	"generation_config.json",
}

// ErrNoWeights reports a directory without safetensors weights.
var ErrNoWeights = errors.New("no safetensors weights")

// ErrNoConfig reports a checkpoint without a config.
var ErrNoConfig = errors.New("no config.json")

// ErrDuplicateTensor reports a tensor stored in two shards.
var ErrDuplicateTensor = errors.New("tensor stored twice")

// ErrIndex reports an index that disagrees with the shards.
var ErrIndex = errors.New("index does not match shards")

// Tensor locates one tensor: the shard that holds it and its header entry.
type Tensor struct {
	File *safetensors.File
	safetensors.TensorInfo
}

// Checkpoint is an opened checkpoint. Its files are memory-mapped read-only;
// Close releases them.
type Checkpoint struct {
	// Path is what was opened: a directory, or a .safetensors file.
	Path string
	// Dir is the directory holding the weights and auxiliary files.
	Dir string
	// ConfigPath is the config.json that was read.
	ConfigPath string
	// Config is config.json, kept whole.
	Config *Config
	// Shards are the weight files in order (index order for sharded
	// checkpoints: sorted by file name).
	Shards []*safetensors.File
	// Index is the parsed model.safetensors.index.json, nil for one file.
	Index *safetensors.Index
	// Auxiliary lists the tokenizer and generation files present in Dir.
	Auxiliary []string

	tensors map[string]Tensor
	order   []string
}

// Options tune Open.
type Options struct {
	// ConfigPath overrides the config.json location; required when opening a
	// single .safetensors file that has no config.json beside it.
	ConfigPath string
}

// Open opens a checkpoint directory or a single .safetensors file.
func Open(path string, opts Options) (*Checkpoint, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint: %w", err)
	}
	c := &Checkpoint{Path: path, tensors: map[string]Tensor{}}
	var weightFiles []string
	if st.IsDir() {
		c.Dir = path
		weightFiles, c.Index, err = findWeights(path)
		if err != nil {
			return nil, err
		}
	} else {
		if !strings.HasSuffix(path, ".safetensors") {
			return nil, fmt.Errorf("%s: not a directory or a .safetensors file", path)
		}
		c.Dir = filepath.Dir(path)
		weightFiles = []string{filepath.Base(path)}
	}
	c.ConfigPath = opts.ConfigPath
	if c.ConfigPath == "" {
		c.ConfigPath = filepath.Join(c.Dir, ConfigFile)
	}
	if c.Config, err = ReadConfig(c.ConfigPath); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w (give the model config with --model-config)", c.ConfigPath, ErrNoConfig)
		}
		return nil, err
	}
	if err := c.openShards(weightFiles); err != nil {
		c.Close()
		return nil, err
	}
	for _, name := range AuxiliaryFiles {
		if fi, err := os.Stat(filepath.Join(c.Dir, name)); err == nil && fi.Mode().IsRegular() {
			c.Auxiliary = append(c.Auxiliary, name)
		}
	}
	return c, nil
}

// findWeights lists the weight files of a directory: the index's shards, or
// model.safetensors, or the only *.safetensors file.
func findWeights(dir string) ([]string, *safetensors.Index, error) {
	indexPath := filepath.Join(dir, safetensors.IndexFileName)
	if _, err := os.Stat(indexPath); err == nil {
		idx, err := safetensors.ReadIndex(indexPath)
		if err != nil {
			return nil, nil, err
		}
		return idx.Files(), idx, nil
	}
	if _, err := os.Stat(filepath.Join(dir, safetensors.SingleFileName)); err == nil {
		return []string{safetensors.SingleFileName}, nil, nil
	}
	matches, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	if err != nil {
		return nil, nil, err
	}
	switch len(matches) {
	case 0:
		return nil, nil, fmt.Errorf("%s: %w (expected %s or %s)", dir, ErrNoWeights, safetensors.SingleFileName, safetensors.IndexFileName)
	case 1:
		return []string{filepath.Base(matches[0])}, nil, nil
	default:
		return nil, nil, fmt.Errorf("%s: %d .safetensors files and no %s", dir, len(matches), safetensors.IndexFileName)
	}
}

func (c *Checkpoint) openShards(names []string) error {
	for _, name := range names {
		p := filepath.Join(c.Dir, name)
		f, err := safetensors.Open(p)
		if err != nil {
			return err
		}
		c.Shards = append(c.Shards, f)
		for _, t := range f.Tensors() {
			if prev, dup := c.tensors[t.Name]; dup {
				return fmt.Errorf("%s: tensor %q: %w (also in %s)", p, t.Name, ErrDuplicateTensor, prev.File.Path())
			}
			if c.Index != nil {
				if want, ok := c.Index.WeightMap[t.Name]; !ok || want != name {
					return fmt.Errorf("%s: tensor %q: %w (index says %q)", p, t.Name, ErrIndex, want)
				}
			}
			c.tensors[t.Name] = Tensor{File: f, TensorInfo: t}
			c.order = append(c.order, t.Name)
		}
	}
	if c.Index != nil {
		var missing []string
		for name := range c.Index.WeightMap {
			if _, ok := c.tensors[name]; !ok {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			return fmt.Errorf("%s: tensor %q: %w (listed in the index, in no shard; %d missing)",
				filepath.Join(c.Dir, safetensors.IndexFileName), missing[0], ErrIndex, len(missing))
		}
	}
	return nil
}

// Close unmaps every shard.
func (c *Checkpoint) Close() error {
	var errs []error
	for _, f := range c.Shards {
		errs = append(errs, f.Close())
	}
	c.Shards = nil
	return errors.Join(errs...)
}

// Tensor returns the tensor called name.
func (c *Checkpoint) Tensor(name string) (Tensor, bool) {
	t, ok := c.tensors[name]
	return t, ok
}

// TensorNames returns every tensor name in storage order: shard by shard,
// by offset within a shard.
func (c *Checkpoint) TensorNames() []string { return append([]string(nil), c.order...) }

// Float32s decodes the tensor called name into float32 values.
func (c *Checkpoint) Float32s(name string) ([]float32, error) {
	t, ok := c.tensors[name]
	if !ok {
		return nil, fmt.Errorf("%s: tensor %q not found", c.Path, name)
	}
	return t.File.Float32s(name)
}

// BytesOnDisk is the total size of the weight files.
func (c *Checkpoint) BytesOnDisk() int64 {
	var n int64
	for _, f := range c.Shards {
		n += f.Size()
	}
	return n
}

// ShardOf returns the base name of the shard holding each tensor.
func (c *Checkpoint) ShardOf(name string) string {
	if t, ok := c.tensors[name]; ok {
		return filepath.Base(t.File.Path())
	}
	return ""
}
