package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/ssmax/ssmax/internal/atomicfile"
	"github.com/ssmax/ssmax/safetensors"
)

// StoredShard describes one weight file of an existing checkpoint: its file
// name, metadata and tensor names in storage order.
type StoredShard struct {
	Name  string
	Meta  safetensors.Metadata
	Names []string
}

// Layout is how a checkpoint stores its tensors. Writers keep it, so a
// rewritten checkpoint diffs cleanly against its source.
type Layout struct {
	Shards []StoredShard
	// Indexed is set when the source is sharded with an index: its shard
	// file names are kept.
	Indexed bool
}

// Layout returns the checkpoint's storage layout.
func (c *Checkpoint) Layout() Layout {
	l := Layout{Indexed: len(c.Shards) > 1 && c.Index != nil}
	for _, f := range c.Shards {
		s := StoredShard{Name: filepath.Base(f.Path()), Meta: f.Metadata()}
		for _, t := range f.Tensors() {
			s.Names = append(s.Names, t.Name)
		}
		l.Shards = append(l.Shards, s)
	}
	return l
}

// Shard is one weight file to write.
type Shard struct {
	Name    string
	Meta    safetensors.Metadata
	Tensors []safetensors.WriteTensor
}

// Placement says what to write in place of a stored layout.
type Placement struct {
	// Tensor returns what to write for a stored tensor, or ok = false to
	// drop it.
	Tensor func(name string) (t safetensors.WriteTensor, ok bool, err error)
	// After lists new tensors to store right after a stored one (an SSMax
	// parameter after the last tensor of its attention module).
	After map[string][]safetensors.WriteTensor
	// Tail lists new tensors with no anchor: they end the last shard.
	Tail []safetensors.WriteTensor
	// MaxShardSize, when positive, re-plans the shards so that none holds
	// more tensor bytes (a larger tensor gets a shard of its own).
	MaxShardSize int64
}

// Plan lays tensors out as l stores them: same shards, same order, new
// tensors after their anchors, each shard's metadata kept (with
// "format": "pt" added when missing, as Hugging Face loaders expect). One
// shard is named model.safetensors; several keep the source's names when it
// was indexed and are otherwise named model-0000i-of-0000N.safetensors.
func Plan(l Layout, p Placement) ([]Shard, error) {
	if len(l.Shards) == 0 {
		return nil, fmt.Errorf("plan checkpoint: no shards")
	}
	var out []Shard
	for i, ss := range l.Shards {
		meta := ss.Meta
		if _, ok := meta.Get("format"); !ok {
			meta = meta.With("format", "pt")
		}
		sh := Shard{Name: ss.Name, Meta: meta}
		for _, name := range ss.Names {
			t, ok, err := p.Tensor(name)
			if err != nil {
				return nil, err
			}
			if ok {
				sh.Tensors = append(sh.Tensors, t)
			}
			sh.Tensors = append(sh.Tensors, p.After[name]...)
		}
		if i == len(l.Shards)-1 {
			sh.Tensors = append(sh.Tensors, p.Tail...)
		}
		out = append(out, sh)
	}
	if p.MaxShardSize > 0 {
		return reshard(out, p.MaxShardSize), nil
	}
	if len(out) == 1 {
		out[0].Name = safetensors.SingleFileName
	} else if !l.Indexed {
		for i := range out {
			out[i].Name = safetensors.ShardName(i+1, len(out))
		}
	}
	return out, nil
}

// reshard regroups the ordered tensors of shards under a maximum size.
func reshard(shards []Shard, max int64) []Shard {
	var all []safetensors.WriteTensor
	for _, sh := range shards {
		all = append(all, sh.Tensors...)
	}
	groups := safetensors.PlanShards(all, max)
	if len(groups) == 0 {
		groups = [][]safetensors.WriteTensor{nil}
	}
	out := make([]Shard, len(groups))
	for i, g := range groups {
		name := safetensors.SingleFileName
		if len(groups) > 1 {
			name = safetensors.ShardName(i+1, len(groups))
		}
		out[i] = Shard{Name: name, Meta: shards[0].Meta, Tensors: g}
	}
	return out
}

// Output is a checkpoint directory to write.
type Output struct {
	Shards []Shard
	// Config is config.json's content.
	Config *Config
	// AuxDir holds the Auxiliary files (tokenizer and generation files),
	// copied unchanged.
	AuxDir    string
	Auxiliary []string
	// Files are further files to write, by name (a model card README.md).
	Files map[string][]byte
}

// TensorBytes is the total size of the tensor data of out.
func (out *Output) TensorBytes() int64 {
	var n int64
	for _, sh := range out.Shards {
		for _, t := range sh.Tensors {
			n += t.Size
		}
	}
	return n
}

// WriteOptions tune Write.
type WriteOptions struct {
	// Replace lets Write replace an existing directory at dst (moved aside,
	// removed once the new one is in place); otherwise an existing dst
	// fails with an error wrapping atomicfile.ErrExists.
	Replace bool
	// Progress, when set, is called with the tensor bytes written so far
	// and the total, never concurrently.
	Progress func(done, total int64)
}

// shardWorkers is how many shards Write writes at once: while one shard
// waits for its final fsync, the next one is already being copied or
// converted, so the disk and the CPU work at the same time.
const shardWorkers = 2

// Write writes out as the checkpoint directory dst: the shards (several at
// once), model.safetensors.index.json when there is more than one,
// config.json, the auxiliary and further files, every file fsynced, all in
// a temporary sibling directory (with the permissions mkdir gives) that is
// fsynced and renamed to dst at the end. On failure or cancellation nothing
// is left behind and an existing dst is untouched. It is the one checkpoint
// writer: convert and model.Save both call it.
//
// Errors name the file of dst being written (never its path in the
// temporary directory), the tensor when there is one and the cause, once
// each (see atomicfile.Error): `write DST/model-00001-of-00002.safetensors:
// tensor "x": no space left on device`. A cancelled ctx gives ctx's error
// alone.
func Write(ctx context.Context, dst string, out Output, o WriteOptions) (err error) {
	if out.Config == nil {
		return &atomicfile.Error{Path: dst, Err: errors.New("no config")}
	}
	configBytes, err := out.Config.Marshal()
	if err != nil {
		return &atomicfile.Error{Path: filepath.Join(dst, ConfigFile), Err: err}
	}
	tmp, err := atomicfile.MkdirTemp(dst)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
			if cerr := ctx.Err(); cerr != nil {
				err = cerr
			} else {
				err = atomicfile.Relocate(err, tmp, dst)
			}
		}
	}()
	if err := writeShards(ctx, tmp, out, o.Progress); err != nil {
		return err
	}
	if len(out.Shards) > 1 {
		weightMap := map[string]string{}
		for _, sh := range out.Shards {
			for _, t := range sh.Tensors {
				weightMap[t.Name] = sh.Name
			}
		}
		if err := safetensors.WriteIndex(tmp, out.TensorBytes(), weightMap); err != nil {
			return err
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, ConfigFile), configBytes); err != nil {
		return err
	}
	if err := CopyFiles(out.AuxDir, tmp, out.Auxiliary); err != nil {
		return err
	}
	names := make([]string, 0, len(out.Files))
	for name := range out.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := atomicfile.WriteFile(filepath.Join(tmp, name), out.Files[name]); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return atomicfile.CommitDir(tmp, dst, o.Replace)
}

// writeShards writes the shards into dir, shardWorkers at a time; the first
// error cancels the others at their next tensor and is the one reported.
func writeShards(ctx context.Context, dir string, out Output, progress func(done, total int64)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	total := out.TensorBytes()
	var (
		mu       sync.Mutex // guards done, firstErr and calls to progress
		done     int64
		firstErr error
	)
	wrap := func(t safetensors.WriteTensor) safetensors.WriteTensor {
		write := t.Write
		t.Write = func(w io.Writer) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := write(w); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			done += t.Size
			if progress != nil {
				progress(done, total)
			}
			return nil
		}
		return t
	}
	sem := make(chan struct{}, shardWorkers)
	var wg sync.WaitGroup
	for _, sh := range out.Shards {
		tensors := make([]safetensors.WriteTensor, len(sh.Tensors))
		for i, t := range sh.Tensors {
			tensors[i] = wrap(t)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := safetensors.WriteFile(filepath.Join(dir, sh.Name), sh.Meta, tensors); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}
