#!/usr/bin/python3
"""PyTorch baseline of bench/train.sh: trains the same GPT-2 or Llama shape
as ssmax pretrain (bench/models/*.yaml) on random token ids and prints the
median tokens/s after warm-up as one JSON line.

The model follows ssmax's GPT-2 with rotary positions: pre-norm blocks
(LayerNorm eps 1e-5), fused q/k/v projection with bias, RoPE in the
rotate-half convention (theta 10000) on q and k, causal softmax attention
(manual: this torch has no scaled_dot_product_attention), output projection,
MLP 4d with GELU tanh, residuals, final LayerNorm, LM head tied to the token
embeddings, mean cross-entropy; AdamW (betas 0.9/0.95, eps 1e-8, weight
decay 0.1 on matrices only), gradient clipping at norm 1, as ssmax's
defaults.

    bench/train_torch.py --layers 4 --heads 4 --dim 256 --vocab 8192 \\
        --ctx 256 --batch 8 --steps 20 --warmup 5 --threads 1

--arch llama is ssmax's Llama (bench/models/l1.yaml): pre-norm blocks with
RMSNorm (eps 1e-5, gain only), separate q/k/v/o projections without bias,
grouped-query attention (--kv-heads; each key/value head serves
heads/kv-heads query heads), RoPE as above, SwiGLU MLP down(silu(gate(h)) *
up(h)) of width --intermediate without bias, final RMSNorm, untied LM head;
the same optimiser (weight decay on every matrix, embeddings and head
included, as ssmax).

--threads sets torch's intra-op threads and, through the environment (it
must be set before torch loads), OpenBLAS's and OpenMP's.
"""
import argparse
import json
import os
import statistics
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--arch", choices=("gpt2", "llama"), default="gpt2")
ap.add_argument("--kv-heads", type=int, default=0, help="llama: key/value heads (default: --heads)")
ap.add_argument("--intermediate", type=int, default=0, help="llama: MLP width (default: 4 * --dim)")
ap.add_argument("--layers", type=int, required=True)
ap.add_argument("--heads", type=int, required=True)
ap.add_argument("--dim", type=int, required=True)
ap.add_argument("--vocab", type=int, required=True)
ap.add_argument("--ctx", type=int, default=256)
ap.add_argument("--batch", type=int, default=8)
ap.add_argument("--steps", type=int, default=20)
ap.add_argument("--warmup", type=int, default=5)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--eval-len", type=int, nargs="*", default=[],
                help="instead of training: forward-only tokens/s of one sequence of each length")
args = ap.parse_args()

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)


def rope_tables(T, hd, theta=10000.0):
    inv = theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()  # [T, hd/2]


def rope(x, cos, sin):  # x [B, H, T, hd]
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.fc = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x, cos, sin, mask):
        B, T, D = x.shape
        hd = D // self.h
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)
        q = rope(q.view(B, T, self.h, hd).transpose(1, 2), cos, sin)
        k = rope(k.view(B, T, self.h, hd).transpose(1, 2), cos, sin)
        v = v.view(B, T, self.h, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (hd ** -0.5)
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class LlamaBlock(nn.Module):
    def __init__(self, d, h, kvh, inter):
        super().__init__()
        self.h, self.kvh = h, kvh
        hd = d // h
        self.ln1 = RMSNorm(d)
        self.q = nn.Linear(d, h * hd, bias=False)
        self.k = nn.Linear(d, kvh * hd, bias=False)
        self.v = nn.Linear(d, kvh * hd, bias=False)
        self.o = nn.Linear(h * hd, d, bias=False)
        self.ln2 = RMSNorm(d)
        self.gate = nn.Linear(d, inter, bias=False)
        self.up = nn.Linear(d, inter, bias=False)
        self.down = nn.Linear(inter, d, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, D = x.shape
        hd = D // self.h
        h = self.ln1(x)
        q = rope(self.q(h).view(B, T, self.h, hd).transpose(1, 2), cos, sin)
        k = rope(self.k(h).view(B, T, self.kvh, hd).transpose(1, 2), cos, sin)
        v = self.v(h).view(B, T, self.kvh, hd).transpose(1, 2)
        rep = self.h // self.kvh
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-2, -1)) * (hd ** -0.5)
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = x + self.o(y)
        h = self.ln2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Llama(nn.Module):
    def __init__(self, layers, heads, kv_heads, d, inter, vocab):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(LlamaBlock(d, heads, kv_heads, inter) for _ in range(layers))
        self.norm = RMSNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.heads = heads
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def head_weight(self):
        return self.head.weight

    def hidden(self, ids):
        T = ids.shape[1]
        cos, sin = rope_tables(T, self.embed.weight.shape[1] // self.heads)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        x = self.embed(ids)
        for b in self.blocks:
            x = b(x, cos, sin, mask)
        return self.norm(x)

    def loss(self, ids, targets):
        logits = self.head(self.hidden(ids))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


class GPT(nn.Module):
    def __init__(self, layers, heads, d, vocab):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d, eps=1e-5)
        self.heads = heads
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def hidden(self, ids):
        T = ids.shape[1]
        cos, sin = rope_tables(T, self.wte.weight.shape[1] // self.heads)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        x = self.wte(ids)
        for b in self.blocks:
            x = b(x, cos, sin, mask)
        return self.ln_f(x)

    def head_weight(self):
        return self.wte.weight  # tied head

    def loss(self, ids, targets):
        logits = self.hidden(ids) @ self.wte.weight.t()  # tied head
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


if args.arch == "llama":
    model = Llama(args.layers, args.heads, args.kv_heads or args.heads, args.dim,
                  args.intermediate or 4 * args.dim, args.vocab)
else:
    model = GPT(args.layers, args.heads, args.dim, args.vocab)

if args.eval_len:
    # Forward-only: the hidden states of one sequence, then the loss in
    # chunks of 256 positions (as ssmax score projects onto the vocabulary).
    out = {}
    with torch.no_grad():
        for n in args.eval_len:
            ids = torch.randint(0, 256, (1, n + 1))
            best = None
            for _ in range(2):
                t0 = time.perf_counter()
                h = model.hidden(ids[:, :-1])[0]
                nll = 0.0
                for lo in range(0, n, 256):
                    logits = h[lo:lo + 256] @ model.head_weight().t()
                    nll += F.cross_entropy(logits, ids[0, lo + 1:lo + 257], reduction="sum").item()
                dt = time.perf_counter() - t0
                best = dt if best is None else min(best, dt)
            out[str(n)] = n / best
    print(json.dumps({"threads": args.threads, "eval_tokens_per_sec": out}))
    sys.exit(0)

decay = [p for p in model.parameters() if p.dim() >= 2]
no_decay = [p for p in model.parameters() if p.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                         {"params": no_decay, "weight_decay": 0.0}],
                        lr=3e-4, betas=(0.9, 0.95), eps=1e-8, foreach=True)
tokens = args.batch * args.ctx
times = []
for step in range(args.steps):
    data = torch.randint(0, args.vocab, (args.batch, args.ctx + 1))
    t0 = time.perf_counter()
    loss = model.loss(data[:, :-1], data[:, 1:])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    times.append(time.perf_counter() - t0)
steady = times[args.warmup:] or times
print(json.dumps({"threads": args.threads, "steps": args.steps, "tokens_per_sec": tokens / statistics.median(steady),
                  "loss": loss.item()}))
