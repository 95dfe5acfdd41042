// Command gencheckpoint writes a synthetic Llama-shaped Hugging Face
// checkpoint (config.json plus sharded safetensors and the index) for
// benchmarking `ssmax convert`. Tensor bytes are produced on the fly by a
// cheap deterministic PRNG into one reused buffer, so memory stays small
// whatever the model size.
//
//	go run ./bench/gencheckpoint -out DIR [-layers 22 -hidden 2048 -intermediate 5632
//	    -heads 32 -kv-heads 4 -vocab 32000 -dtype bf16 -shard-size 1GB -seed 1]
//
// The defaults are the shape of TinyLlama-1.1B (about 2.2 GB in bf16); raise
// -layers to scale up. Every value is a finite, normal float of magnitude in
// [2^-8, 2^-4) with a random sign and 7 random mantissa bits, so bf16 and f16
// hold each other's values exactly. -print-size prints the number of tensor
// data bytes the shape needs and exits without writing.
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ssmax/ssmax/safetensors"
)

// options are the command-line settings.
type options struct {
	out                          string
	layers, hidden, intermediate int
	heads, kvHeads, vocab        int
	context                      int
	dtype                        safetensors.DType
	shardSize                    int64
	seed                         uint64
	printSize                    bool
	verify                       string
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "gencheckpoint:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	tensors := llamaTensors(o)
	var total int64
	for _, t := range tensors {
		total += t.Size
	}
	if o.printSize {
		fmt.Fprintln(stdout, total)
		return nil
	}
	if o.verify != "" {
		return verify(o, tensors, stdout)
	}
	start := time.Now()
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	if err := writeConfig(o); err != nil {
		return err
	}
	files, err := safetensors.WriteSharded(o.out, safetensors.Metadata{{Key: "format", Value: "pt"}}, tensors, o.shardSize)
	if err != nil {
		return err
	}
	el := time.Since(start).Seconds()
	shards := max(len(files)-1, 1) // the index is last when sharded
	fmt.Fprintf(stdout, "wrote %s: %d tensors, %d bytes (%.2f GB) in %d shard(s), %.1fs (%.2f GB/s)\n",
		o.out, len(tensors), total, float64(total)/1e9, shards, el, float64(total)/1e9/el)
	return nil
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("gencheckpoint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	var dtype, shard string
	fs.StringVar(&o.out, "out", "", "output directory (created; required unless -print-size)")
	fs.IntVar(&o.layers, "layers", 22, "num_hidden_layers")
	fs.IntVar(&o.hidden, "hidden", 2048, "hidden_size")
	fs.IntVar(&o.intermediate, "intermediate", 5632, "intermediate_size")
	fs.IntVar(&o.heads, "heads", 32, "num_attention_heads")
	fs.IntVar(&o.kvHeads, "kv-heads", 4, "num_key_value_heads")
	fs.IntVar(&o.vocab, "vocab", 32000, "vocab_size")
	fs.IntVar(&o.context, "context", 2048, "max_position_embeddings")
	fs.StringVar(&dtype, "dtype", "bf16", "tensor dtype: bf16, f16 or f32")
	fs.StringVar(&shard, "shard-size", "1GB", "maximum shard size (e.g. 1GB, 500MB, 2GiB)")
	fs.Uint64Var(&o.seed, "seed", 1, "PRNG seed")
	fs.BoolVar(&o.printSize, "print-size", false, "print the tensor data size in bytes and exit")
	fs.StringVar(&o.verify, "verify", "", "instead of writing, check that checkpoint `DIR` holds every generated tensor\n(same flags; converted float dtypes are compared after the same conversion)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch strings.ToLower(dtype) {
	case "bf16", "bfloat16":
		o.dtype = safetensors.BF16
	case "f16", "fp16", "float16":
		o.dtype = safetensors.F16
	case "f32", "fp32", "float32":
		o.dtype = safetensors.F32
	default:
		return nil, fmt.Errorf("-dtype %q: want bf16, f16 or f32", dtype)
	}
	var err error
	if o.shardSize, err = safetensors.ParseSize(shard); err != nil || o.shardSize <= 0 {
		return nil, fmt.Errorf("-shard-size %q: want a positive size like 1GB", shard)
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"layers", o.layers}, {"hidden", o.hidden}, {"intermediate", o.intermediate},
		{"heads", o.heads}, {"kv-heads", o.kvHeads}, {"vocab", o.vocab}, {"context", o.context}} {
		if v.n <= 0 {
			return nil, fmt.Errorf("-%s %d: must be positive", v.name, v.n)
		}
	}
	if o.hidden%o.heads != 0 {
		return nil, fmt.Errorf("-hidden %d is not a multiple of -heads %d", o.hidden, o.heads)
	}
	if o.heads%o.kvHeads != 0 {
		return nil, fmt.Errorf("-heads %d is not a multiple of -kv-heads %d", o.heads, o.kvHeads)
	}
	if o.out == "" && !o.printSize && o.verify == "" {
		return nil, errors.New("-out DIR is required")
	}
	return o, nil
}

// llamaTensors lists the tensors of the model in state-dict order (the order
// the Hugging Face sharder sees them), each streaming generated data.
func llamaTensors(o *options) []safetensors.WriteTensor {
	h, i := int64(o.hidden), int64(o.intermediate)
	kv := int64(o.kvHeads) * (h / int64(o.heads))
	var ts []safetensors.WriteTensor
	add := func(name string, shape ...int64) {
		ts = append(ts, generated(o, name, shape))
	}
	add("model.embed_tokens.weight", int64(o.vocab), h)
	for l := range o.layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		add(p+"self_attn.q_proj.weight", h, h)
		add(p+"self_attn.k_proj.weight", kv, h)
		add(p+"self_attn.v_proj.weight", kv, h)
		add(p+"self_attn.o_proj.weight", h, h)
		add(p+"mlp.gate_proj.weight", i, h)
		add(p+"mlp.up_proj.weight", i, h)
		add(p+"mlp.down_proj.weight", h, i)
		add(p+"input_layernorm.weight", h)
		add(p+"post_attention_layernorm.weight", h)
	}
	add("model.norm.weight", h)
	add("lm_head.weight", int64(o.vocab), h)
	return ts
}

// buf is the one chunk buffer every tensor fills in turn (WriteFile calls
// the Write functions one at a time).
var buf = make([]byte, 1<<20)

// generated returns a tensor whose bytes come from a PRNG seeded by the
// global seed and the tensor's name, so its content does not depend on the
// other tensors or on the shard layout.
func generated(o *options, name string, shape []int64) safetensors.WriteTensor {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	size := n * int64(elemSize(o.dtype))
	seed := tensorSeed(o, name)
	dt := o.dtype
	return safetensors.WriteTensor{
		Name:  name,
		DType: dt,
		Shape: shape,
		Size:  size,
		Write: func(w io.Writer) error {
			state := seed
			for left := size; left > 0; {
				chunk := buf[:min(left, int64(len(buf)))]
				state = fill(dt, chunk, state)
				if _, err := w.Write(chunk); err != nil {
					return err
				}
				left -= int64(len(chunk))
			}
			return nil
		},
	}
}

// tensorSeed is the PRNG seed of tensor name.
func tensorSeed(o *options, name string) uint64 {
	hash := fnv.New64a()
	hash.Write([]byte(name))
	return hash.Sum64() ^ o.seed*0x9e3779b97f4a7c15
}

// fill writes random finite values of dt into b and returns the PRNG state
// to continue from. Every 16-bit value (bf16, f16) or 32-bit value (f32)
// takes a random sign, an exponent in [-8, -5] and random mantissa bits (7
// for bf16 and f16, 23 for f32), all from one splitmix64 draw per 8 bytes.
func fill(dt safetensors.DType, b []byte, state uint64) uint64 {
	var shape func(uint64) uint64
	switch dt {
	case safetensors.BF16:
		shape = func(r uint64) uint64 {
			return r&0x807f807f807f807f | ((r>>7)&0x0003000300030003+0x0077007700770077)<<7
		}
	case safetensors.F16:
		shape = func(r uint64) uint64 {
			return r&0x8000800080008000 | ((r>>7)&0x0003000300030003+0x0007000700070007)<<10 | (r&0x007f007f007f007f)<<3
		}
	default: // F32
		shape = func(r uint64) uint64 {
			return r&0x807fffff807fffff | ((r>>23)&0x0000000300000003+0x0000007700000077)<<23
		}
	}
	for len(b) >= 8 {
		state += 0x9e3779b97f4a7c15
		binary.LittleEndian.PutUint64(b, shape(mix(state)))
		b = b[8:]
	}
	if len(b) > 0 { // tail of a tensor whose size is not a multiple of 8
		state += 0x9e3779b97f4a7c15
		var t [8]byte
		binary.LittleEndian.PutUint64(t[:], shape(mix(state)))
		copy(b, t[:])
	}
	return state
}

// mix is the splitmix64 output function.
func mix(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// writeConfig writes a Llama config.json for the shape.
func writeConfig(o *options) error {
	torch := map[safetensors.DType]string{safetensors.BF16: "bfloat16", safetensors.F16: "float16", safetensors.F32: "float32"}[o.dtype]
	cfg := []struct {
		k string
		v any
	}{
		{"architectures", []string{"LlamaForCausalLM"}},
		{"model_type", "llama"},
		{"vocab_size", o.vocab},
		{"hidden_size", o.hidden},
		{"intermediate_size", o.intermediate},
		{"num_hidden_layers", o.layers},
		{"num_attention_heads", o.heads},
		{"num_key_value_heads", o.kvHeads},
		{"max_position_embeddings", o.context},
		{"hidden_act", "silu"},
		{"rms_norm_eps", 1e-5},
		{"rope_theta", 10000.0},
		{"rope_scaling", nil},
		{"tie_word_embeddings", false},
		{"attention_bias", false},
		{"mlp_bias", false},
		{"bos_token_id", 1},
		{"eos_token_id", 2},
		{"torch_dtype", torch},
	}
	var b strings.Builder
	b.WriteString("{\n")
	for i, e := range cfg {
		v, err := json.Marshal(e.v)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "  %q: %s", e.k, v)
		if i < len(cfg)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("}\n")
	return os.WriteFile(filepath.Join(o.out, "config.json"), []byte(b.String()), 0o644)
}
