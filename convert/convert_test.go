package convert_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/attnscale"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/convert"
	"github.com/ssmax/ssmax/inspect"
	"github.com/ssmax/ssmax/internal/testckpt"
	"github.com/ssmax/ssmax/safetensors"
)

const fixtures = "../testdata/fixtures"

func f64(v float64) *float64 { return &v }

// tensorHashes maps every tensor of a checkpoint to the sha256 of its bytes.
func tensorHashes(t *testing.T, dir string) (map[string][32]byte, map[string]safetensors.TensorInfo) {
	t.Helper()
	c, err := checkpoint.Open(dir, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := map[string][32]byte{}
	info := map[string]safetensors.TensorInfo{}
	for _, name := range c.TensorNames() {
		tt, _ := c.Tensor(name)
		b, err := tt.File.Bytes(name)
		if err != nil {
			t.Fatal(err)
		}
		h[name] = sha256.Sum256(b)
		info[name] = tt.TensorInfo
	}
	return h, info
}

func readConfig(t *testing.T, dir string) map[string]json.RawMessage {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestConvertFixtures(t *testing.T) {
	type want struct {
		s, b float32
		hasS bool
		hasB bool
	}
	logL := float32(1 / math.Log(128))
	tests := []struct {
		name    string
		fixture string
		opts    convert.Options
		want    want
	}{
		{"gpt2 ssmax match", "gpt2-tiny", convert.Options{Variant: attnscale.SSMax, Init: convert.InitMatch}, want{s: logL, hasS: true}},
		{"gpt2 ssmax match L=1024", "gpt2-tiny", convert.Options{Variant: attnscale.SSMax, Init: convert.InitMatch, TrainLen: 1024}, want{s: float32(1 / math.Log(1024)), hasS: true}},
		{"gpt2 ssmax const", "gpt2-tiny", convert.Options{Variant: attnscale.SSMax, Init: convert.InitConst, S: f64(0.43)}, want{s: 0.43, hasS: true}},
		{"gpt2 fixed", "gpt2-tiny", convert.Options{Variant: attnscale.Fixed, Init: convert.InitMatch}, want{}},
		{"llama ssmax match", "llama-tiny", convert.Options{Variant: attnscale.SSMax, Init: convert.InitMatch}, want{s: logL, hasS: true}},
		{"llama bias match", "llama-tiny", convert.Options{Variant: attnscale.Bias, Init: convert.InitMatch}, want{s: logL, b: 0, hasS: true, hasB: true}},
		{"llama bias const b", "llama-tiny", convert.Options{Variant: attnscale.Bias, Init: convert.InitConst, S: f64(0.2), B: f64(0.5)}, want{s: 0.2, b: 0.5, hasS: true, hasB: true}},
		{"llama bias identity", "llama-tiny", convert.Options{Variant: attnscale.Bias, Init: convert.InitIdentity}, want{s: 0, b: 1, hasS: true, hasB: true}},
		{"llama fixed", "llama-tiny", convert.Options{Variant: attnscale.Fixed, Init: convert.InitMatch}, want{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(fixtures, tc.fixture)
			dst := filepath.Join(t.TempDir(), "out")
			o := tc.opts
			o.Src, o.Dst = src, dst
			res, err := convert.Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			srcHash, srcInfo := tensorHashes(t, src)
			dstHash, dstInfo := tensorHashes(t, dst)
			for name, h := range srcHash {
				if dstHash[name] != h {
					t.Errorf("tensor %s changed", name)
				}
				if dstInfo[name].DType != srcInfo[name].DType {
					t.Errorf("tensor %s dtype %s, source %s", name, dstInfo[name].DType, srcInfo[name].DType)
				}
			}
			c, err := checkpoint.Open(dst, checkpoint.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			spec, err := arch.Load(c)
			if err != nil {
				t.Fatal(err)
			}
			if spec.SSMax == nil || spec.SSMax.Variant != o.Variant || len(spec.SSMax.Layers) != spec.Layers {
				t.Fatalf("ssmax config %+v", spec.SSMax)
			}
			added := 0
			for l := 0; l < spec.Layers; l++ {
				for _, p := range []struct {
					name string
					has  bool
					v    float32
				}{{spec.SSMaxS(l), tc.want.hasS, tc.want.s}, {spec.SSMaxB(l), tc.want.hasB, tc.want.b}} {
					tt, ok := c.Tensor(p.name)
					if ok != p.has {
						t.Fatalf("tensor %s present %v, want %v", p.name, ok, p.has)
					}
					if !ok {
						continue
					}
					added++
					if tt.DType != safetensors.F32 || len(tt.Shape) != 1 || tt.Shape[0] != int64(spec.Heads) {
						t.Errorf("%s: %s %v, want F32 [%d]", p.name, tt.DType, tt.Shape, spec.Heads)
					}
					vals, err := c.Float32s(p.name)
					if err != nil {
						t.Fatal(err)
					}
					for _, v := range vals {
						if v != p.v {
							t.Errorf("%s = %v, want %v", p.name, vals, p.v)
							break
						}
					}
				}
			}
			if added != len(res.Added) || len(dstHash) != len(srcHash)+added {
				t.Errorf("added %d tensors (result says %v); %d in output, %d in source", added, res.Added, len(dstHash), len(srcHash))
			}
			// config.json: every original key untouched, ssmax object added.
			sc, dc := readConfig(t, src), readConfig(t, dst)
			for k, v := range sc {
				var a, b any
				json.Unmarshal(v, &a)
				json.Unmarshal(dc[k], &b)
				if !jsonEqual(a, b) {
					t.Errorf("config key %s: %s, source %s", k, dc[k], v)
				}
			}
			if len(dc) != len(sc)+1 || dc["ssmax"] == nil {
				t.Errorf("config keys: %d, source %d", len(dc), len(sc))
			}
			var obj map[string]any
			json.Unmarshal(dc["ssmax"], &obj)
			for _, k := range []string{"variant", "init", "train_len", "layers", "version"} {
				if _, ok := obj[k]; !ok {
					t.Errorf("ssmax object lacks %q: %s", k, dc["ssmax"])
				}
			}
			if tc.want.hasS && float32(obj["s_init"].(float64)) != tc.want.s {
				t.Errorf("s_init %v, want %v", obj["s_init"], tc.want.s)
			}
			// inspect reports the state.
			r, err := inspect.Run(dst, inspect.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if r.SSMax == nil || r.SSMax.Variant != o.Variant || len(r.SSMax.PerLayer) != spec.Layers {
				t.Errorf("inspect SSMax %+v", r.SSMax)
			}
			if tc.want.hasS && (r.SSMax.PerLayer[0].S == nil || float32(r.SSMax.PerLayer[0].S.Mean) != tc.want.s) {
				t.Errorf("inspect s stats %+v", r.SSMax.PerLayer[0].S)
			}
			if _, err := os.Stat(filepath.Join(dst, "README.md")); err != nil {
				t.Errorf("model card: %v", err)
			}
		})
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestFixtureOrderAndRevert: converting gpt2-tiny places ssmax_s exactly
// where the reference conversion did, and --revert of the reference
// converted fixture gives back gpt2-tiny's weight file byte for byte.
func TestFixtureOrderAndRevert(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := convert.Run(context.Background(), convert.Options{Src: filepath.Join(fixtures, "gpt2-tiny"), Dst: dst, Variant: attnscale.SSMax, Init: convert.InitMatch}); err != nil {
		t.Fatal(err)
	}
	got, err := safetensors.Open(filepath.Join(dst, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	ref, err := safetensors.Open(filepath.Join(fixtures, "gpt2-tiny-ssmax", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	gt, rt := got.Tensors(), ref.Tensors()
	if len(gt) != len(rt) {
		t.Fatalf("%d tensors, reference %d", len(gt), len(rt))
	}
	for i := range gt {
		if gt[i].Name != rt[i].Name || gt[i].Offset != rt[i].Offset {
			t.Errorf("tensor %d: %s at %d, reference %s at %d", i, gt[i].Name, gt[i].Offset, rt[i].Name, rt[i].Offset)
		}
	}

	for _, src := range []string{filepath.Join(fixtures, "gpt2-tiny-ssmax"), dst} {
		back := filepath.Join(t.TempDir(), "back")
		res, err := convert.Run(context.Background(), convert.Options{Src: src, Dst: back, Revert: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Dropped) != 2 || res.SSMax != nil {
			t.Errorf("revert dropped %v", res.Dropped)
		}
		a, _ := os.ReadFile(filepath.Join(back, "model.safetensors"))
		b, _ := os.ReadFile(filepath.Join(fixtures, "gpt2-tiny", "model.safetensors"))
		if !bytes.Equal(a, b) {
			t.Errorf("revert of %s is not byte-identical to gpt2-tiny (%d vs %d bytes)", src, len(a), len(b))
		}
		if readConfig(t, back)["ssmax"] != nil {
			t.Errorf("revert kept the ssmax config object")
		}
	}
}

func TestReinitAndAlreadyConverted(t *testing.T) {
	src := filepath.Join(fixtures, "llama-tiny-ssmax-bias")
	dst := filepath.Join(t.TempDir(), "out")
	_, err := convert.Run(context.Background(), convert.Options{Src: src, Dst: dst, Variant: attnscale.SSMax, Init: convert.InitMatch})
	if !errors.Is(err, convert.ErrConverted) || !strings.Contains(err.Error(), "--reinit") {
		t.Fatalf("error %v, want ErrConverted naming --reinit", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("destination left behind: %v", err)
	}
	res, err := convert.Run(context.Background(), convert.Options{Src: src, Dst: dst, Variant: attnscale.SSMax, Init: convert.InitConst, S: f64(0.3), Reinit: true, Layers: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Dropped) != 4 || len(res.Added) != 1 || res.Added[0] != "model.layers.1.self_attn.ssmax_s" {
		t.Errorf("dropped %v added %v", res.Dropped, res.Added)
	}
	c, err := checkpoint.Open(dst, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	spec, err := arch.Load(c)
	if err != nil {
		t.Fatal(err)
	}
	if spec.SSMax.Variant != attnscale.SSMax || len(spec.SSMax.Layers) != 1 || spec.SSMax.Layers[0] != 1 {
		t.Errorf("ssmax %+v", spec.SSMax)
	}
	if _, ok := c.Tensor("model.layers.0.self_attn.ssmax_s"); ok {
		t.Errorf("layer 0 kept its SSMax tensor")
	}
}

func TestDTypeConversion(t *testing.T) {
	src := filepath.Join(fixtures, "llama-tiny")
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := convert.Run(context.Background(), convert.Options{Src: src, Dst: dst, Variant: attnscale.SSMax, Init: convert.InitMatch, DType: "bf16"}); err != nil {
		t.Fatal(err)
	}
	s, _ := checkpoint.Open(src, checkpoint.Options{})
	defer s.Close()
	d, _ := checkpoint.Open(dst, checkpoint.Options{})
	defer d.Close()
	for _, name := range s.TensorNames() {
		tt, _ := d.Tensor(name)
		if tt.DType != safetensors.BF16 {
			t.Fatalf("%s: %s, want BF16", name, tt.DType)
		}
		a, _ := s.Float32s(name)
		b, _ := d.Float32s(name)
		enc := make([]byte, 2*len(a))
		safetensors.EncodeFloat32(safetensors.BF16, a, enc)
		want := make([]float32, len(a))
		safetensors.DecodeFloat32(safetensors.BF16, enc, want)
		for i := range a {
			if b[i] != want[i] {
				t.Fatalf("%s[%d] = %v, want bf16(%v) = %v", name, i, b[i], a[i], want[i])
			}
		}
	}
	if tt, _ := d.Tensor("model.layers.0.self_attn.ssmax_s"); tt.DType != safetensors.F32 {
		t.Errorf("SSMax tensor dtype %s", tt.DType)
	}
	if got := string(readConfig(t, dst)["torch_dtype"]); got != `"bfloat16"` {
		t.Errorf("torch_dtype %s", got)
	}
}

func TestShardedCheckpoint(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	spec := testckpt.MustWrite(t, src, testckpt.Configs[arch.Qwen3], testckpt.Options{DType: safetensors.BF16, ShardSize: 12000})
	srcIdx, err := safetensors.ReadIndex(filepath.Join(src, safetensors.IndexFileName))
	if err != nil {
		t.Fatal(err)
	}
	if len(srcIdx.Files()) < 3 {
		t.Fatalf("want a sharded source, got %v", srcIdx.Files())
	}
	dst := filepath.Join(t.TempDir(), "keep")
	res, err := convert.Run(context.Background(), convert.Options{Src: src, Dst: dst, Variant: attnscale.Bias, Init: convert.InitIdentity})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Shards, ",") != strings.Join(srcIdx.Files(), ",") {
		t.Errorf("shards %v, source %v", res.Shards, srcIdx.Files())
	}
	idx, err := safetensors.ReadIndex(filepath.Join(dst, safetensors.IndexFileName))
	if err != nil {
		t.Fatal(err)
	}
	for l := 0; l < spec.Layers; l++ {
		if idx.WeightMap[spec.SSMaxS(l)] != srcIdx.WeightMap[spec.Name(arch.RoleKNorm, l)] && idx.WeightMap[spec.SSMaxS(l)] != srcIdx.WeightMap[spec.Name(arch.RoleQ, l)] {
			t.Errorf("layer %d s in %s, attention in %s", l, idx.WeightMap[spec.SSMaxS(l)], srcIdx.WeightMap[spec.Name(arch.RoleQ, l)])
		}
	}
	for name, file := range srcIdx.WeightMap {
		if idx.WeightMap[name] != file {
			t.Errorf("%s moved from %s to %s", name, file, idx.WeightMap[name])
		}
	}
	srcHash, _ := tensorHashes(t, src)
	dstHash, _ := tensorHashes(t, dst)
	for name, h := range srcHash {
		if dstHash[name] != h {
			t.Errorf("%s changed", name)
		}
	}
	one := filepath.Join(t.TempDir(), "one")
	res, err = convert.Run(context.Background(), convert.Options{Src: src, Dst: one, Variant: attnscale.SSMax, Init: convert.InitMatch, ShardSize: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Shards) != 1 || res.Shards[0] != "model.safetensors" {
		t.Errorf("re-shard into one: %v", res.Shards)
	}
	if _, err := os.Stat(filepath.Join(one, safetensors.IndexFileName)); !os.IsNotExist(err) {
		t.Errorf("single-file output has an index")
	}
}

// snapshot records the size, mtime and hash of every file under dir.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		out[p] = fmt.Sprintf("%s %d %x", fi.ModTime().Format(time.RFC3339Nano), fi.Size(), sha256.Sum256(b))
		return nil
	})
	return out
}

func TestBadInputLeavesNothing(t *testing.T) {
	base := t.TempDir()
	good := filepath.Join(base, "good")
	testckpt.MustWrite(t, good, testckpt.Configs[arch.Llama], testckpt.Options{})
	truncated := filepath.Join(base, "truncated")
	testckpt.MustWrite(t, truncated, testckpt.Configs[arch.Llama], testckpt.Options{})
	f := filepath.Join(truncated, "model.safetensors")
	st, _ := os.Stat(f)
	os.Truncate(f, st.Size()-3)
	noHeads := filepath.Join(base, "noheads")
	testckpt.MustWrite(t, noHeads, testckpt.Configs[arch.Llama], testckpt.Options{})
	cfg := testckpt.Clone(testckpt.Configs[arch.Llama])
	delete(cfg, "num_attention_heads")
	data, _ := json.Marshal(cfg)
	os.WriteFile(filepath.Join(noHeads, "config.json"), data, 0o644)
	bert := filepath.Join(base, "bert")
	testckpt.MustWrite(t, bert, testckpt.Configs[arch.Llama], testckpt.Options{})
	cfg = testckpt.Clone(testckpt.Configs[arch.Llama])
	cfg["model_type"] = "bert"
	data, _ = json.Marshal(cfg)
	os.WriteFile(filepath.Join(bert, "config.json"), data, 0o644)
	missing := filepath.Join(base, "missing")
	testckpt.MustWrite(t, missing, testckpt.Configs[arch.Llama], testckpt.Options{Omit: map[string]bool{"model.layers.0.mlp.up_proj.weight": true}})

	tests := []struct {
		name    string
		o       convert.Options
		message string
	}{
		{"truncated file", convert.Options{Src: truncated}, "model.safetensors"},
		{"config without heads", convert.Options{Src: noHeads}, "num_attention_heads"},
		{"unsupported family", convert.Options{Src: bert}, `"bert"`},
		{"missing tensor", convert.Options{Src: missing}, "model.layers.0.mlp.up_proj.weight"},
		{"identity without bias", convert.Options{Src: good, Init: convert.InitIdentity}, "--variant bias"},
		{"const without s", convert.Options{Src: good, Init: convert.InitConst}, "--s"},
		{"b without bias variant", convert.Options{Src: good, B: f64(1)}, "--b"},
		{"bad layers", convert.Options{Src: good, Layers: "0-7"}, "outside the model's layers 0-1"},
		{"bad dtype", convert.Options{Src: good, DType: "f8"}, "dtype"},
		{"revert unconverted", convert.Options{Src: good, Revert: true}, "no SSMax state"},
		{"dst is src", convert.Options{Src: good, Dst: good}, "is the source"},
		{"dst inside src", convert.Options{Src: good, Dst: filepath.Join(good, "sub")}, "inside the source"},
		{"dst contains src", convert.Options{Src: good, Dst: base, Force: true}, "contains the source"},
		{"dst exists", convert.Options{Src: good, Dst: missing}, "exists (use --force"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, base)
			o := tc.o
			if o.Variant == "" {
				o.Variant = attnscale.SSMax
			}
			if o.Init == "" {
				o.Init = convert.InitMatch
			}
			dst := o.Dst
			if dst == "" {
				dst = filepath.Join(t.TempDir(), "out")
				o.Dst = dst
			}
			_, err := convert.Run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.message) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one line naming %q", err, tc.message)
			}
			if tc.o.Dst == "" {
				if _, err := os.Stat(dst); !os.IsNotExist(err) {
					t.Errorf("destination exists after failure")
				}
				left, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), ".*tmp*"))
				if len(left) > 0 {
					t.Errorf("temporary files left: %v", left)
				}
			}
			after := snapshot(t, base)
			if len(after) != len(before) {
				t.Errorf("files under the sources changed: %d before, %d after", len(before), len(after))
			}
			for p, v := range before {
				if after[p] != v {
					t.Errorf("%s changed", p)
				}
			}
		})
	}
}

func TestCancelLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "out")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := convert.Run(ctx, convert.Options{Src: filepath.Join(fixtures, "gpt2-tiny"), Dst: dst, Variant: attnscale.SSMax, Init: convert.InitMatch})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestForceReplaces(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "out")
	os.MkdirAll(dst, 0o755)
	os.WriteFile(filepath.Join(dst, "stale"), []byte("x"), 0o644)
	if _, err := convert.Run(context.Background(), convert.Options{Src: filepath.Join(fixtures, "gpt2-tiny"), Dst: dst, Variant: attnscale.SSMax, Init: convert.InitMatch, Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "stale")); !os.IsNotExist(err) {
		t.Errorf("old destination content survived --force")
	}
	if entries, _ := os.ReadDir(filepath.Dir(dst)); len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestParseLayers(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
		err  bool
	}{
		{"", 3, "[0 1 2]", false},
		{"all", 2, "[0 1]", false},
		{"0-2,5", 8, "[0 1 2 5]", false},
		{"5,0-1,1", 8, "[0 1 5]", false},
		{"3-1", 8, "", true},
		{"x", 8, "", true},
		{"8", 8, "", true},
		{"-1", 8, "", true},
	}
	for _, tc := range tests {
		got, err := convert.ParseLayers(tc.in, tc.n)
		if (err != nil) != tc.err {
			t.Errorf("ParseLayers(%q): error %v", tc.in, err)
			continue
		}
		if err == nil && fmt.Sprint(got) != tc.want {
			t.Errorf("ParseLayers(%q) = %v, want %s", tc.in, got, tc.want)
		}
	}
}
