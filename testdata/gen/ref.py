"""Float64 reference forward pass for the model families ssmax supports, written from
Hugging Face transformers' modeling_<family>.py and modeling_rope_utils.py (see README.md
in this directory for the files and versions followed).

Everything runs in float64 on CPU, RoPE tables included (inv_freq, the llama3 / yarn /
longrope adjustments, angles, cos and sin all in float64). This is what the independent
fixtures in /work/shared/fixtures were made with: they match to the last F32 bit this way.
Hugging Face itself builds inv_freq as a float32 tensor and takes position * inv_freq, cos
and sin in float32 whatever the model dtype (LlamaRotaryEmbedding.forward, autocast off,
.float()), and casts inside RMSNorm and the eager softmax to float32; ROPE_F32 = True
(--hf-rope-f32) reproduces the RoPE part of that, which moves the goldens by ~1e-8 in the
loss and ~1e-6 in the logits of these tiny models.

SSMax: with z = q.k * scale the attention logits of query i (0-based) are multiplied by
  softmax: 1, ssmax: s_h ln n, ssmax-bias: s_h ln n + b_h, ssmax-fixed: ln n
with n = i + 1 keys, or min(i + 1, W) under a sliding window of W (query i sees keys j
with 0 <= i - j < W). With an attention soft-cap the factor multiplies q, so the cap
applies to the scaled logits: cap * tanh(f z / cap).
"""
import math

import torch

MODES = ("softmax", "ssmax", "ssmax-bias", "ssmax-fixed")
ROPE_F32 = False

F64 = torch.float64


# ----------------------------------------------------------------------------- activations

def act_fn(name):
    name = (name or "").lower()
    if name in ("silu", "swish"):
        return torch.nn.functional.silu
    if name == "gelu":  # erf GELU
        return lambda x: 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu_python_tanh"):
        # tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        c = math.sqrt(2.0 / math.pi)
        return lambda x: 0.5 * x * (1.0 + torch.tanh(c * (x + 0.044715 * torch.pow(x, 3.0))))
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == "relu":
        return torch.relu
    if name == "relu2":
        return lambda x: torch.square(torch.relu(x))
    if name == "tanh":
        return torch.tanh
    if name == "sigmoid":
        return torch.sigmoid
    if name == "linear":
        return lambda x: x
    raise ValueError("unsupported activation %r" % name)


# ----------------------------------------------------------------------------- norms

def rms_norm(x, w, eps, offset=0.0):
    """Llama/Qwen/Mistral/Phi3/OLMo2: x * rsqrt(mean(x^2) + eps) * w; Gemma: ... * (1 + w)."""
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y * (offset + w) if offset else y * w


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = (x - mu).pow(2).mean(-1, keepdim=True)
    return (x - mu) * torch.rsqrt(var + eps) * w + b


# ----------------------------------------------------------------------------- config

class Cfg:
    """Hugging Face config.json normalised into what the forward pass needs."""

    def __init__(self, raw):
        self.raw = raw
        c = raw
        mt = c["model_type"]
        self.family = mt
        g = c.get
        if mt == "gpt2":
            self.hidden = g("n_embd", g("hidden_size"))
            self.layers = g("n_layer", g("num_hidden_layers"))
            self.heads = g("n_head", g("num_attention_heads"))
            self.kv_heads = self.heads
            self.head_dim = self.hidden // self.heads
            self.inter = g("n_inner") or 4 * self.hidden
            self.eps = g("layer_norm_epsilon", 1e-5)
            self.act = g("activation_function", "gelu_new")
            self.tie = g("tie_word_embeddings", True)
            self.max_pos = g("n_positions", g("max_position_embeddings", 1024))
            pe = g("position_embedding_type", "absolute")
            self.rope = pe == "rope"
            if pe not in ("absolute", "rope", "learned"):
                raise ValueError("gpt2 position_embedding_type %r" % pe)
            self.scale_attn_weights = g("scale_attn_weights", True)
            self.scale_by_layer = g("scale_attn_by_inverse_layer_idx", False)
        elif mt == "gpt_neox":
            self.hidden = c["hidden_size"]
            self.layers = c["num_hidden_layers"]
            self.heads = c["num_attention_heads"]
            self.kv_heads = self.heads
            self.head_dim = self.hidden // self.heads
            self.inter = c["intermediate_size"]
            self.eps = g("layer_norm_eps", 1e-5)
            self.act = g("hidden_act", "gelu")
            self.tie = g("tie_word_embeddings", False)
            self.max_pos = g("max_position_embeddings", 2048)
            self.rope = True
            self.parallel = g("use_parallel_residual", True)
            self.attn_bias = g("attention_bias", True)
        else:
            self.hidden = c["hidden_size"]
            self.layers = c["num_hidden_layers"]
            self.heads = c["num_attention_heads"]
            self.kv_heads = g("num_key_value_heads") or self.heads
            self.head_dim = g("head_dim") or self.hidden // self.heads
            self.inter = c["intermediate_size"]
            self.eps = g("rms_norm_eps", 1e-6)
            if mt in ("gemma2", "gemma3_text", "gemma3"):
                self.act = g("hidden_activation") or g("hidden_act") or "gelu_pytorch_tanh"
            else:
                self.act = g("hidden_act", "silu")
            self.tie = g("tie_word_embeddings", mt in ("gemma2", "gemma3_text", "gemma3"))
            self.max_pos = g("max_position_embeddings", 2048)
            self.rope = True
        self.vocab = c["vocab_size"]
        self.layer_windows = self._windows()

    # sliding windows, one entry per layer (None = full causal attention)
    def _windows(self):
        c, g, L = self.raw, self.raw.get, self.layers
        mt = self.family
        lt = g("layer_types")
        if mt in ("mistral", "phi3", "mixtral", "starcoder2"):
            return [g("sliding_window")] * L
        if mt in ("qwen2", "qwen3"):
            # configuration_qwen2.py: sliding_window = sliding_window if use_sliding_window else None;
            # layer_types default: sliding for layer i >= max_window_layers when a window is set.
            w = g("sliding_window") if g("use_sliding_window", False) else None
            if lt is None:
                mwl = g("max_window_layers", L)
                lt = ["sliding_attention" if w is not None and i >= mwl else "full_attention" for i in range(L)]
            self.layer_types = lt
            return [w if t == "sliding_attention" else None for t in lt]
        if mt == "gemma2":
            if lt is None:
                lt = ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(L)]
            self.layer_types = lt
            return [g("sliding_window") if t == "sliding_attention" else None for t in lt]
        if mt in ("gemma3_text", "gemma3"):
            if lt is None:
                p = g("sliding_window_pattern", 6)
                lt = ["sliding_attention" if (i + 1) % p else "full_attention" for i in range(L)]
            self.layer_types = lt
            return [g("sliding_window") if t == "sliding_attention" else None for t in lt]
        if mt == "llama" or mt == "olmo2" or mt == "gpt2" or mt == "gpt_neox":
            return [None] * L
        raise ValueError("unsupported model_type %r" % mt)

    # ------------------------------------------------------------------ RoPE parameters
    def rope_params(self, layer):
        """(rope dict with rope_type, rope_theta, ... , partial_rotary_factor) for a layer."""
        c, g = self.raw, self.raw.get
        mt = self.family
        if mt == "gpt_neox":
            theta = g("rope_theta", g("rotary_emb_base", 10000))
            prf = g("partial_rotary_factor", g("rotary_pct", 0.25))
        else:
            theta = g("rope_theta", 10000.0)
            prf = g("partial_rotary_factor")
        rp = g("rope_parameters") or g("rope_scaling") or {}
        rp = dict(rp)
        lt = getattr(self, "layer_types", None)
        if lt is not None and rp and set(rp).issubset(set(lt)):
            rp = dict(rp[lt[layer]])  # per-layer-type rope parameters (v5 layout)
        elif mt in ("gemma3_text", "gemma3") and lt[layer] == "sliding_attention":
            # Gemma3 local layers: rope_local_base_freq, no scaling
            rp = {"rope_type": "default", "rope_theta": g("rope_local_base_freq", 10000.0)}
        rp.setdefault("rope_type", rp.get("type", "default"))
        rp.setdefault("rope_theta", theta)
        if prf is not None:  # standardize_rope_params: a top-level partial_rotary_factor overrides the dict's
            rp["partial_rotary_factor"] = prf
        rp.setdefault("partial_rotary_factor", 1.0)
        if rp["rope_type"] in ("llama3", "yarn", "longrope"):
            # standardize_rope_params: a top-level original_max_position_embeddings (Phi3Config always has
            # one, default 4096) takes priority over the one inside the rope dict; else default max_pos.
            if "original_max_position_embeddings" in c or mt == "phi3":
                rp["original_max_position_embeddings"] = g("original_max_position_embeddings", 4096)
            rp.setdefault("original_max_position_embeddings", self.max_pos)
        return rp


# ----------------------------------------------------------------------------- RoPE

def rope_inv_freq(cfg, rp, seq_len):
    """modeling_rope_utils.py: (inv_freq, attention_factor, rotary dim) for a sequence of seq_len
    positions processed at once (dynamic and longrope look at max(position_ids) + 1 = seq_len)."""
    dt = torch.float32 if ROPE_F32 else F64
    base = float(rp["rope_theta"])
    head_dim = cfg.head_dim
    dim = int(head_dim * rp.get("partial_rotary_factor", 1.0))
    rt = rp["rope_type"]
    ar = torch.arange(0, dim, 2, dtype=torch.int64).to(dt) / dim
    att = 1.0
    if rt == "default":
        inv = 1.0 / (base ** ar)
    elif rt == "linear":
        inv = 1.0 / (base ** ar)
        inv = inv / rp["factor"]
    elif rt == "dynamic":
        factor = rp["factor"]
        mp = cfg.max_pos
        sl = max(seq_len, mp)
        base = base * ((factor * sl / mp) - (factor - 1)) ** (dim / (dim - 2))
        inv = 1.0 / (base ** ar)
    elif rt == "llama3":
        inv = 1.0 / (base ** ar)
        factor = rp["factor"]
        lo, hi = rp["low_freq_factor"], rp["high_freq_factor"]
        old = rp["original_max_position_embeddings"]
        low_wl, high_wl = old / lo, old / hi
        wavelen = 2 * math.pi / inv
        inv_l = torch.where(wavelen > low_wl, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
        inv = torch.where(medium, smoothed, inv_l)
    elif rt == "yarn":
        factor = rp.get("factor")
        omp = rp.get("original_max_position_embeddings") or cfg.max_pos
        if factor is None:
            factor = cfg.max_pos / omp
        att = rp.get("attention_factor")
        mscale, mscale_all = rp.get("mscale"), rp.get("mscale_all_dim")

        def get_mscale(scale, m=1):
            return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

        if att is None:
            att = float(get_mscale(factor, mscale) / get_mscale(factor, mscale_all)) if (mscale and mscale_all) \
                else get_mscale(factor)
        beta_fast = rp.get("beta_fast") or 32
        beta_slow = rp.get("beta_slow") or 1

        def corr_dim(rot):
            return (dim * math.log(omp / (rot * 2 * math.pi))) / (2 * math.log(base))

        low, high = corr_dim(beta_fast), corr_dim(beta_slow)
        if rp.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, dim - 1)
        if low == high:
            high += 0.001
        ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32).to(dt) - low) / (high - low), 0, 1)
        pos_freqs = base ** (torch.arange(0, dim, 2).to(dt) / dim)
        extra = 1.0 / pos_freqs
        inter = 1.0 / (factor * pos_freqs)
        ef = 1 - ramp
        inv = inter * (1 - ef) + extra * ef
    elif rt == "longrope":
        omp = rp["original_max_position_embeddings"]
        factor = rp.get("factor")
        if factor is None:
            factor = cfg.max_pos / omp
        att = rp.get("attention_factor")
        if att is None:
            att = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(omp))
        # HF: torch.tensor(factors, dtype=torch.float32); float64 here like the rest of the tables
        ext = torch.tensor(rp["long_factor"] if seq_len > omp else rp["short_factor"],
                           dtype=torch.float32 if ROPE_F32 else F64)
        inv = 1.0 / (ext * base ** ar)
    else:
        raise ValueError("unsupported rope_type %r" % rt)
    return inv.to(dt), float(att), dim


def rope_cos_sin(cfg, rp, T):
    """cos, sin [T, dim] (float64 tensors) as LlamaRotaryEmbedding.forward returns them."""
    inv, att, dim = rope_inv_freq(cfg, rp, T)
    dt = torch.float32 if ROPE_F32 else F64
    pos = torch.arange(T, dtype=torch.int64).to(dt)
    freqs = pos[:, None] * inv[None, :]  # outer product; same as the [d/2,1]@[1,T] matmul
    emb = torch.cat((freqs, freqs), dim=-1)
    cos = emb.cos() * att
    sin = emb.sin() * att
    return cos.to(F64), sin.to(F64), dim


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rope(x, cos, sin):
    """x [heads, T, head_dim]; rotate-half on the first rot = cos.shape[-1] dims, rest passes."""
    rot = cos.shape[-1]
    if rot == x.shape[-1]:
        return x * cos + rotate_half(x) * sin
    xr, xp = x[..., :rot], x[..., rot:]
    return torch.cat((xr * cos + rotate_half(xr) * sin, xp), dim=-1)


# ----------------------------------------------------------------------------- attention

def attention(q, k, v, scale, window, mode, s=None, b=None, softcap=None):
    """q [H,T,d], k/v [KV,T,d] -> [T, H*d]. Causal, optional sliding window, SSMax mode."""
    H, T, d = q.shape
    KV = k.shape[0]
    if KV != H:  # query head h uses kv head h // (H // KV)
        k = k.repeat_interleave(H // KV, dim=0)
        v = v.repeat_interleave(H // KV, dim=0)
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    allowed = j <= i
    n = torch.arange(1, T + 1, dtype=F64)
    if window is not None:
        allowed = allowed & (i - j < window)
        n = torch.clamp(n, max=float(window))
    logn = torch.log(n)  # [T]
    if mode == "softmax":
        f = None
    elif mode == "ssmax":
        f = s[:, None] * logn[None, :]
    elif mode == "ssmax-bias":
        f = s[:, None] * logn[None, :] + b[:, None]
    elif mode == "ssmax-fixed":
        f = logn[None, :].expand(H, T)
    else:
        raise ValueError(mode)
    if f is not None:
        q = q * f[:, :, None]  # == multiplying each logit row by its factor
    z = torch.matmul(q, k.transpose(1, 2)) * scale
    if softcap is not None:
        z = torch.tanh(z / softcap) * softcap
    z = z.masked_fill(~allowed, float("-inf"))
    p = torch.softmax(z, dim=-1)
    o = torch.matmul(p, v)  # [H,T,d]
    return o.transpose(0, 1).reshape(T, H * d)


# ----------------------------------------------------------------------------- families

def attn_prefix(family, layer):
    if family == "gpt2":
        return "transformer.h.%d.attn" % layer
    if family == "gpt_neox":
        return "gpt_neox.layers.%d.attention" % layer
    return "model.layers.%d.self_attn" % layer


def linear(x, P, name, bias=None):
    """nn.Linear: y = x W^T (+ b). bias=None: use name.bias if present."""
    y = x @ P[name + ".weight"].T
    if bias is None:
        bias = (name + ".bias") in P
    if bias:
        y = y + P[name + ".bias"]
    return y


def forward(cfg, P, tokens, mode="softmax", S=None, B=None):
    """Logits [T, vocab] (float64). P: name -> float64 tensor. S, B: [layers, heads] or None."""
    fam = cfg.family
    if fam == "gpt2":
        return _gpt2(cfg, P, tokens, mode, S, B)
    if fam == "gpt_neox":
        return _neox(cfg, P, tokens, mode, S, B)
    return _decoder(cfg, P, tokens, mode, S, B)


def _sb(S, B, l):
    return (None if S is None else S[l]), (None if B is None else B[l])


def _gpt2(cfg, P, tokens, mode, S, B):
    T = tokens.shape[0]
    H, d = cfg.heads, cfg.head_dim
    pre = "transformer." if "transformer.wte.weight" in P else ""
    x = P[pre + "wte.weight"][tokens]
    if not cfg.rope:
        x = x + P[pre + "wpe.weight"][:T]
    act = act_fn(cfg.act)
    for l in range(cfg.layers):
        h = "%sh.%d." % (pre, l)
        a = layer_norm(x, P[h + "ln_1.weight"], P[h + "ln_1.bias"], cfg.eps)
        qkv = a @ P[h + "attn.c_attn.weight"] + P[h + "attn.c_attn.bias"]  # Conv1D [in, out]
        q, k, v = qkv.split(cfg.hidden, dim=-1)
        q = q.view(T, H, d).transpose(0, 1)
        k = k.view(T, H, d).transpose(0, 1)
        v = v.view(T, H, d).transpose(0, 1)
        if cfg.rope:
            cos, sin, _ = rope_cos_sin(cfg, cfg.rope_params(l), T)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        scale = 1.0
        if cfg.scale_attn_weights:
            scale = 1.0 / math.sqrt(d)  # HF: / torch.full([], v.size(-1) ** 0.5)
        if cfg.scale_by_layer:
            scale = scale / float(l + 1)
        s, b = _sb(S, B, l)
        o = attention(q, k, v, scale, None, mode, s, b)
        o = o @ P[h + "attn.c_proj.weight"] + P[h + "attn.c_proj.bias"]
        x = x + o
        m = layer_norm(x, P[h + "ln_2.weight"], P[h + "ln_2.bias"], cfg.eps)
        m = act(m @ P[h + "mlp.c_fc.weight"] + P[h + "mlp.c_fc.bias"])
        m = m @ P[h + "mlp.c_proj.weight"] + P[h + "mlp.c_proj.bias"]
        x = x + m
    x = layer_norm(x, P[pre + "ln_f.weight"], P[pre + "ln_f.bias"], cfg.eps)
    W = P[pre + "wte.weight"] if (cfg.tie or "lm_head.weight" not in P) else P["lm_head.weight"]
    return x @ W.T


def _neox(cfg, P, tokens, mode, S, B):
    T = tokens.shape[0]
    H, d = cfg.heads, cfg.head_dim
    x = P["gpt_neox.embed_in.weight"][tokens]
    act = act_fn(cfg.act)
    cos, sin, _ = rope_cos_sin(cfg, cfg.rope_params(0), T)
    for l in range(cfg.layers):
        h = "gpt_neox.layers.%d." % l
        a = layer_norm(x, P[h + "input_layernorm.weight"], P[h + "input_layernorm.bias"], cfg.eps)
        qkv = linear(a, P, h + "attention.query_key_value")
        qkv = qkv.view(T, H, 3 * d)  # per head [q | k | v]
        q, k, v = qkv.chunk(3, dim=-1)
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        s, b = _sb(S, B, l)
        o = attention(q, k, v, d ** -0.5, None, mode, s, b)
        o = linear(o, P, h + "attention.dense")
        if cfg.parallel:
            m = layer_norm(x, P[h + "post_attention_layernorm.weight"], P[h + "post_attention_layernorm.bias"], cfg.eps)
            m = linear(act(linear(m, P, h + "mlp.dense_h_to_4h")), P, h + "mlp.dense_4h_to_h")
            x = x + o + m
        else:
            x = x + o
            m = layer_norm(x, P[h + "post_attention_layernorm.weight"], P[h + "post_attention_layernorm.bias"], cfg.eps)
            m = linear(act(linear(m, P, h + "mlp.dense_h_to_4h")), P, h + "mlp.dense_4h_to_h")
            x = x + m
    x = layer_norm(x, P["gpt_neox.final_layer_norm.weight"], P["gpt_neox.final_layer_norm.bias"], cfg.eps)
    W = P["gpt_neox.embed_in.weight"] if (cfg.tie or "embed_out.weight" not in P) else P["embed_out.weight"]
    return x @ W.T


def _decoder(cfg, P, tokens, mode, S, B):
    """Llama, Mistral, Qwen2, Qwen3, Phi3, OLMo2, Gemma2, Gemma3 (text)."""
    fam = cfg.family
    g = cfg.raw.get
    T = tokens.shape[0]
    H, KV, d = cfg.heads, cfg.kv_heads, cfg.head_dim
    gemma = fam in ("gemma2", "gemma3_text", "gemma3")
    off = 1.0 if gemma else 0.0
    eps = cfg.eps
    act = act_fn(cfg.act)
    x = P["model.embed_tokens.weight"][tokens]
    if gemma:
        # normalizer = torch.tensor(hidden_size ** 0.5, dtype=hidden_states.dtype)
        x = x * torch.tensor(cfg.hidden ** 0.5, dtype=x.dtype)
    if gemma:
        scale = g("query_pre_attn_scalar") ** -0.5
    else:
        scale = d ** -0.5
    # Gemma2 passes softcap=attn_logit_softcapping to the attention; Gemma3's attention does not
    # (a non-null attn_logit_softcapping in a gemma3 config has no effect in HF).
    softcap = g("attn_logit_softcapping") if fam == "gemma2" else None
    rope_cache = {}
    for l in range(cfg.layers):
        h = "model.layers.%d." % l
        rp = cfg.rope_params(l)
        key = repr(sorted(rp.items()))
        if key not in rope_cache:
            rope_cache[key] = rope_cos_sin(cfg, rp, T)
        cos, sin, _ = rope_cache[key]
        resid = x
        a = x if fam == "olmo2" else rms_norm(x, P[h + "input_layernorm.weight"], eps, off)
        if fam == "phi3":
            qkv = linear(a, P, h + "self_attn.qkv_proj")
            q, k, v = qkv.split([H * d, KV * d, KV * d], dim=-1)
        else:
            q = linear(a, P, h + "self_attn.q_proj")
            k = linear(a, P, h + "self_attn.k_proj")
            v = linear(a, P, h + "self_attn.v_proj")
        if fam == "olmo2":  # RMSNorm over the whole projection, before the head split
            q = rms_norm(q, P[h + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, P[h + "self_attn.k_norm.weight"], eps)
        q = q.view(T, H, d).transpose(0, 1)
        k = k.view(T, KV, d).transpose(0, 1)
        v = v.view(T, KV, d).transpose(0, 1)
        if fam in ("qwen3",) or (gemma and fam != "gemma2"):  # per-head q/k norms over head_dim
            q = rms_norm(q, P[h + "self_attn.q_norm.weight"], eps, off)
            k = rms_norm(k, P[h + "self_attn.k_norm.weight"], eps, off)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        s, b = _sb(S, B, l)
        o = attention(q, k, v, scale, cfg.layer_windows[l], mode, s, b, softcap)
        o = linear(o, P, h + "self_attn.o_proj")
        if fam == "olmo2" or gemma:
            o = rms_norm(o, P[h + "post_attention_layernorm.weight"], eps, off)
        x = resid + o
        resid = x
        if fam == "olmo2":
            a = x
        elif gemma:
            a = rms_norm(x, P[h + "pre_feedforward_layernorm.weight"], eps, off)
        else:
            a = rms_norm(x, P[h + "post_attention_layernorm.weight"], eps, off)
        if fam == "phi3":
            gu = linear(a, P, h + "mlp.gate_up_proj")
            gate, up = gu.chunk(2, dim=-1)
            m = linear(up * act(gate), P, h + "mlp.down_proj")
        else:
            m = linear(act(linear(a, P, h + "mlp.gate_proj")) * linear(a, P, h + "mlp.up_proj"), P, h + "mlp.down_proj")
        if fam == "olmo2":
            m = rms_norm(m, P[h + "post_feedforward_layernorm.weight"], eps)
        elif gemma:
            m = rms_norm(m, P[h + "post_feedforward_layernorm.weight"], eps, off)
        x = resid + m
    x = rms_norm(x, P["model.norm.weight"], eps, off)
    W = P["model.embed_tokens.weight"] if (cfg.tie or "lm_head.weight" not in P) else P["lm_head.weight"]
    logits = x @ W.T
    fcap = g("final_logit_softcapping") if gemma else None
    if fcap is not None:
        logits = torch.tanh(logits / fcap) * fcap
    return logits


def loss_fn(logits, tokens):
    """Mean next-token cross-entropy: position t predicts token t + 1."""
    return torch.nn.functional.cross_entropy(logits[:-1], tokens[1:], reduction="mean")
