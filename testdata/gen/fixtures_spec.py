"""The fixtures testdata/gen writes, and the code that writes them in the layout of the
independent fixtures (config.json, model.safetensors or shards + index, golden.safetensors,
golden.json, golden_grads.safetensors; MANIFEST.json beside them)."""
import copy
import hashlib
import json
import os

import numpy as np
import torch

import ref
import st

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures"))
GENERATOR = "testdata/gen/gen_fixtures.py"

SB_RULE = ("checkpoint values where present, else the pattern (testdata/gen/gen_fixtures.py): "
           "s[l][h]=0.25+0.1h+0.05l, b[l][h]=0.1(h-(H-1)/2)+0.05l")


# ----------------------------------------------------------------------------- configs

def llama_cfg(hidden=32, layers=2, heads=4, kv=2, inter=88, max_pos=32, **extra):
    c = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": 256,
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "max_position_embeddings": max_pos,
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "rope_scaling": None,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float32",
    }
    c.update(extra)
    return c


def qwen2_cfg(model_type="qwen2", hidden=32, layers=2, heads=4, kv=2, inter=88, max_pos=64, **extra):
    c = {
        "model_type": model_type,
        "architectures": ["Qwen2ForCausalLM" if model_type == "qwen2" else "Qwen3ForCausalLM"],
        "vocab_size": 256,
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "max_position_embeddings": max_pos,
        "rms_norm_eps": 1e-06,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": layers,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float32",
    }
    c.update(extra)
    return c


FIXTURES = [
    {
        "name": "llama-tiny-ropelinear",
        "seed": 101, "tokens": 40, "grads": False,
        "config": llama_cfg(rope_scaling={"type": "linear", "factor": 4.0}),
        "description": "Llama 2L/4H/2KV/d32/ff88/ctx32, rope_scaling in the legacy spelling "
                       "{\"type\": \"linear\", \"factor\": 4.0}: inv_freq / 4 (positions / 4); golden on 40 tokens, random F32",
    },
    {
        "name": "llama-tiny-ropedynamic",
        "seed": 102, "tokens": 40, "grads": True,
        "config": llama_cfg(rope_scaling={"rope_type": "dynamic", "factor": 2.0}),
        "description": "Llama 2L/4H/2KV/d32/ff88, max_position_embeddings 32, rope_scaling {rope_type: dynamic, factor 2}: "
                       "the golden has 40 tokens > 32, so every position uses base' = theta * (2*40/32 - 1)^(dim/(dim-2)) = "
                       "1e4 * 1.5^(8/6); random F32",
    },
    {
        "name": "qwen2-tiny-yarn",
        "seed": 103, "tokens": 40, "grads": True,
        "config": qwen2_cfg(heads=2, kv=1, max_pos=64, rope_theta=1000.0,
                            rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}),
        "description": "Qwen2 2L/2H/1KV/d32 (head_dim 16)/ff88, q/k/v bias, rope_theta 1000, rope_scaling {rope_type: "
                       "yarn, factor 4, original_max_position_embeddings 16} with max_position_embeddings 64 (= 4 x 16, so "
                       "HF versions that take factor = max/original agree): correction range low 0 high 2, so of the 8 "
                       "frequencies the first is kept, the second is half kept half divided by 4, the rest divided by 4; "
                       "cos and sin x (0.1 ln 4 + 1); golden on 40 tokens; random F32",
    },
    {
        "name": "llama3-tiny-ropeparams",
        "seed": 104, "tokens": 48, "grads": False,
        "config": {k: v for k, v in llama_cfg(
            heads=2, kv=1, max_pos=512,
            rope_parameters={"rope_type": "llama3", "rope_theta": 200000.0, "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 32}).items()
                   if k not in ("rope_theta", "rope_scaling")},
        "description": "Llama 2L/2H/1KV/d32 (head_dim 16)/ff88 with the newer rope_parameters layout (rope_theta 2e5 "
                       "inside it, no top-level rope_theta or rope_scaling): rope_type llama3, factor 8, low 1, high 4, "
                       "original 32 -> of the 8 frequencies (wavelengths 6.3, 28.9, 133, ...) one kept, one smoothed, six "
                       "divided by 8; golden on 48 tokens; random F32",
    },
    {
        "name": "qwen2-tiny-window",
        "seed": 105, "tokens": 32, "grads": True,
        "config": qwen2_cfg(layers=4, use_sliding_window=True, sliding_window=8, max_window_layers=2),
        "description": "Qwen2 4L/4H/2KV/d32/ff88, q/k/v bias, use_sliding_window true, sliding_window 8, "
                       "max_window_layers 2: layers 0-1 full attention, layers 2-3 windowed (i - j < 8, SSMax n = "
                       "min(i+1, 8)); golden on 32 tokens; random F32",
    },
    {
        "name": "qwen3-tiny-layertypes",
        "seed": 106, "tokens": 24, "grads": False,
        "config": qwen2_cfg(model_type="qwen3", layers=3, head_dim=16, use_sliding_window=True, sliding_window=6,
                            max_window_layers=3, tie_word_embeddings=True, attention_bias=False, rope_scaling=None,
                            layer_types=["sliding_attention", "full_attention", "sliding_attention"]),
        "description": "Qwen3 3L/4H/2KV/d32, head_dim 16 (q_proj 32->64), q_norm/k_norm, tied, use_sliding_window true, sliding_window 6 and explicit "
                       "layer_types [sliding, full, sliding], which take precedence over max_window_layers 3 (that alone "
                       "would window no layer); golden on 24 tokens; random F32",
    },
    {
        "name": "llama-tiny-gelu",
        "seed": 107, "tokens": 32, "grads": False,
        "config": llama_cfg(hidden_act="gelu_pytorch_tanh"),
        "description": "Llama 2L/4H/2KV/d32/ff88 with hidden_act gelu_pytorch_tanh (tanh-approximate GELU gate); "
                       "golden on 32 tokens; random F32",
    },
    {
        "name": "llama-tiny-biases",
        "seed": 108, "tokens": 32, "grads": False,
        "config": llama_cfg(head_dim=16, heads=4, kv=1, hidden=48, inter=96, attention_bias=True, mlp_bias=True,
                            tie_word_embeddings=True),
        "description": "Llama 2L/4H/1KV/d48/ff96 with explicit head_dim 16 (q_proj 48->64, so heads*head_dim != hidden), "
                       "attention_bias (q/k/v/o biases) and mlp_bias (gate/up/down biases), tie_word_embeddings (no "
                       "lm_head tensor); golden on 32 tokens; random F32",
    },
    {
        "name": "gpt2-tiny-rope",
        "seed": 109, "tokens": 40, "grads": True,
        "config": {
            "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 256, "n_positions": 64,
            "n_ctx": 64, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_inner": None,
            "activation_function": "gelu_new", "layer_norm_epsilon": 1e-05, "tie_word_embeddings": True,
            "scale_attn_weights": True, "position_embedding_type": "rope", "rope_theta": 10000.0,
            "bos_token_id": 0, "eos_token_id": 0, "torch_dtype": "float32"},
        "description": "GPT-2 2L/4H/d32 with \"position_embedding_type\": \"rope\" and rope_theta 1e4: no wpe tensor, "
                       "rotate-half RoPE on q and k of every head (all 8 dims), Conv1D weights, gelu_new, tied; golden on "
                       "40 tokens; random F32",
    },
    {
        "name": "phi3-tiny-longrope",
        "seed": 110, "tokens": 32, "grads": True,
        "config": {
            "model_type": "phi3", "architectures": ["Phi3ForCausalLM"], "vocab_size": 256, "hidden_size": 32,
            "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
            "max_position_embeddings": 64, "original_max_position_embeddings": 16, "rms_norm_eps": 1e-05,
            "rope_theta": 10000.0,
            "rope_scaling": {"type": "longrope",
                             "short_factor": [1.0, 1.05, 1.1, 1.2, 1.35, 1.5],
                             "long_factor": [1.0, 1.25, 1.8, 2.6, 4.0, 6.5]},
            "partial_rotary_factor": 0.75, "hidden_act": "silu", "sliding_window": None,
            "tie_word_embeddings": False, "attention_dropout": 0.0, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
            "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2, "torch_dtype": "float32"},
        "description": "Phi3 2L/2H/1KV/d32 (head_dim 16)/ff64, fused qkv_proj and gate_up_proj, partial_rotary_factor 0.75 (12 of 16 "
                       "dims, 6 frequencies), rope_scaling longrope (legacy \"type\") with original_max_position_embeddings "
                       "16 at top level and max_position_embeddings 64: the golden has 32 > 16 tokens so inv_freq = "
                       "1/(long_factor * theta^(2i/12)) at every position, cos and sin x sqrt(1 + ln 4 / ln 16); random F32",
    },
    {
        "name": "pythia-tiny-seqres",
        "seed": 111, "tokens": 32, "grads": True,
        "config": {
            "model_type": "gpt_neox", "architectures": ["GPTNeoXForCausalLM"], "vocab_size": 256, "hidden_size": 32,
            "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 64,
            "rotary_pct": 0.5, "rotary_emb_base": 10000, "hidden_act": "gelu", "layer_norm_eps": 1e-05,
            "use_parallel_residual": False, "tie_word_embeddings": False, "attention_bias": True,
            "attention_dropout": 0.0, "hidden_dropout": 0.0, "initializer_range": 0.02, "bos_token_id": 0,
            "eos_token_id": 0, "use_cache": True, "torch_dtype": "float32"},
        "description": "GPT-NeoX 2L/4H/d32/ff128 with use_parallel_residual false (x = x + attn(ln1(x)); x = x + "
                       "mlp(ln2(x))), rotary_pct 0.5 (RoPE on dims 0..3 of each 8-dim head), fused per-head [q|k|v], "
                       "erf gelu, untied embed_out; golden on 32 tokens; random F32",
    },
    {
        "name": "llama-tiny-ropedynamic-short",
        "seed": 102, "tokens": 32, "grads": False,
        "config": llama_cfg(rope_scaling={"rope_type": "dynamic", "factor": 2.0}),
        "description": "llama-tiny-ropedynamic's checkpoint (same seed, same weights) with a golden of 32 tokens = "
                       "max_position_embeddings: dynamic NTK must leave theta unchanged (it applies only when the "
                       "sequence is longer than max_position_embeddings); random F32",
    },
    {
        "name": "phi3-tiny-longrope-short",
        "seed": 110, "tokens": 16, "grads": False,
        "config": None,  # filled in below: phi3-tiny-longrope's config
        "description": "phi3-tiny-longrope's checkpoint (same seed, same weights) with a golden of 16 tokens = "
                       "original_max_position_embeddings: inv_freq = 1/(short_factor * theta^(2i/12)), cos and sin "
                       "still x sqrt(1 + ln 4 / ln 16); random F32",
    },
    {
        "name": "qwen2-tiny-window-ssmax-bias",
        "seed": 105, "tokens": 32, "grads": False,
        "config": None,  # filled in below: qwen2-tiny-window's config plus the "ssmax" object
        "ssmax": {"variant": "bias", "s_offset": 0.02, "b_offset": -0.03},
        "description": "qwen2-tiny-window (same weights) converted to SSMax-bias: config.json \"ssmax\" object "
                       "(variant bias), model.layers.{i}.self_attn.ssmax_s / ssmax_b [4] F32 (pattern +0.02 / -0.03) "
                       "on all 4 layers, windowed layers 2-3 use n = min(i+1, 8); golden on 32 tokens",
    },
    {
        "name": "llama-tiny-bf16",
        "seed": 112, "tokens": 32, "grads": False, "dtype": "BF16",
        "config": llama_cfg(torch_dtype="bfloat16"),
        "description": "Llama 2L/4H/2KV/d32/ff88, every tensor stored BF16 (torch_dtype bfloat16); goldens computed in "
                       "float64 from the BF16 values; golden on 32 tokens; random",
    },
    {
        "name": "llama-tiny-sharded",
        "seed": 113, "tokens": 32, "grads": False, "shards": 2,
        "config": llama_cfg(),
        "description": "Llama 2L/4H/2KV/d32/ff88 in two shards model-00001-of-00002.safetensors (embeddings and layer 0) "
                       "and model-00002-of-00002.safetensors (layer 1, norm, lm_head) with model.safetensors.index.json "
                       "(metadata.total_size, weight_map); golden on 32 tokens; random F32",
    },
]



def _fill_derived():
    by = {f["name"]: f for f in FIXTURES}
    by["phi3-tiny-longrope-short"]["config"] = copy.deepcopy(by["phi3-tiny-longrope"]["config"])
    c = copy.deepcopy(by["qwen2-tiny-window"]["config"])
    c["ssmax"] = {"variant": "bias", "init": "trained", "train_len": 32, "layers": list(range(c["num_hidden_layers"])),
                  "version": 1}
    by["qwen2-tiny-window-ssmax-bias"]["config"] = c


_fill_derived()


# ----------------------------------------------------------------------------- weights

def weight_shapes(c):
    """Checkpoint tensor names and shapes for a ref.Cfg, with an init kind per tensor:
    'w' N(0, 0.1), 'b' N(0, 0.05), 'n1' 1 + N(0, 0.1) (norm scale), 'n0' N(0, 0.1) (Gemma (1 + w))."""
    fam, D, L, V = c.family, c.hidden, c.layers, c.vocab
    H, KV, d, F = c.heads, c.kv_heads, c.head_dim, c.inter
    raw = c.raw
    out = []
    if fam == "gpt2":
        out.append(("transformer.wte.weight", (V, D), "w"))
        if not c.rope:
            out.append(("transformer.wpe.weight", (c.max_pos, D), "w"))
        for l in range(L):
            p = "transformer.h.%d." % l
            out += [(p + "ln_1.weight", (D,), "n1"), (p + "ln_1.bias", (D,), "b"),
                    (p + "attn.c_attn.weight", (D, 3 * D), "w"), (p + "attn.c_attn.bias", (3 * D,), "b"),
                    (p + "attn.c_proj.weight", (D, D), "w"), (p + "attn.c_proj.bias", (D,), "b"),
                    (p + "ln_2.weight", (D,), "n1"), (p + "ln_2.bias", (D,), "b"),
                    (p + "mlp.c_fc.weight", (D, F), "w"), (p + "mlp.c_fc.bias", (F,), "b"),
                    (p + "mlp.c_proj.weight", (F, D), "w"), (p + "mlp.c_proj.bias", (D,), "b")]
        out += [("transformer.ln_f.weight", (D,), "n1"), ("transformer.ln_f.bias", (D,), "b")]
        if not c.tie:
            out.append(("lm_head.weight", (V, D), "w"))
        return out
    if fam == "gpt_neox":
        out.append(("gpt_neox.embed_in.weight", (V, D), "w"))
        for l in range(L):
            p = "gpt_neox.layers.%d." % l
            out += [(p + "input_layernorm.weight", (D,), "n1"), (p + "input_layernorm.bias", (D,), "b"),
                    (p + "post_attention_layernorm.weight", (D,), "n1"),
                    (p + "post_attention_layernorm.bias", (D,), "b"),
                    (p + "attention.query_key_value.weight", (3 * D, D), "w")]
            if c.attn_bias:
                out.append((p + "attention.query_key_value.bias", (3 * D,), "b"))
            out.append((p + "attention.dense.weight", (D, D), "w"))
            if c.attn_bias:
                out.append((p + "attention.dense.bias", (D,), "b"))
            out += [(p + "mlp.dense_h_to_4h.weight", (F, D), "w"), (p + "mlp.dense_h_to_4h.bias", (F,), "b"),
                    (p + "mlp.dense_4h_to_h.weight", (D, F), "w"), (p + "mlp.dense_4h_to_h.bias", (D,), "b")]
        out += [("gpt_neox.final_layer_norm.weight", (D,), "n1"), ("gpt_neox.final_layer_norm.bias", (D,), "b")]
        if not c.tie:
            out.append(("embed_out.weight", (V, D), "w"))
        return out
    gemma = fam in ("gemma2", "gemma3_text")
    nk = "n0" if gemma else "n1"
    out.append(("model.embed_tokens.weight", (V, D), "w"))
    qkv_bias = raw.get("attention_bias", fam == "qwen2")
    o_bias = raw.get("attention_bias", False) and fam != "qwen2"
    mlp_bias = raw.get("mlp_bias", False) if fam == "llama" else False
    for l in range(L):
        p = "model.layers.%d." % l
        a = p + "self_attn."
        if fam != "olmo2":
            out.append((p + "input_layernorm.weight", (D,), nk))
        if fam == "phi3":
            out.append((a + "qkv_proj.weight", ((H + 2 * KV) * d, D), "w"))
        else:
            for n, rows in (("q_proj", H * d), ("k_proj", KV * d), ("v_proj", KV * d)):
                out.append((a + n + ".weight", (rows, D), "w"))
                if qkv_bias:
                    out.append((a + n + ".bias", (rows,), "b"))
        out.append((a + "o_proj.weight", (D, H * d), "w"))
        if o_bias:
            out.append((a + "o_proj.bias", (D,), "b"))
        if fam == "olmo2":
            out += [(a + "q_norm.weight", (H * d,), "n1"), (a + "k_norm.weight", (KV * d,), "n1")]
        elif fam == "qwen3" or fam == "gemma3_text":
            out += [(a + "q_norm.weight", (d,), nk), (a + "k_norm.weight", (d,), nk)]
        out.append((p + "post_attention_layernorm.weight", (D,), nk))
        if gemma:
            out += [(p + "pre_feedforward_layernorm.weight", (D,), nk),
                    (p + "post_feedforward_layernorm.weight", (D,), nk)]
        if fam == "olmo2":
            out.append((p + "post_feedforward_layernorm.weight", (D,), nk))
        if fam == "phi3":
            out.append((p + "mlp.gate_up_proj.weight", (2 * F, D), "w"))
            out.append((p + "mlp.down_proj.weight", (D, F), "w"))
        else:
            for n, shp in (("gate_proj", (F, D)), ("up_proj", (F, D)), ("down_proj", (D, F))):
                out.append((p + "mlp." + n + ".weight", shp, "w"))
                if mlp_bias:
                    out.append((p + "mlp." + n + ".bias", (shp[0],), "b"))
    out.append(("model.norm.weight", (D,), nk))
    if not c.tie:
        out.append(("lm_head.weight", (V, D), "w"))
    return out


def make_weights(c, seed):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape, kind in weight_shapes(c):
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        if kind == "w":
            x = 0.1 * x
        elif kind == "b":
            x = 0.05 * x
        elif kind == "n1":
            x = 1.0 + 0.1 * x
        elif kind == "n0":
            x = 0.1 * x
        out[name] = x.to(torch.float32).numpy()
    return out


# ----------------------------------------------------------------------------- goldens

def _checkpoint_sb(c, tensors):
    S = B = None
    rows_s = [tensors.get(ref.attn_prefix(c.family, l) + ".ssmax_s") for l in range(c.layers)]
    rows_b = [tensors.get(ref.attn_prefix(c.family, l) + ".ssmax_b") for l in range(c.layers)]
    if all(r is not None for r in rows_s):
        S = [[float(v) for v in r[1]] for r in rows_s]
    if all(r is not None for r in rows_b):
        B = [[float(v) for v in r[1]] for r in rows_b]
    return S, B


def config_mode(raw):
    v = (raw.get("ssmax") or {}).get("variant")
    return {None: "softmax", "ssmax": "ssmax", "bias": "ssmax-bias", "fixed": "ssmax-fixed"}[v]


def compute_goldens(raw, tensors, tokens, grads_for=()):
    """tensors: name -> (dtype, np array) as stored. Returns (golden.json dict body, logits dict, grads dict)."""
    from gen_fixtures import pattern_b, pattern_s, run_mode, split_params
    c, P, _, _ = split_params(raw, tensors)
    ckS, ckB = _checkpoint_sb(c, tensors)
    modes, logits_out, grads_out = {}, {}, {}
    for mode in ref.MODES:
        s = b = None
        s_src = b_src = None
        if mode in ("ssmax", "ssmax-bias"):
            s, s_src = (ckS, "checkpoint") if ckS is not None else (pattern_s(c.layers, c.heads), "argument")
        if mode == "ssmax-bias":
            b, b_src = (ckB, "checkpoint") if ckB is not None else (pattern_b(c.layers, c.heads), "argument")
        want = mode in grads_for
        lg, loss, grads = run_mode(c, P, tokens, mode, s, b, want)
        l32 = lg.numpy().astype(np.float32)
        logits_out["logits." + mode] = ("F32", l32)
        if want:
            for k, v in grads.items():
                grads_out["grad.%s.%s" % (mode, k)] = ("F32", v.numpy().astype(np.float32))
        modes[mode] = {
            "s": s, "b": b, "s_source": s_src, "b_source": b_src,
            "loss": loss,
            "argmax": [int(x) for x in l32.argmax(-1)],
            "last_logits_first8": [round(float(x), 6) for x in l32[-1, :8]],
            "sum": float(l32.sum(dtype=np.float64)),
            "abs_sum": float(np.abs(l32).astype(np.float64).sum()),
            "max_abs": float(np.abs(l32).max()),
            "sha256_f32": hashlib.sha256(np.ascontiguousarray(l32).tobytes()).hexdigest(),
            "grads": want,
        }
    return c, modes, logits_out, grads_out


def write_json(path, obj, indent, newline):
    with open(path, "w") as f:
        f.write(json.dumps(obj, indent=indent) + ("\n" if newline else ""))


def write_fixture(spec, out_dir):
    name = spec["name"]
    fdir = os.path.join(out_dir, name)
    os.makedirs(fdir, exist_ok=True)
    for old in os.listdir(fdir):
        os.remove(os.path.join(fdir, old))
    raw = copy.deepcopy(spec["config"])
    c = ref.Cfg(raw)
    w = make_weights(c, spec["seed"])
    dt = spec.get("dtype", "F32")
    if dt == "BF16":
        w = {k: st.bf16_round(v) for k, v in w.items()}
    stored = {k: (dt, v) for k, v in w.items()}
    if spec.get("ssmax"):
        from gen_fixtures import pattern_b, pattern_s
        sx = spec["ssmax"]
        ps, pb = pattern_s(c.layers, c.heads), pattern_b(c.layers, c.heads)
        for l in range(c.layers):
            pre = ref.attn_prefix(c.family, l)
            stored[pre + ".ssmax_s"] = ("F32", np.array([v + sx["s_offset"] for v in ps[l]], dtype=np.float32))
            if sx["variant"] == "bias":
                stored[pre + ".ssmax_b"] = ("F32", np.array([v + sx["b_offset"] for v in pb[l]], dtype=np.float32))
    g = torch.Generator().manual_seed(spec["seed"] + 7919)
    tokens = torch.randint(0, c.vocab, (spec["tokens"],), generator=g, dtype=torch.int64).numpy()

    write_json(os.path.join(fdir, "config.json"), raw, 2, False)
    shards = spec.get("shards", 1)
    if shards == 1:
        st.save(os.path.join(fdir, "model.safetensors"), stored, {"format": "pt"})
    else:
        assert shards == 2
        first = {k: v for k, v in stored.items() if k.startswith("model.embed_tokens.") or k.startswith("model.layers.0.")}
        second = {k: v for k, v in stored.items() if k not in first}
        files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        wm = {}
        for fn, part in zip(files, (first, second)):
            st.save(os.path.join(fdir, fn), part, {"format": "pt"})
            wm.update({k: fn for k in part})
        total = sum(v[1].size * 4 for v in stored.values())
        write_json(os.path.join(fdir, "model.safetensors.index.json"),
                   {"metadata": {"total_size": total}, "weight_map": dict(sorted(wm.items()))}, 2, True)

    grads_for = ("ssmax", "ssmax-bias") if spec.get("grads") else ()
    c, modes, logits, grads = compute_goldens(raw, stored, tokens, grads_for)
    gold = dict(logits)
    gold["tokens"] = ("I64", tokens)
    st.save(os.path.join(fdir, "golden.safetensors"), gold,
            {"generator": GENERATOR, "compute_dtype": "float64"})
    if grads:
        grads["tokens"] = ("I64", tokens)
        st.save(os.path.join(fdir, "golden_grads.safetensors"), grads,
                {"generator": GENERATOR, "loss": "mean next-token cross-entropy", "compute_dtype": "float64"})
    gj = {
        "checkpoint": name,
        "family": c.family,
        "config_mode": config_mode(raw),
        "compute_dtype": "float64",
        "n_tokens": int(len(tokens)),
        "tokens": [int(t) for t in tokens],
        "modes": modes,
        "load_notes": [],
        "checkpoint_dtypes": sorted(set(v[0] for v in stored.values())),
        "s_b_rule": SB_RULE,
    }
    write_json(os.path.join(fdir, "golden.json"), gj, 1, True)
    params = sum(int(v[1].size) for k, v in stored.items() if not k.endswith((".ssmax_s", ".ssmax_b")))
    return manifest_entry(fdir, spec["description"], c.family,
                          {"F32": "float32", "BF16": "bfloat16"}[dt], shards, config_mode(raw), params, modes,
                          len(tokens), GENERATOR)


def manifest_entry(fdir, description, family, dtype, shards, mode, params, modes, n_tokens, generator=None):
    files = {}
    for fn in sorted(os.listdir(fdir)):
        p = os.path.join(fdir, fn)
        data = open(p, "rb").read()
        files[fn] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    e = {
        "description": description,
        "family": family,
        "dtype": dtype,
        "shards": shards,
        "attention_mode": mode,
        "params": params,
        "golden_tokens": n_tokens,
        "golden_loss": {m: modes[m]["loss"] for m in ref.MODES},
        "files": files,
    }
    if generator:
        e["generator"] = generator
    return e


def import_shared(shared, out, manifest):
    """Copy the independent fixtures (byte-identical) and their MANIFEST entries into out."""
    import shutil
    sm = json.load(open(os.path.join(shared, "MANIFEST.json")))
    for name, entry in sm["fixtures"].items():
        src, dst = os.path.join(shared, name), os.path.join(out, name)
        os.makedirs(dst, exist_ok=True)
        for fn in sorted(os.listdir(src)):
            shutil.copyfile(os.path.join(src, fn), os.path.join(dst, fn))
            os.chmod(os.path.join(dst, fn), 0o644)
        for fn, info in entry["files"].items():
            data = open(os.path.join(dst, fn), "rb").read()
            assert len(data) == info["bytes"] and hashlib.sha256(data).hexdigest() == info["sha256"], (name, fn)
        manifest["fixtures"][name] = entry


def generate(out=None, only=None, shared=None):
    out = out or DEFAULT_OUT
    os.makedirs(out, exist_ok=True)
    mpath = os.path.join(out, "MANIFEST.json")
    manifest = json.load(open(mpath)) if os.path.exists(mpath) else {"fixtures": {}}
    if shared:
        import_shared(shared, out, manifest)
    manifest["generator"] = ("per fixture: entries with a \"generator\" field were written by that script; the others "
                             "by an independent PyTorch implementation following Hugging Face transformers modeling "
                             "code (not part of this repository)")
    manifest["note"] = "params counts weights only: no attention mask buffers, no SSMax s/b"
    for spec in FIXTURES:
        if only and spec["name"] not in only:
            continue
        print("generating %s" % spec["name"], flush=True)
        manifest["fixtures"][spec["name"]] = write_fixture(spec, out)
    names = list(manifest["fixtures"])
    gen_names = [f["name"] for f in FIXTURES]
    order = [n for n in names if n not in gen_names] + [n for n in gen_names if n in names]
    manifest = {"generator": manifest["generator"], "note": manifest["note"],
                "fixtures": {n: manifest["fixtures"][n] for n in order}}
    write_json(mpath, manifest, 1, True)
    return 0
