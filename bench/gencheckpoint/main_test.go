package main

import (
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/safetensors"
)

// gen writes a tiny checkpoint and opens it.
func gen(t *testing.T, dtype, shard string) *checkpoint.Checkpoint {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ckpt")
	args := []string{"-out", dir, "-layers", "3", "-hidden", "64", "-intermediate", "176",
		"-heads", "4", "-kv-heads", "2", "-vocab", "300", "-dtype", dtype, "-shard-size", shard}
	if err := run(args, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	c, err := checkpoint.Open(dir, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestGenerated(t *testing.T) {
	for _, dt := range []string{"bf16", "f16", "f32"} {
		t.Run(dt, func(t *testing.T) {
			a := gen(t, dt, "40KB")
			b := gen(t, dt, "1GB")
			if len(a.Shards) < 3 || len(b.Shards) != 1 {
				t.Fatalf("shards: %d and %d", len(a.Shards), len(b.Shards))
			}
			n := 0
			for _, f := range a.Shards {
				for _, ti := range f.Tensors() {
					n++
					vals, err := f.Float32s(ti.Name)
					if err != nil {
						t.Fatal(err)
					}
					for i, v := range vals {
						m := math.Abs(float64(v))
						if m < 1.0/256 || m >= 1.0/16 {
							t.Fatalf("%s[%d] = %g, want magnitude in [2^-8, 2^-4)", ti.Name, i, v)
						}
					}
					// Same content whatever the sharding.
					x, _ := f.Bytes(ti.Name)
					y, err := b.Shards[0].Bytes(ti.Name)
					if err != nil || string(x) != string(y) {
						t.Fatalf("%s differs between shardings (%v)", ti.Name, err)
					}
				}
			}
			if n != 3+9*3 {
				t.Fatalf("%d tensors, want %d", n, 3+9*3)
			}
		})
	}
}

// TestBF16ToF16Exact checks that the bf16 values survive a round trip
// through f16 (so a --dtype f16 conversion of the benchmark loses nothing).
func TestBF16ToF16Exact(t *testing.T) {
	b := make([]byte, 1<<16+6)
	fill(safetensors.BF16, b, 7)
	for i := 0; i < len(b); i += 2 {
		h := uint16(b[i]) | uint16(b[i+1])<<8
		v := safetensors.BF16ToFloat32(h)
		if back := safetensors.F16ToFloat32(safetensors.Float32ToF16(v)); back != v || math.IsInf(float64(v), 0) || v != v {
			t.Fatalf("value %d: bf16 %#04x = %g, through f16 %g", i/2, h, v, back)
		}
	}
}

func TestVerify(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ckpt")
	shape := []string{"-layers", "2", "-hidden", "64", "-intermediate", "176", "-heads", "4", "-kv-heads", "2", "-vocab", "300"}
	if err := run(append([]string{"-out", dir, "-shard-size", "50KB"}, shape...), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run(append([]string{"-verify", dir}, shape...), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "verified 21 tensors") {
		t.Errorf("output %q", out.String())
	}
	// Re-encode to f16 (exact for these values): verify compares after the
	// same conversion.
	c, err := checkpoint.Open(dir, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ws []safetensors.WriteTensor
	for _, f := range c.Shards {
		for _, ti := range f.Tensors() {
			w, err := safetensors.Convert(f, ti.Name, safetensors.F16)
			if err != nil {
				t.Fatal(err)
			}
			ws = append(ws, w)
		}
	}
	conv := filepath.Join(t.TempDir(), "f16")
	if err := os.MkdirAll(conv, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := safetensors.WriteSharded(conv, nil, ws, 1<<30); err != nil {
		t.Fatal(err)
	}
	c.Close()
	cfg, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	os.WriteFile(filepath.Join(conv, "config.json"), cfg, 0o644)
	out.Reset()
	if err := run(append([]string{"-verify", conv}, shape...), &out, io.Discard); err != nil || !strings.Contains(out.String(), "21 converted BF16 to F16") {
		t.Fatalf("f16: %v %q", err, out.String())
	}
	// One flipped byte in the last tensor of the file is found.
	path := filepath.Join(conv, "model.safetensors")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-3] ^= 1
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	err = run(append([]string{"-verify", conv}, shape...), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "lm_head.weight") {
		t.Fatalf("corrupt file: %v", err)
	}
}
