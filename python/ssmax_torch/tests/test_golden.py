"""The PyTorch model against the golden logits (and gradients) of every
fixture in every attention mode: the same independent references the Go
engine is held to (model/model_test.go), within the same tolerances."""
import json
import os
import sys
import unittest

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
from ssmax_torch import checkpoint, st  # noqa: E402
from ssmax_torch.model import Decoder, positions, to_stored  # noqa: E402
from ssmax_torch.tests import helpers  # noqa: E402

MODES = {"softmax": "softmax", "ssmax": "ssmax", "ssmax-bias": "bias", "ssmax-fixed": "fixed"}


def setUpModule():
    if helpers.ssmax_bin() is None:
        raise unittest.SkipTest("no ssmax binary (set SSMAX_BIN or install Go)")


def load(name):
    d = os.path.join(helpers.FIXTURES, name)
    with open(os.path.join(d, "golden.json")) as f:
        golden = json.load(f)
    spec = helpers.resolved_spec(d, len(golden["tokens"]))
    weights, _ = checkpoint.load_weights(d, spec["tensors"], spec)
    return d, golden, spec, weights


def set_mode(model, golden, mode):
    g = golden["modes"][mode]
    for l in range(model.spec["num_layers"]):
        s = torch.tensor(g["s"][l], dtype=torch.float32) if g.get("s") else None
        b = torch.tensor(g["b"][l], dtype=torch.float32) if g.get("b") else None
        model.set_layer_attention(l, MODES[mode], s, b)


def run(model, tokens):
    T = len(tokens)
    ids = torch.tensor([tokens])
    pos, seg = positions(T, [0])
    logits = model(ids, pos[None], seg[None], T)[0]
    tgt = torch.tensor(tokens[1:] + [-1])
    loss = F.cross_entropy(logits, tgt, ignore_index=-1)
    return logits, loss


class GoldenLogits(unittest.TestCase):
    def test_every_fixture_every_mode(self):
        names = helpers.fixture_names()
        self.assertGreaterEqual(len(names), 29)
        for name in names:
            d, golden, spec, weights = load(name)
            gl = st.Reader(os.path.join(d, "golden.safetensors"))
            self.addCleanup(gl.close)
            for mode in MODES:
                with self.subTest(fixture=name, mode=mode):
                    model = Decoder(spec, {k: v.clone() for k, v in weights.items()})
                    set_mode(model, golden, mode)
                    with torch.no_grad():
                        logits, loss = run(model, golden["tokens"])
                    want = gl.tensor("logits." + mode).float()
                    err = ((logits - want).abs() / want.abs().clamp(min=1)).max().item()
                    self.assertLessEqual(err, 1e-4, "max relative logit error")
                    wl = golden["modes"][mode]["loss"]
                    self.assertLessEqual(abs(loss.item() - wl), 1e-5 * wl, "loss %.8f, want %.8f" % (loss.item(), wl))


class GoldenGradients(unittest.TestCase):
    def test_fixtures_with_gradients(self):
        names = [n for n in helpers.fixture_names() if os.path.exists(os.path.join(helpers.FIXTURES, n, "golden_grads.safetensors"))]
        self.assertGreaterEqual(len(names), 10)
        for name in names:
            d, golden, spec, weights = load(name)
            gr = st.Reader(os.path.join(d, "golden_grads.safetensors"))
            self.addCleanup(gr.close)
            by_mode = {}
            for n in gr.header:
                if n.startswith("grad."):
                    mode, tensor = n[5:].split(".", 1)
                    by_mode.setdefault(mode, []).append(tensor)
            infos = {t["name"]: t for t in spec["tensors"]}
            for mode, tensors in by_mode.items():
                # --activation-checkpointing must give the same gradients.
                for recompute in (False, True):
                    with self.subTest(fixture=name, mode=mode, activation_checkpointing=recompute):
                        model = Decoder(spec, {k: v.clone() for k, v in weights.items()})
                        model.activation_checkpointing = recompute
                        set_mode(model, golden, mode)
                        _, loss = run(model, golden["tokens"])
                        loss.backward()
                        for tensor in tensors:
                            p = model.param(tensor)
                            if p is None:  # s and b set for the mode
                                layer = int(tensor.split(".layers.")[-1].split(".")[0]) if ".layers." in tensor else int(tensor.split(".h.")[-1].split(".")[0])
                                p = model.layers[layer].w["ssmax_s" if tensor.endswith("ssmax_s") else "ssmax_b"]
                                info = {"shape": list(p.shape)}
                            else:
                                info = infos[tensor]
                            self.assertIsNotNone(p.grad, tensor)
                            got = to_stored(p.grad, info, spec).reshape(-1)
                            want = gr.tensor("grad.%s.%s" % (mode, tensor)).float().reshape(-1)
                            scale = want.abs().max().item() or 1.0
                            worst = (got - want).abs().max().item()
                            self.assertLessEqual(worst / scale, 1e-3, "%s: max gradient error relative to %.3g" % (tensor, scale))


class Packing(unittest.TestCase):
    """Documents packed in a row, and rows of a batch, are computed as if
    alone: positions, attention, windows and SSMax's n restart."""

    def test_packed_documents(self):
        for name in ("qwen2-tiny-window-ssmax-bias", "gemma2-tiny", "pythia-tiny"):
            with self.subTest(fixture=name):
                _, golden, spec, weights = load(name)
                model = Decoder(spec, weights)
                tok = golden["tokens"]
                T, a = len(tok), 11
                with torch.no_grad():
                    pos, seg = positions(T, [0, a])
                    packed = model(torch.tensor([tok]), pos[None], seg[None], max(a, T - a))[0]
                    p1, s1 = positions(a, [0])
                    first = model(torch.tensor([tok[:a]]), p1[None], s1[None], a)[0]
                    p2, s2 = positions(T - a, [0])
                    second = model(torch.tensor([tok[a:]]), p2[None], s2[None], T - a)[0]
                    rows = model(torch.tensor([tok[:a], tok[a:2 * a]]), torch.stack([p1, p1]), torch.stack([s1, s1]), a)
                self.assertLess((packed[:a] - first).abs().max().item(), 1e-4)
                self.assertLess((packed[a:] - second).abs().max().item(), 1e-4)
                self.assertLess((rows[0] - first).abs().max().item(), 1e-5)


if __name__ == "__main__":
    unittest.main()
