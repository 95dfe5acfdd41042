package checkpoint_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/internal/atomicfile"
	"github.com/ssmax/ssmax/safetensors"
)

func vec(name string, n int) safetensors.WriteTensor {
	return safetensors.FromFloat32(name, safetensors.F32, []int64{int64(n)}, make([]float32, n))
}

// names lists each planned shard as "file: tensor tensor ...".
func names(shards []checkpoint.Shard) []string {
	var out []string
	for _, sh := range shards {
		s := sh.Name + ":"
		for _, t := range sh.Tensors {
			s += " " + t.Name
		}
		out = append(out, s)
	}
	return out
}

func TestPlan(t *testing.T) {
	two := []checkpoint.StoredShard{{Name: "a.safetensors", Names: []string{"x", "y"}}, {Name: "b.safetensors", Names: []string{"z"}}}
	one := []checkpoint.StoredShard{{Name: "weights.safetensors", Names: []string{"x", "y", "z"}}}
	keepAll := func(name string) (safetensors.WriteTensor, bool, error) { return vec(name, 4), true, nil }
	dropY := func(name string) (safetensors.WriteTensor, bool, error) { return vec(name, 4), name != "y", nil }
	tests := []struct {
		name   string
		layout checkpoint.Layout
		place  checkpoint.Placement
		want   []string
	}{
		{"one file is model.safetensors", checkpoint.Layout{Shards: one}, checkpoint.Placement{Tensor: keepAll},
			[]string{"model.safetensors: x y z"}},
		{"indexed shards keep their names", checkpoint.Layout{Shards: two, Indexed: true}, checkpoint.Placement{Tensor: keepAll},
			[]string{"a.safetensors: x y", "b.safetensors: z"}},
		{"unindexed shards get standard names", checkpoint.Layout{Shards: two}, checkpoint.Placement{Tensor: keepAll},
			[]string{"model-00001-of-00002.safetensors: x y", "model-00002-of-00002.safetensors: z"}},
		{"new tensors after anchors, tail at the end, drops", checkpoint.Layout{Shards: two, Indexed: true},
			checkpoint.Placement{Tensor: dropY, After: map[string][]safetensors.WriteTensor{"y": {vec("s1", 2)}, "x": {vec("s0", 2)}}, Tail: []safetensors.WriteTensor{vec("t", 1)}},
			[]string{"a.safetensors: x s0 s1", "b.safetensors: z t"}},
		{"re-sharded by size", checkpoint.Layout{Shards: one}, checkpoint.Placement{Tensor: keepAll, MaxShardSize: 32},
			[]string{"model-00001-of-00002.safetensors: x y", "model-00002-of-00002.safetensors: z"}},
		{"re-sharded into one", checkpoint.Layout{Shards: two, Indexed: true}, checkpoint.Placement{Tensor: keepAll, MaxShardSize: 1 << 20},
			[]string{"model.safetensors: x y z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := checkpoint.Plan(tc.layout, tc.place)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names(got), tc.want) {
				t.Errorf("plan %q, want %q", names(got), tc.want)
			}
			for _, sh := range got {
				if v, _ := sh.Meta.Get("format"); v != "pt" {
					t.Errorf("%s: metadata format %q, want pt", sh.Name, v)
				}
			}
		})
	}
}

func testOutput(t *testing.T) checkpoint.Output {
	cfg, err := checkpoint.ParseConfig([]byte(`{"model_type": "llama", "torch_dtype": "float32"}`))
	if err != nil {
		t.Fatal(err)
	}
	shards, err := checkpoint.Plan(checkpoint.Layout{Shards: []checkpoint.StoredShard{{Names: []string{"a", "b"}}, {Names: []string{"c"}}}},
		checkpoint.Placement{Tensor: func(name string) (safetensors.WriteTensor, bool, error) { return vec(name, 8), true, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return checkpoint.Output{Shards: shards, Config: cfg, Files: map[string][]byte{"README.md": []byte("card\n")}}
}

func TestWrite(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "out")
	var last, total int64
	err := checkpoint.Write(context.Background(), dst, testOutput(t), checkpoint.WriteOptions{Progress: func(d, n int64) { last, total = d, n }})
	if err != nil {
		t.Fatal(err)
	}
	if last != 3*32 || total != 3*32 {
		t.Errorf("progress ended at %d of %d, want 96 of 96", last, total)
	}
	c, err := checkpoint.Open(dst, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.TensorNames(); !slices.Equal(got, []string{"a", "b", "c"}) || len(c.Shards) != 2 || c.Index == nil {
		t.Errorf("wrote tensors %v in %d shards (index %v)", got, len(c.Shards), c.Index != nil)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "README.md")); string(b) != "card\n" {
		t.Errorf("README.md %q", b)
	}

	// An existing destination is refused without Replace, replaced with it.
	err = checkpoint.Write(context.Background(), dst, testOutput(t), checkpoint.WriteOptions{})
	if !errors.Is(err, atomicfile.ErrExists) {
		t.Errorf("writing over an existing directory: %v, want ErrExists", err)
	}
	os.WriteFile(filepath.Join(dst, "stale"), nil, 0o644)
	if err := checkpoint.Write(context.Background(), dst, testOutput(t), checkpoint.WriteOptions{Replace: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "stale")); err == nil {
		t.Error("replaced directory still holds a file of the old one")
	}
	if es, _ := os.ReadDir(filepath.Dir(dst)); len(es) != 1 {
		t.Errorf("parent holds %d entries, want only the output", len(es))
	}
}

func TestWriteCancelledLeavesNothing(t *testing.T) {
	parent := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := checkpoint.Write(ctx, filepath.Join(parent, "out"), testOutput(t), checkpoint.WriteOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if es, _ := os.ReadDir(parent); len(es) != 0 {
		t.Errorf("cancelled write left %d entries", len(es))
	}
}
