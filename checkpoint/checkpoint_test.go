package checkpoint_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/safetensors"
)

func TestConfigKeepsEverything(t *testing.T) {
	in := `{"b": 1, "a": {"x": [1, 2.50, null]}, "unknown_key": "kept", "n": 1e-05}`
	c, err := checkpoint.ParseConfig([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Keys(), ","); got != "b,a,unknown_key,n" {
		t.Errorf("keys %s", got)
	}
	if err := c.Set("ssmax", map[string]int{"version": 1}); err != nil {
		t.Fatal(err)
	}
	c.Delete("b")
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"a\": {\n    \"x\": [\n      1,\n      2.50,\n      null\n    ]\n  },\n  \"unknown_key\": \"kept\",\n  \"n\": 1e-05,\n  \"ssmax\": {\n    \"version\": 1\n  }\n}\n"
	if string(out) != want {
		t.Errorf("marshal:\n%s\nwant:\n%s", out, want)
	}
	n, ok, err := c.Int("missing", "n")
	if err == nil || ok {
		t.Errorf("1e-05 read as int: %d %v %v", n, ok, err)
	}
	f, ok, err := c.Float("n")
	if err != nil || !ok || f != 1e-5 {
		t.Errorf("float %v %v %v", f, ok, err)
	}
}

func TestConfigRejects(t *testing.T) {
	for _, in := range []string{`[]`, `{"a":1,"a":2}`, `{"a":1} {}`, `{"a":`, ``} {
		if _, err := checkpoint.ParseConfig([]byte(in)); !errors.Is(err, checkpoint.ErrConfig) {
			t.Errorf("%q: error %v, want ErrConfig", in, err)
		}
	}
}

// writeShards writes two shards and an index whose weight map is given.
func writeShards(t *testing.T, dir string, weightMap map[string]string) {
	t.Helper()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type":"llama"}`), 0o644)
	vals := []float32{1, 2, 3, 4}
	for i, names := range [][]string{{"a", "b"}, {"c"}} {
		var ts []safetensors.WriteTensor
		for _, n := range names {
			ts = append(ts, safetensors.FromFloat32(n, safetensors.F32, []int64{4}, vals))
		}
		if err := safetensors.WriteFile(filepath.Join(dir, safetensors.ShardName(i+1, 2)), nil, ts); err != nil {
			t.Fatal(err)
		}
	}
	if err := safetensors.WriteIndex(dir, 48, weightMap); err != nil {
		t.Fatal(err)
	}
}

func TestShardedCheckpoint(t *testing.T) {
	s1, s2 := safetensors.ShardName(1, 2), safetensors.ShardName(2, 2)
	tests := []struct {
		name string
		wm   map[string]string
		err  error
		msg  string
	}{
		{"consistent", map[string]string{"a": s1, "b": s1, "c": s2}, nil, ""},
		{"index lists a missing tensor", map[string]string{"a": s1, "b": s1, "c": s2, "d": s2}, checkpoint.ErrIndex, `"d"`},
		{"tensor in the wrong shard", map[string]string{"a": s1, "b": s2, "c": s2}, checkpoint.ErrIndex, `"b"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeShards(t, dir, tc.wm)
			c, err := checkpoint.Open(dir, checkpoint.Options{})
			if tc.err == nil {
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if len(c.Shards) != 2 || strings.Join(c.TensorNames(), ",") != "a,b,c" || c.ShardOf("c") != s2 {
					t.Errorf("shards %d, tensors %v", len(c.Shards), c.TensorNames())
				}
				v, err := c.Float32s("c")
				if err != nil || v[3] != 4 {
					t.Errorf("c = %v, %v", v, err)
				}
				return
			}
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want %v naming %s", err, tc.err, tc.msg)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	fixture := "../testdata/fixtures/gpt2-tiny"
	noConfig := t.TempDir()
	data, _ := os.ReadFile(filepath.Join(fixture, "model.safetensors"))
	os.WriteFile(filepath.Join(noConfig, "model.safetensors"), data, 0o644)
	noWeights := t.TempDir()
	os.WriteFile(filepath.Join(noWeights, "config.json"), []byte(`{}`), 0o644)
	two := t.TempDir()
	os.WriteFile(filepath.Join(two, "config.json"), []byte(`{}`), 0o644)
	os.WriteFile(filepath.Join(two, "x.safetensors"), data, 0o644)
	os.WriteFile(filepath.Join(two, "y.safetensors"), data, 0o644)
	tests := []struct {
		name, path string
		err        error
		msg        string
	}{
		{"no config", noConfig, checkpoint.ErrNoConfig, "--model-config"},
		{"no weights", noWeights, checkpoint.ErrNoWeights, noWeights},
		{"two files without index", two, nil, "2 .safetensors files"},
		{"missing path", filepath.Join(two, "nope"), nil, "nope"},
		{"not safetensors", filepath.Join(fixture, "config.json"), nil, "not a directory or a .safetensors file"},
	}
	for _, tc := range tests {
		_, err := checkpoint.Open(tc.path, checkpoint.Options{})
		if err == nil || (tc.err != nil && !errors.Is(err, tc.err)) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %v, want %v naming %q", tc.name, err, tc.err, tc.msg)
		}
	}
	// A lone .safetensors file with its config given separately.
	c, err := checkpoint.Open(filepath.Join(noConfig, "model.safetensors"), checkpoint.Options{ConfigPath: filepath.Join(fixture, "config.json")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mt string
	if ok, _ := c.Config.Decode("model_type", &mt); !ok || mt != "gpt2" {
		t.Errorf("model_type %q", mt)
	}
	if len(c.TensorNames()) != 28 {
		t.Errorf("%d tensors", len(c.TensorNames()))
	}
}
