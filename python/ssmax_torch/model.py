"""The decoder, built from the resolved spec ssmax writes (OUT/spec.json, or
`ssmax inspect --resolved`): no family is named here, every behaviour is a
feature of the spec, computed in the order of ssmax's Go engine
(model/forward.go).

Weights are held in the layout of the Go engine's memory, so moments and
master weights are interchangeable with it: as stored, except GPT-NeoX's
per-head fused query_key_value, whose rows are reordered to [q | k | v]
(row_layout "qkv_per_head"), and linear weights stored [in, out]
("transposed", GPT-2's Conv1D), which are applied as x @ W.

Inputs are rows of packed documents: ids [R, T], each token's position in
its document and the id of its document (segment). Attention never crosses
a document; positions and SSMax's n restart at each one.
"""
import math

import torch
import torch.utils.checkpoint
import torch.nn.functional as F
from torch import nn

SSMAX_VARIANTS = ("softmax", "ssmax", "fixed", "bias")


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def _gelu_fast(x):
    return 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


# The activations by config.json name, as ssmax's kernels name them.
ACTIVATIONS = {
    "silu": F.silu, "swish": F.silu,
    "gelu": F.gelu, "gelu_python": F.gelu,
    "gelu_new": _gelu_tanh, "gelu_pytorch_tanh": _gelu_tanh, "gelu_accurate": _gelu_tanh,
    "gelu_fast": _gelu_fast,
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "relu": F.relu,
}


def ssmax_scale(q, variant, s, b, log_n, scale):
    """SSMax, the one definition: queries q [R, H, T, d] multiplied by the
    logit scale and the factor of the number of keys each query sees,
    s·ln n (ssmax), ln n (fixed), s·ln n + b (bias), 1 (softmax); s and b
    are per head [H], log_n is ln n per query [R, 1, T, 1]. Multiplying q
    rather than the logits puts an attention soft-cap after the factor."""
    if variant == "softmax":
        return q * scale
    if variant == "fixed":
        f = log_n
    elif variant == "ssmax":
        f = s.view(1, -1, 1, 1) * log_n
    elif variant == "bias":
        f = s.view(1, -1, 1, 1) * log_n + b.view(1, -1, 1, 1)
    else:
        raise ValueError("unknown attention variant %r" % variant)
    return q * (f * scale)


def dynamic_inv_freq(rope, length):
    """Dynamic NTK past max_position_embeddings (ssmax arch/rope.go):
    base' = theta·(factor·L/max_positions − (factor − 1))^(dim/(dim−2))."""
    dim, mx, factor = rope["dim"], rope["max_positions"], rope["scaling"]["factor"]
    base = rope["theta"] * math.pow(factor * length / mx - (factor - 1), dim / (dim - 2))
    return [1.0 / math.pow(base, (2 * i) / dim) for i in range(dim // 2)]


def rope_table(rope, length):
    """The inverse frequencies and attention factor of a resolved RoPE for
    a forward pass whose longest document has `length` tokens."""
    for t in rope["tables"]:
        if t["max_len"] == 0 or length <= t["max_len"]:
            if t.get("dynamic"):
                return dynamic_inv_freq(rope, length), t["attn_factor"]
            return t["inv_freq"], t["attn_factor"]
    raise ValueError("no RoPE table for length %d" % length)


def check_rope(spec):
    """Checks dynamic_inv_freq against the tables Go computed."""
    for name, rope in (spec.get("rope") or {}).items():
        for t in rope["tables"]:
            if t.get("dynamic"):
                mine = dynamic_inv_freq(rope, t["at_len"])
                for a, b in zip(mine, t["inv_freq"]):
                    if abs(a - b) > 1e-12 * max(abs(b), 1e-300):
                        raise ValueError("RoPE %s: dynamic frequencies differ from ssmax's at length %d" % (name, t["at_len"]))


def reorder_qkv_per_head(w, heads, head_dim, to_engine):
    """GPT-NeoX's query_key_value rows: stored head by head [q_h | k_h | v_h],
    computed as [q | k | v] (to_engine), or back."""
    rest = list(w.shape[1:])
    if to_engine:
        return w.reshape([heads, 3, head_dim] + rest).transpose(0, 1).reshape([3 * heads * head_dim] + rest)
    return w.reshape([3, heads, head_dim] + rest).transpose(0, 1).reshape([3 * heads * head_dim] + rest)


def to_engine(t, info, spec):
    """A stored tensor (float32) in the engine's layout."""
    if info.get("row_layout") == "qkv_per_head":
        t = reorder_qkv_per_head(t, spec["num_heads"], spec["head_dim"], True)
    return t.contiguous()


def to_stored(t, info, spec):
    """An engine tensor in its stored layout."""
    if info.get("row_layout") == "qkv_per_head":
        t = reorder_qkv_per_head(t, spec["num_heads"], spec["head_dim"], False)
    return t.reshape(info["shape"])


class Block(nn.Module):
    """One transformer layer: its weights by role and its attention."""

    def __init__(self, spec, index, weights):
        super().__init__()
        self.spec = spec
        self.index = index
        lay = spec["layers"][index]
        self.window = lay["window"]
        self.rope = lay.get("rope") or ""
        self.variant = lay["variant"]
        self.w = nn.ParameterDict()
        self.transposed = {}
        for info in spec["tensors"]:
            if info["layer"] != index:
                continue
            if info["name"] in weights:
                self.w[info["role"]] = nn.Parameter(weights[info["name"]])
                self.transposed[info["role"]] = bool(info.get("transposed"))

    def set_attention(self, variant, s=None, b=None):
        """Switches the layer's attention (SSMax parameters as given, or
        removed when the variant has none)."""
        if variant not in SSMAX_VARIANTS:
            raise ValueError("unknown attention variant %r" % variant)
        for role, val in (("ssmax_s", s), ("ssmax_b", b)):
            if val is None:
                if role in self.w:
                    del self.w[role]
            else:
                self.w[role] = nn.Parameter(torch.as_tensor(val, dtype=torch.float32).clone())
        self.variant = variant

    def p(self, role):
        return self.w[role] if role in self.w else None

    def linear(self, x, role, bias_role=None):
        w = self.w[role]
        y = x @ w if self.transposed.get(role) else F.linear(x, w)
        if bias_role and bias_role in self.w:
            y = y + self.w[bias_role]
        return y

    def norm(self, x, role, bias_role=None):
        return apply_norm(self.spec, x, self.w[role], self.p(bias_role) if bias_role else None)

    def forward(self, x, ctx):
        s = self.spec
        if s["parallel_residual"]:
            return x + self.attention_sublayer(x, ctx) + self.mlp_sublayer(x)
        x = x + self.attention_sublayer(x, ctx)
        return x + self.mlp_sublayer(x)

    def attention_sublayer(self, x, ctx):
        place = self.spec["norm"]["placement"]
        h = x if place == "post" else self.norm(x, "attn_norm", "attn_norm_bias")
        out = self.linear(self.attend(h, ctx), "attn_out", "attn_out_bias")
        if place != "pre":
            out = self.norm(out, "attn_post_norm")
        return out

    def mlp_sublayer(self, x):
        s = self.spec
        place = s["norm"]["placement"]
        h = x if place == "post" else self.norm(x, "mlp_norm", "mlp_norm_bias")
        act = ACTIVATIONS[s["activation"]]
        if s["fused_gate_up"]:
            gu = self.linear(h, "mlp_gate_up")
            inter = s["intermediate_size"]
            a = act(gu[..., :inter]) * gu[..., inter:]
        elif s["gated_mlp"]:
            a = act(self.linear(h, "mlp_gate", "mlp_gate_bias")) * self.linear(h, "mlp_up", "mlp_up_bias")
        else:
            a = act(self.linear(h, "mlp_up", "mlp_up_bias"))
        out = self.linear(a, "mlp_down", "mlp_down_bias")
        if place != "pre":
            out = self.norm(out, "mlp_post_norm")
        return out

    def projections(self, h):
        s = self.spec
        H, KV, d = s["num_heads"], s["num_kv_heads"], s["head_dim"]
        if s["qkv"] == "separate":
            q = self.linear(h, "q", "q_bias")
            k = self.linear(h, "k", "k_bias")
            v = self.linear(h, "v", "v_bias")
        else:
            qkv = self.linear(h, "qkv", "qkv_bias")
            q, k, v = qkv[..., :H * d], qkv[..., H * d:(H + KV) * d], qkv[..., (H + KV) * d:]
        eps, off = s["norm"]["eps"], s["norm"]["offset"]
        if s["qk_norm"] == "head":
            R, T = q.shape[0], q.shape[1]
            q = rms_norm(q.reshape(R, T, H, d), self.w["q_norm"], eps, off).reshape(R, T, H * d)
            k = rms_norm(k.reshape(R, T, KV, d), self.w["k_norm"], eps, off).reshape(R, T, KV * d)
        elif s["qk_norm"] == "projection":
            q = rms_norm(q, self.w["q_norm"], eps, off)
            k = rms_norm(k, self.w["k_norm"], eps, off)
        return q, k, v

    def attend(self, h, ctx):
        s = self.spec
        H, KV, d = s["num_heads"], s["num_kv_heads"], s["head_dim"]
        R, T = h.shape[0], h.shape[1]
        q, k, v = self.projections(h)
        q = q.reshape(R, T, H, d).transpose(1, 2)
        k = k.reshape(R, T, KV, d).transpose(1, 2)
        v = v.reshape(R, T, KV, d).transpose(1, 2)
        if self.rope:
            cos, sin = ctx.rope(self.rope)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q = ssmax_scale(q, self.variant, self.p("ssmax_s"), self.p("ssmax_b"), ctx.log_n(self.window), s["attn_scale"])
        if KV != H:
            k = k.repeat_interleave(H // KV, dim=1)
            v = v.repeat_interleave(H // KV, dim=1)
        z = q @ k.transpose(-1, -2)
        cap = s["attn_softcap"]
        if cap:
            z = cap * torch.tanh(z / cap)
        z = z.float().masked_fill(~ctx.mask(self.window), float("-inf"))
        p = torch.softmax(z, dim=-1).to(v.dtype)
        return (p @ v).transpose(1, 2).reshape(R, T, H * d)


def rms_norm(x, w, eps, offset=0.0):
    y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y * (w + offset) if offset else y * w


def apply_norm(spec, x, w, b=None):
    n = spec["norm"]
    if n["kind"] == "layernorm":
        return F.layer_norm(x, (x.shape[-1],), w, b, n["eps"])
    return rms_norm(x, w, n["eps"], n["offset"])


def apply_rope(x, cos, sin):
    """Rotate-half RoPE on the first 2·cos.shape[-1] dims of each head of
    x [R, H, T, d]; cos and sin [R, 1, T, dim/2] (attention factor included)."""
    half = cos.shape[-1]
    x1, x2, rest = x[..., :half], x[..., half:2 * half], x[..., 2 * half:]
    out = [x1 * cos - x2 * sin, x2 * cos + x1 * sin]
    if rest.shape[-1]:
        out.append(rest)
    return torch.cat(out, dim=-1)


class Context:
    """What the layers of one forward pass share: masks, ln n and RoPE
    tables, by window and RoPE, computed once."""

    def __init__(self, spec, pos, seg, rope_len, dtype):
        self.spec, self.pos, self.seg, self.rope_len, self.dtype = spec, pos, seg, rope_len, dtype
        self._mask, self._logn, self._rope = {}, {}, {}

    def mask(self, window):
        if window not in self._mask:
            T = self.pos.shape[1]
            i = torch.arange(T, device=self.pos.device)
            m = (self.seg[:, :, None] == self.seg[:, None, :]) & (i[None, :, None] >= i[None, None, :])
            if window:
                m = m & (i[None, :, None] - i[None, None, :] < window)
            self._mask[window] = m[:, None]
        return self._mask[window]

    def log_n(self, window):
        if window not in self._logn:
            n = (self.pos + 1).double()
            if window:
                n = n.clamp(max=window)
            self._logn[window] = torch.log(n).to(self.dtype)[:, None, :, None]
        return self._logn[window]

    def rope(self, name):
        if name not in self._rope:
            r = self.spec["rope"][name]
            inv, factor = rope_table(r, self.rope_len)
            inv = torch.tensor(inv, dtype=torch.float64, device=self.pos.device)
            ang = self.pos.double()[..., None] * inv
            cos = (torch.cos(ang) * factor).to(self.dtype)[:, None]
            sin = (torch.sin(ang) * factor).to(self.dtype)[:, None]
            self._rope[name] = (cos, sin)
        return self._rope[name]


class Decoder(nn.Module):
    """The language model of a resolved spec, with weights {name: float32
    tensor in the engine layout}."""

    def __init__(self, spec, weights):
        super().__init__()
        if spec.get("format") != "ssmax.resolved_spec":
            raise ValueError("not an ssmax resolved spec (format %r)" % spec.get("format"))
        if spec["activation"] not in ACTIVATIONS:
            raise ValueError("unsupported activation %r" % spec["activation"])
        check_rope(spec)
        self.spec = spec
        self.g = nn.ParameterDict()
        self.transposed = {}
        self.names = {}  # tensor name -> (layer, role)
        for info in spec["tensors"]:
            name = info["name"]
            if name not in weights:
                if info.get("optional"):
                    continue
                raise ValueError("tensor %s missing" % name)
            self.names[name] = (info["layer"], info["role"])
            if info["layer"] < 0:
                self.g[info["role"]] = nn.Parameter(weights[name])
        self.layers = nn.ModuleList([Block(spec, i, weights) for i in range(spec["num_layers"])])
        # activation_checkpointing recomputes each block's forward pass in
        # backward (ssmax finetune --activation-checkpointing).
        self.activation_checkpointing = False

    def param(self, name):
        """The parameter holding tensor name, or None."""
        layer, role = self.names.get(name, (None, None))
        if role is None:
            return None
        d = self.g if layer < 0 else self.layers[layer].w
        return d[role] if role in d else None

    def named_tensors(self):
        """(tensor name, parameter) of every weight: the spec's order, then
        the SSMax parameters a switch added."""
        out = []
        for name in self.names:
            p = self.param(name)
            if p is not None:
                out.append((name, p))
        return out

    def switch(self, layers, variant, s_init, b_init):
        """Switches layers to an SSMax variant, every head starting at s_init
        (and b_init): layers = [{"index", "s", "b"}] with the tensor names."""
        H = self.spec["num_heads"]
        for lay in layers:
            i = lay["index"]
            s = torch.full((H,), s_init, dtype=torch.float32) if lay.get("s") else None
            b = torch.full((H,), b_init, dtype=torch.float32) if lay.get("b") else None
            self.layers[i].set_attention(variant, s, b)
            for key, role in (("s", "ssmax_s"), ("b", "ssmax_b")):
                if lay.get(key):
                    self.names[lay[key]] = (i, role)

    def head(self):
        return self.g["lm_head"] if "lm_head" in self.g else self.g["embed"]

    def hidden(self, ids, pos, seg, rope_len):
        """Final hidden states [R, T, hidden] (after the final norm)."""
        s = self.spec
        x = F.embedding(ids, self.g["embed"])
        if s["embed_scale"]:
            x = x * torch.tensor(s["embed_scale"], dtype=x.dtype)
        if "pos_embed" in self.g:
            x = x + F.embedding(pos, self.g["pos_embed"])
        ctx = Context(s, pos, seg, rope_len, x.dtype)
        recompute = self.activation_checkpointing and torch.is_grad_enabled()
        for blk in self.layers:
            if recompute:
                x = torch.utils.checkpoint.checkpoint(blk, x, ctx, use_reentrant=False)
            else:
                x = blk(x, ctx)
        return apply_norm(s, x, self.g["final_norm"], self.g["final_norm_bias"] if "final_norm_bias" in self.g else None)

    def logits(self, h):
        y = F.linear(h, self.head())
        cap = self.spec["final_softcap"]
        if cap:
            y = cap * torch.tanh(y / cap)
        return y

    def forward(self, ids, pos, seg, rope_len):
        return self.logits(self.hidden(ids, pos, seg, rope_len))

    def set_layer_attention(self, layer, variant, s=None, b=None):
        """Puts a layer in a golden mode (tests)."""
        self.layers[layer].set_attention(variant, s, b)


def positions(T, starts, device=None):
    """Positions and segment ids of one row of T tokens whose documents start
    at the sorted indices starts (first 0)."""
    pos = torch.empty(T, dtype=torch.long)
    seg = torch.empty(T, dtype=torch.long)
    bounds = list(starts) + [T]
    for j in range(len(starts)):
        a, b = bounds[j], bounds[j + 1]
        pos[a:b] = torch.arange(b - a)
        seg[a:b] = j
    return pos.to(device), seg.to(device)
