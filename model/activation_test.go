package model_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nlpodyssey/spago/mat"
	"github.com/ssmax/ssmax/arch"
	"github.com/ssmax/ssmax/checkpoint"
	"github.com/ssmax/ssmax/model"
	"github.com/ssmax/ssmax/safetensors"
)

// refActivations are the MLP activations of Hugging Face's ACT2FN that the
// model supports, written from their PyTorch definitions in float64.
var refActivations = map[string]func(float64) float64{
	"silu":              func(x float64) float64 { return x / (1 + math.Exp(-x)) },
	"swish":             func(x float64) float64 { return x / (1 + math.Exp(-x)) },
	"gelu":              func(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) },
	"gelu_python":       func(x float64) float64 { return x * 0.5 * (1 + math.Erf(x/math.Sqrt2)) },
	"gelu_new":          geluTanh64,
	"gelu_pytorch_tanh": geluTanh64,
	"gelu_accurate":     geluTanh64,
	"gelu_fast": func(x float64) float64 {
		return 0.5 * x * (1 + math.Tanh(x*0.7978845608*(1+0.044715*x*x)))
	},
	"quick_gelu": func(x float64) float64 { return x / (1 + math.Exp(-1.702*x)) },
	"relu":       func(x float64) float64 { return math.Max(x, 0) },
}

func geluTanh64(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

// withActivation copies the fixture dir into a temporary directory with
// config.json's activation key set to act.
func withActivation(t *testing.T, dir, key, act string) string {
	t.Helper()
	out := t.TempDir()
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg[key] = act
	raw, err = json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := os.ReadFile(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "model.safetensors"), w, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMLPActivationFromConfig: the MLP uses the activation config.json
// names, in both families (GPT-2's activation_function, ungated; Llama's
// hidden_act, gated act(gate)·up), in the full forward and in the decoder.
// The logits equal a float64 forward pass written here from the raw
// weights, independently of package kernels; that reference reproduces the
// fixtures' PyTorch golden logits with the fixture's own activation.
func TestMLPActivationFromConfig(t *testing.T) {
	for _, fx := range []struct{ name, key, own string }{
		{"llama-tiny", "hidden_act", "silu"},
		{"gpt2-tiny", "activation_function", "gelu_new"},
	} {
		dir := filepath.Join(fixtures, fx.name)
		g, gf := readGolden(t, dir)
		tokens := g.Tokens[:24]
		ref := newRefModel(t, dir)

		// The reference against the independent PyTorch goldens.
		want, err := gf.Float32s("logits.softmax")
		if err != nil {
			t.Fatal(err)
		}
		own := ref.forward(tokens, refActivations[fx.own])
		if e := maxRelErr(want[:len(own)], own); e > 1e-5 {
			t.Fatalf("%s: float64 reference vs golden logits: relative error %.3g", fx.name, e)
		}

		for act, fn := range refActivations {
			t.Run(fx.name+"/"+act, func(t *testing.T) {
				m, _ := load(t, withActivation(t, dir, fx.key, act), model.Options{})
				want := ref.forward(tokens, fn)
				logits, err := m.Forward(model.Input{IDs: tokens})
				if err != nil {
					t.Fatal(err)
				}
				got := logits.Value().(*mat.Dense[float32]).Data().F32()
				e := maxRelErr(got, want)
				if e > 2e-5 {
					t.Errorf("forward: relative logit error %.3g > 2e-5", e)
				}
				t.Logf("relative logit error %.2g", e)
				d := m.NewDecoder()
				var dec []float32
				for i := 0; i < len(tokens); i += 5 {
					step, err := d.Feed(tokens[i:min(i+5, len(tokens))])
					if err != nil {
						t.Fatal(err)
					}
					dec = append(dec, step...)
				}
				if e := maxRelErr(dec, want); e > 2e-5 {
					t.Errorf("decoder: relative logit error %.3g > 2e-5", e)
				}
				// The activation matters: the logits are not those of the
				// fixture's own activation, by more than the tolerance
				// (gelu_new and gelu_pytorch_tanh are one function, so are
				// silu and swish...; the exact and the tanh GELU differ by
				// 7e-4 here).
				if e := maxRelErr(got, own); e < 1e-4 && !sameFunction(act, fx.own) {
					t.Errorf("%s gives the logits of %s (relative difference %.3g)", act, fx.own, e)
				}
			})
		}
	}
}

// sameFunction reports whether two activation names are one function.
func sameFunction(a, b string) bool {
	class := func(s string) string {
		switch s {
		case "swish":
			return "silu"
		case "gelu_pytorch_tanh", "gelu_accurate", "gelu_fast":
			return "gelu_new"
		case "gelu_python":
			return "gelu"
		}
		return s
	}
	return class(a) == class(b)
}

// TestUnknownActivationRejected: an activation the engine does not
// implement fails at load, in one line naming config.json and the
// activation, rather than running another one.
func TestUnknownActivationRejected(t *testing.T) {
	for _, fx := range []struct{ name, key string }{{"llama-tiny", "hidden_act"}, {"gpt2-tiny", "activation_function"}} {
		dir := withActivation(t, filepath.Join(fixtures, fx.name), fx.key, "gelu_10")
		c, err := checkpoint.Open(dir, checkpoint.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		spec, err := arch.Load(c)
		if err != nil {
			t.Fatal(err)
		}
		_, err = model.Load(c, spec, model.Options{})
		if err == nil {
			t.Fatalf("%s: gelu_10 loaded", fx.name)
		}
		msg := err.Error()
		if !strings.Contains(msg, "config.json") || !strings.Contains(msg, `"gelu_10"`) || strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q: want one line naming config.json and \"gelu_10\"", fx.name, msg)
		}
		if _, err := model.New(c.Config, 1); err == nil || !strings.Contains(err.Error(), `"gelu_10"`) {
			t.Errorf("%s: model.New: error %v, want the activation named", fx.name, err)
		}
	}
}

func maxRelErr(got []float32, want []float64) float64 {
	worst := 0.0
	for i := range want {
		d := math.Abs(float64(got[i])-want[i]) / math.Max(1, math.Abs(want[i]))
		worst = math.Max(worst, d)
	}
	return worst
}

// refModel is a float64 forward pass of the fixtures' two families
// (GPT-2: LayerNorm, learned positions, Conv1D [in,out] weights, fused
// c_attn, tied head; Llama: RMSNorm, rotate-half RoPE, grouped-query
// attention, gated MLP, untied head), softmax attention, one document.
type refModel struct {
	llama                       bool
	layers, heads, kvHeads, dim int
	hidden, inter, vocab        int
	eps, theta                  float64
	w                           map[string][]float64
}

func newRefModel(t *testing.T, dir string) *refModel {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	num := func(k string) float64 { return c[k].(float64) }
	r := &refModel{llama: c["model_type"] == "llama", w: map[string][]float64{}}
	if r.llama {
		r.layers, r.heads, r.kvHeads = int(num("num_hidden_layers")), int(num("num_attention_heads")), int(num("num_key_value_heads"))
		r.hidden, r.inter, r.vocab = int(num("hidden_size")), int(num("intermediate_size")), int(num("vocab_size"))
		r.eps, r.theta = num("rms_norm_eps"), num("rope_theta")
	} else {
		r.layers, r.heads = int(num("n_layer")), int(num("n_head"))
		r.kvHeads = r.heads
		r.hidden, r.vocab = int(num("n_embd")), int(num("vocab_size"))
		r.inter = 4 * r.hidden
		r.eps = num("layer_norm_epsilon")
	}
	r.dim = r.hidden / r.heads
	f, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, ti := range f.Tensors() {
		v, err := f.Float32s(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		w := make([]float64, len(v))
		for i, x := range v {
			w[i] = float64(x)
		}
		r.w[ti.Name] = w
	}
	return r
}

// weight returns a tensor by name, failing loudly when absent.
func (r *refModel) weight(name string) []float64 {
	w, ok := r.w[name]
	if !ok {
		panic("reference: no tensor " + name)
	}
	return w
}

// linear is y = x·Wᵀ + b for a weight stored [out, in] (nn.Linear), or
// y = x·W + b for one stored [in, out] (GPT-2's Conv1D); b may be nil.
func linear(x []float64, rows, in, out int, w, b []float64, inOut bool) []float64 {
	y := make([]float64, rows*out)
	for t := 0; t < rows; t++ {
		for o := 0; o < out; o++ {
			s := 0.0
			if b != nil {
				s = b[o]
			}
			for i := 0; i < in; i++ {
				if inOut {
					s += x[t*in+i] * w[i*out+o]
				} else {
					s += x[t*in+i] * w[o*in+i]
				}
			}
			y[t*out+o] = s
		}
	}
	return y
}

func (r *refModel) norm(x []float64, rows int, gain, bias []float64) []float64 {
	d := r.hidden
	y := make([]float64, len(x))
	for t := 0; t < rows; t++ {
		row := x[t*d : (t+1)*d]
		mean := 0.0
		if bias != nil { // LayerNorm
			for _, v := range row {
				mean += v
			}
			mean /= float64(d)
		}
		ms := 0.0
		for _, v := range row {
			ms += (v - mean) * (v - mean)
		}
		inv := 1 / math.Sqrt(ms/float64(d)+r.eps)
		for j, v := range row {
			y[t*d+j] = (v - mean) * inv * gain[j]
			if bias != nil {
				y[t*d+j] += bias[j]
			}
		}
	}
	return y
}

// rope rotates each head of x (rows × heads·dim) by its position, rotate-half.
func (r *refModel) rope(x []float64, rows, heads int) {
	half := r.dim / 2
	for t := 0; t < rows; t++ {
		for h := 0; h < heads; h++ {
			v := x[(t*heads+h)*r.dim : (t*heads+h+1)*r.dim]
			for i := 0; i < half; i++ {
				a := float64(t) * math.Pow(r.theta, -2*float64(i)/float64(r.dim))
				c, s := math.Cos(a), math.Sin(a)
				v[i], v[i+half] = v[i]*c-v[i+half]*s, v[i+half]*c+v[i]*s
			}
		}
	}
}

// attend is causal softmax attention; query head h reads kv head
// h/(heads/kvHeads).
func (r *refModel) attend(q, k, v []float64, rows int) []float64 {
	H, KV, d := r.heads, r.kvHeads, r.dim
	out := make([]float64, rows*H*d)
	p := make([]float64, rows)
	for h := 0; h < H; h++ {
		kh := h / (H / KV)
		for t := 0; t < rows; t++ {
			m := math.Inf(-1)
			for u := 0; u <= t; u++ {
				s := 0.0
				for i := 0; i < d; i++ {
					s += q[(t*H+h)*d+i] * k[(u*KV+kh)*d+i]
				}
				p[u] = s / math.Sqrt(float64(d))
				m = math.Max(m, p[u])
			}
			sum := 0.0
			for u := 0; u <= t; u++ {
				p[u] = math.Exp(p[u] - m)
				sum += p[u]
			}
			for u := 0; u <= t; u++ {
				for i := 0; i < d; i++ {
					out[(t*H+h)*d+i] += p[u] / sum * v[(u*KV+kh)*d+i]
				}
			}
		}
	}
	return out
}

// forward returns the logits [len(ids), vocab] with the MLP activation act.
func (r *refModel) forward(ids []int, act func(float64) float64) []float64 {
	T, D, F := len(ids), r.hidden, r.inter
	x := make([]float64, T*D)
	emb := "transformer.wte.weight"
	if r.llama {
		emb = "model.embed_tokens.weight"
	}
	for t, id := range ids {
		copy(x[t*D:(t+1)*D], r.weight(emb)[id*D:(id+1)*D])
		if !r.llama {
			for j := 0; j < D; j++ {
				x[t*D+j] += r.weight("transformer.wpe.weight")[t*D+j]
			}
		}
	}
	add := func(dst, src []float64) {
		for i := range dst {
			dst[i] += src[i]
		}
	}
	kvw := r.kvHeads * r.dim
	for l := 0; l < r.layers; l++ {
		if r.llama {
			p := func(s string) []float64 { return r.weight("model.layers." + strconv.Itoa(l) + "." + s + ".weight") }
			h := r.norm(x, T, p("input_layernorm"), nil)
			q := linear(h, T, D, D, p("self_attn.q_proj"), nil, false)
			k := linear(h, T, D, kvw, p("self_attn.k_proj"), nil, false)
			v := linear(h, T, D, kvw, p("self_attn.v_proj"), nil, false)
			r.rope(q, T, r.heads)
			r.rope(k, T, r.kvHeads)
			add(x, linear(r.attend(q, k, v, T), T, D, D, p("self_attn.o_proj"), nil, false))
			h = r.norm(x, T, p("post_attention_layernorm"), nil)
			gate := linear(h, T, D, F, p("mlp.gate_proj"), nil, false)
			up := linear(h, T, D, F, p("mlp.up_proj"), nil, false)
			for i := range gate {
				gate[i] = act(gate[i]) * up[i]
			}
			add(x, linear(gate, T, F, D, p("mlp.down_proj"), nil, false))
			continue
		}
		p := func(s string) []float64 { return r.weight("transformer.h." + strconv.Itoa(l) + "." + s) }
		h := r.norm(x, T, p("ln_1.weight"), p("ln_1.bias"))
		qkv := linear(h, T, D, 3*D, p("attn.c_attn.weight"), p("attn.c_attn.bias"), true)
		q, k, v := make([]float64, T*D), make([]float64, T*D), make([]float64, T*D)
		for t := 0; t < T; t++ {
			copy(q[t*D:(t+1)*D], qkv[t*3*D:])
			copy(k[t*D:(t+1)*D], qkv[t*3*D+D:])
			copy(v[t*D:(t+1)*D], qkv[t*3*D+2*D:])
		}
		add(x, linear(r.attend(q, k, v, T), T, D, D, p("attn.c_proj.weight"), p("attn.c_proj.bias"), true))
		h = r.norm(x, T, p("ln_2.weight"), p("ln_2.bias"))
		up := linear(h, T, D, F, p("mlp.c_fc.weight"), p("mlp.c_fc.bias"), true)
		for i := range up {
			up[i] = act(up[i])
		}
		add(x, linear(up, T, F, D, p("mlp.c_proj.weight"), p("mlp.c_proj.bias"), true))
	}
	if r.llama {
		return linear(r.norm(x, T, r.weight("model.norm.weight"), nil), T, D, r.vocab, r.weight("lm_head.weight"), nil, false)
	}
	h := r.norm(x, T, r.weight("transformer.ln_f.weight"), r.weight("transformer.ln_f.bias"))
	return linear(h, T, D, r.vocab, r.weight("transformer.wte.weight"), nil, false)
}
