#!/usr/bin/env python3
"""Fixture generator and checker for ssmax (see README.md beside this file).

  python3 testdata/gen/gen_fixtures.py --check [DIR ...]     recompute every fixture's goldens
  python3 testdata/gen/gen_fixtures.py --generate [--out DIR] [--only NAME ...] [--import-shared DIR]

Needs torch and numpy only (Debian: python3-torch python3-numpy).
"""
import argparse
import glob
import hashlib
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref  # noqa: E402
import st  # noqa: E402

torch.set_num_threads(1)
F64 = torch.float64


# ----------------------------------------------------------------------------- loading

def load_checkpoint(fdir):
    """(config dict, name -> (dtype, np array)) from config.json + model.safetensors or shards."""
    cfg = json.load(open(os.path.join(fdir, "config.json")))
    idx = os.path.join(fdir, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(idx):
        wm = json.load(open(idx))["weight_map"]
        for shard in sorted(set(wm.values())):
            t, _ = st.load(os.path.join(fdir, shard))
            tensors.update(t)
        missing = set(wm) - set(tensors)
        assert not missing, missing
    else:
        tensors, _ = st.load(os.path.join(fdir, "model.safetensors"))
    return cfg, tensors


def split_params(cfg, tensors):
    """Weights (float64 tensors) and the checkpoint's SSMax s / b as [layers, heads] arrays or None."""
    c = ref.Cfg(cfg)
    P, S, B = {}, None, None
    for name, (dt, arr) in tensors.items():
        if name.endswith(".ssmax_s") or name.endswith(".ssmax_b"):
            continue
        P[name] = torch.from_numpy(arr.astype(np.float64))
    for suffix in ("ssmax_s", "ssmax_b"):
        rows = []
        for l in range(c.layers):
            n = ref.attn_prefix(c.family, l) + "." + suffix
            rows.append(tensors[n][1].astype(np.float64) if n in tensors else None)
        if any(r is not None for r in rows):
            if suffix == "ssmax_s":
                S = rows
            else:
                B = rows
    return c, P, S, B


def pattern_s(layers, heads):
    return [[0.25 + 0.1 * h + 0.05 * l for h in range(heads)] for l in range(layers)]


def pattern_b(layers, heads):
    return [[0.1 * (h - (heads - 1) / 2) + 0.05 * l for h in range(heads)] for l in range(layers)]


def run_mode(c, P, tokens, mode, s, b, want_grads=False):
    """logits (float64 tensor), loss (float), grads dict (name -> tensor) or None."""
    Pg = {k: v.clone().requires_grad_(want_grads) for k, v in P.items()}
    S = torch.tensor(s, dtype=F64).requires_grad_(want_grads) if s is not None else None
    B = torch.tensor(b, dtype=F64).requires_grad_(want_grads) if b is not None else None
    tok = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
    with torch.set_grad_enabled(want_grads):
        logits = ref.forward(c, Pg, tok, mode, S, B)
        loss = ref.loss_fn(logits, tok)
    grads = None
    if want_grads:
        loss.backward()
        grads = {k: v.grad.detach() for k, v in Pg.items()}
        for l in range(c.layers):
            pre = ref.attn_prefix(c.family, l)
            if S is not None:
                grads[pre + ".ssmax_s"] = S.grad[l].detach()
            if B is not None:
                grads[pre + ".ssmax_b"] = B.grad[l].detach()
    return logits.detach(), float(loss.detach()), grads


# ----------------------------------------------------------------------------- check

def check_fixture(fdir, verbose=True):
    name = os.path.basename(os.path.normpath(fdir))
    cfg, tensors = load_checkpoint(fdir)
    c, P, _, _ = split_params(cfg, tensors)
    gold = json.load(open(os.path.join(fdir, "golden.json")))
    gt, _ = st.load(os.path.join(fdir, "golden.safetensors"))
    tokens = gt["tokens"][1]
    assert list(tokens) == gold["tokens"]
    gg = None
    gp = os.path.join(fdir, "golden_grads.safetensors")
    if os.path.exists(gp):
        gg, _ = st.load(gp)
    rows = []
    worst = {"logit_abs": 0.0, "logit_rel": 0.0, "loss": 0.0, "grad_abs": 0.0, "grad_rel": 0.0, "argmax": 0}
    for mode in ref.MODES:
        md = gold["modes"][mode]
        want_g = gg is not None and any(k.startswith("grad.%s." % mode) for k in gg)
        logits, loss, grads = run_mode(c, P, tokens, mode, md["s"], md["b"], want_g)
        ref_l = gt["logits." + mode][1].astype(np.float64)
        mine = logits.numpy()
        dabs = float(np.abs(mine - ref_l).max())
        drel = dabs / float(np.abs(ref_l).max())
        dloss = abs(loss - md["loss"])
        am = int((mine.astype(np.float32).argmax(-1) != np.asarray(md["argmax"])).sum())
        row = {"mode": mode, "logit_abs": dabs, "logit_rel": drel, "loss": dloss, "argmax_mismatch": am}
        worst["logit_abs"] = max(worst["logit_abs"], dabs)
        worst["logit_rel"] = max(worst["logit_rel"], drel)
        worst["loss"] = max(worst["loss"], dloss)
        worst["argmax"] += am
        if grads is not None:
            ga, gr, ng = 0.0, 0.0, 0
            for k, (dt, arr) in gg.items():
                if not k.startswith("grad.%s." % mode):
                    continue
                tn = k[len("grad.%s." % mode):]
                g = grads[tn].numpy()
                r = arr.astype(np.float64)
                d = float(np.abs(g - r).max())
                ga = max(ga, d)
                gr = max(gr, d / max(float(np.abs(r).max()), 1e-30))
                ng += 1
            missing = [k for k in grads if "grad.%s.%s" % (mode, k) not in gg]
            row.update({"grad_abs": ga, "grad_rel": gr, "grad_tensors": ng, "grad_missing": missing})
            worst["grad_abs"] = max(worst["grad_abs"], ga)
            worst["grad_rel"] = max(worst["grad_rel"], gr)
        rows.append(row)
    if verbose:
        for r in rows:
            extra = ""
            if "grad_abs" in r:
                extra = "  grads(%d) abs %.2e rel %.2e%s" % (r["grad_tensors"], r["grad_abs"], r["grad_rel"],
                                                          (" MISSING %s" % r["grad_missing"]) if r["grad_missing"] else "")
            print("  %-11s logits abs %.2e rel %.2e  loss %.2e  argmax-diff %d%s" % (
                r["mode"], r["logit_abs"], r["logit_rel"], r["loss"], r["argmax_mismatch"], extra))
    return name, worst


def tolerances_ok(w):
    return w["logit_rel"] < 1e-6 and w["loss"] < 1e-9 and w["grad_rel"] < 1e-6 and w["argmax"] == 0


def cmd_check(dirs):
    fixtures = []
    for d in dirs:
        if os.path.exists(os.path.join(d, "config.json")):
            fixtures.append(d)
        else:
            fixtures += sorted(os.path.dirname(p) for p in glob.glob(os.path.join(d, "*", "golden.json")))
    summary = []
    for f in fixtures:
        print("%s" % f)
        name, w = check_fixture(f)
        summary.append((name, w))
    print()
    print("%-28s %10s %10s %10s %10s %10s %s" % ("fixture", "logit_abs", "logit_rel", "loss", "grad_abs", "grad_rel", "ok"))
    bad = 0
    for name, w in summary:
        ok = tolerances_ok(w)
        bad += not ok
        print("%-28s %10.2e %10.2e %10.2e %10.2e %10.2e %s" % (
            name, w["logit_abs"], w["logit_rel"], w["loss"], w["grad_abs"], w["grad_rel"], "ok" if ok else "FAIL"))
    print("%d fixtures, %d failed" % (len(summary), bad))
    return 1 if bad else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", nargs="*", metavar="DIR", help="fixture dirs or parents of fixture dirs")
    ap.add_argument("--generate", action="store_true", help="write the generated fixtures")
    ap.add_argument("--out", default=None, help="output dir for --generate (default: testdata/fixtures)")
    ap.add_argument("--only", nargs="*", help="generate only these fixtures")
    ap.add_argument("--import-shared", metavar="DIR", default=None,
                    help="with --generate: also copy the independent fixtures of DIR (byte-identical, "
                         "hashes checked) and their MANIFEST entries")
    ap.add_argument("--hf-rope-f32", action="store_true",
                    help="RoPE tables in float32 as HF computes them (default: float64, as the goldens)")
    a = ap.parse_args(argv)
    if a.hf_rope_f32:
        ref.ROPE_F32 = True
    if a.check is not None:
        return cmd_check(a.check or ["/work/shared/fixtures"])
    if a.generate:
        import fixtures_spec
        return fixtures_spec.generate(a.out, a.only, a.import_shared)
    ap.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
