"""The worker of `ssmax finetune --engine torch` (and pretrain): every
process torch.distributed.run starts runs

    python -m ssmax_torch.train --run OUT/torch/node<R>/run.json

ssmax (Go) has checked the options, the model and the data and written
run.json, spec.json, the token streams and the batch plan; this trains as
ssmax's spago engine does (finetune/run.go, trainer.loop): the same global
batch at every step (each rank takes rows r, r+W, ... of each micro-batch),
the same losses (sums over the micro-batch's targets divided by their count
in the whole micro-batch), AdamW with spago's update, the same schedule,
clipping and accumulation, and the same outputs: OUT/metrics.jsonl,
OUT/step_N/ (a complete checkpoint, trainer_state/ and DONE last), OUT/final/.
Rank 0 writes; DDP by default, FSDP with run.json's "fsdp"; gloo on CPUs,
NCCL on CUDA GPUs. Rank 0 reports progress to ssmax on stdout as lines
"@ssmax {json event}".
"""
import argparse
import contextlib
import ctypes
import json
import math
import os
import shutil
import signal
import sys
import time
import traceback

import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import checkpoint, st
from . import data as D
from .model import Decoder, positions
from .optim import AdamW

EVENT = "@ssmax "
PAUSE_ENV = "SSMAX_TEST_PAUSE_AT_STEP"
GROUPS = ("decay", "no_decay", "ssmax")


class RunError(Exception):
    """A problem to report to the user in one line."""


def emit(event, **kw):
    sys.stdout.write(EVENT + json.dumps(dict(event=event, **kw), separators=(",", ":")) + "\n")
    sys.stdout.flush()


def die_with_parent():
    """Asks the kernel to kill this worker when its launcher dies (Linux), so
    a killed ssmax leaves no process behind."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        return
    if os.getppid() == 1:
        os._exit(1)


def go_float(x):
    """A non-finite float as Go's %v prints it."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return "%g" % x


def metrics_line(rec):
    return json.dumps(rec, separators=(",", ":")) + "\n"


class Trainer:
    def __init__(self, run_path):
        self.node = os.path.dirname(os.path.abspath(run_path))
        with open(run_path) as f:
            self.run = run = json.load(f)
        if run.get("format") != "ssmax.torch_run" or run.get("version") != 1:
            raise RunError("%s: not a run file of this ssmax_torch" % run_path)
        with open(os.path.join(self.node, run["spec"])) as f:
            self.spec = spec = json.load(f)
        self.cfg = cfg = run["config"]
        self.out = run["out"]
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.cuda = torch.cuda.is_available()
        if self.cuda:
            self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        self.autocast = contextlib.nullcontext
        if run["precision"] == "bf16":
            if not (self.cuda and torch.cuda.is_bf16_supported()):
                raise RunError("--precision bf16 needs CUDA GPUs that support bfloat16 (this node has none): use --precision fp32")
            self.autocast = lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        self.T, self.B, self.A = cfg["seq_len"], cfg["batch_size"], cfg["grad_accum"]
        self.total = run["total_steps"]
        d = run["data"]
        self.train = D.Stream(self.node, d["train"], d["token_width"])
        self.val = D.Stream(self.node, d["val"], d["token_width"]) if d.get("val") else None
        self.plan = D.Plan(self.node, d, self.total, self.A, self.B)
        self.windows, self.seed = d["windows"], d["seed"]
        self.first_step, self.start_windows = d.get("first_step", 0), d.get("start_windows", 0)

        self.infos = {t["name"]: t for t in spec["tensors"]}
        self.sw = run.get("switch")
        if self.sw:
            for lay in self.sw["layers"]:
                for key, role in (("s", "ssmax_s"), ("b", "ssmax_b")):
                    if lay.get(key):
                        self.infos[lay[key]] = {"name": lay[key], "role": role, "layer": lay["index"], "shape": [spec["num_heads"]]}

        self.step, self.tokens, self.elapsed, self.switched = 0, 0, 0.0, False
        # Every node's ssmax chose where to resume from OUT: they must agree.
        mine = [run.get("resume") or ""]
        chosen = list(mine)
        dist.broadcast_object_list(chosen, src=0)
        if chosen != mine:
            raise RunError("node %s resumes from %r but node 0 from %r: OUT must be on a filesystem all nodes share" % (
                os.environ.get("GROUP_RANK", "?"), mine[0], chosen[0]))
        state = None
        src = run["source"]
        if run.get("resume"):
            src = run["resume"]
            state = self.read_state(src)
            self.step, self.tokens, self.elapsed = state["step"], state["tokens"], state["elapsed_seconds"]
            self.switched = bool(state.get("switched_to_ssmax"))
        infos = list(spec["tensors"])
        if self.switched and self.sw:
            infos += [self.infos[n] for lay in self.sw["layers"] for n in (lay.get("s"), lay.get("b")) if n]
        weights, _ = checkpoint.load_weights(src, infos, spec)
        moments = {}
        if state is not None:
            moments = self.read_moments(src, weights)
        self.model = Decoder(spec, weights)
        self.model.activation_checkpointing = bool(cfg.get("activation_checkpointing"))
        if self.switched and self.sw:
            self.model.switch(self.sw["layers"], self.sw["variant"], self.sw.get("s_init") or 0.0, self.sw.get("b_init") or 0.0)
            with torch.no_grad():
                for lay in self.sw["layers"]:
                    for n in (lay.get("s"), lay.get("b")):
                        if n:
                            self.model.param(n).copy_(weights[n])
        self.trainable = [t["name"] for t in run["trainable"]]
        self.group_of = {t["name"]: t["group"] for t in run["trainable"]}
        if self.switched and self.sw:
            self.trainable += [t["name"] for t in self.sw["trainable"]]
            self.group_of.update({t["name"]: t["group"] for t in self.sw["trainable"]})
        self.model.requires_grad_(False)
        for n in self.trainable:
            self.model.param(n).requires_grad_(True)
        self.model.to(self.device)
        self.wrap()
        self.build_optimizer(state, moments)
        if self.rank == 0:
            self.truncate_metrics(self.step if state is not None else -1)
        if state is not None:
            self.log("resumed from %s at step %d" % (src, self.step))

    # ------------------------------------------------------------ set-up

    def log(self, msg):
        if self.rank == 0:
            emit("log", message=msg)

    def save_plan(self):
        return self.sw["save"] if self.switched else self.run["save"]

    def save_dtypes(self):
        out = {}
        for sh in self.save_plan()["shards"]:
            for t in sh["tensors"]:
                if not t.get("extra"):
                    out[t["name"]] = t["dtype"]
        return out

    def read_state(self, d):
        path = os.path.join(d, "trainer_state", "state.json")
        try:
            with open(path) as f:
                state = json.load(f)
        except (OSError, ValueError) as e:
            raise RunError("resume: %s" % e)
        ld = state.get("loader") or {}
        if ld.get("seq_len") != self.T:
            raise RunError("resume %s: loader state: sequence length %s, loader has %d" % (d, ld.get("seq_len"), self.T))
        if ld.get("tokens") != self.train.n or ld.get("windows") != self.windows:
            raise RunError("resume %s: loader state: %s tokens in %s windows, loader has %d in %d (different data?)" % (
                d, ld.get("tokens"), ld.get("windows"), self.train.n, self.windows))
        if state["step"] != self.first_step or ld.get("seed") != self.seed:
            raise RunError("resume %s: step %d (seed %s), but ssmax planned the batches from step %d (seed %d)" % (
                d, state["step"], ld.get("seed"), self.first_step, self.seed))
        return state

    def read_moments(self, d, weights):
        """Applies the master copies to weights and returns the moments
        {name: (m1, m2)} of trainer_state/optimizer.safetensors."""
        path = os.path.join(d, "trainer_state", "optimizer.safetensors")
        try:
            r = st.Reader(path)
        except OSError as e:
            raise RunError("resume: %s" % e)
        out = {}
        for name in r.names():
            kind, _, tensor = name.partition(".")
            if tensor not in weights:
                continue
            v = r.tensor(name).float()
            if v.numel() != weights[tensor].numel():
                raise RunError("%s: %s has %d values, want %d" % (path, name, v.numel(), weights[tensor].numel()))
            v = v.reshape(weights[tensor].shape)
            if kind == "master":
                weights[tensor] = v
            elif kind in ("m1", "m2"):
                out.setdefault(tensor, {})[kind] = v
        r.close()
        return out

    def wrap(self):
        """DistributedDataParallel, or FullyShardedDataParallel with
        run.json's fsdp: thin calls of PyTorch's own wrappers."""
        if not any(p.requires_grad for p in self.model.parameters()):
            self.net = self.model  # nothing to synchronise (yet)
            return
        if self.run["fsdp"]:
            import functools
            try:
                from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
                from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy
            except Exception as e:
                raise RunError("--fsdp: this PyTorch (%s) cannot load FullyShardedDataParallel: %s: %s" % (torch.__version__, type(e).__name__, e))
            from .model import Block
            kw = {"auto_wrap_policy": functools.partial(transformer_auto_wrap_policy, transformer_layer_cls={Block})}
            if self.cuda:
                kw["device_id"] = self.device
            try:
                self.net = FSDP(self.model, use_orig_params=True, **kw)
            except TypeError:
                raise RunError("--fsdp needs PyTorch 2.0 or newer (use_orig_params, for frozen parameters and ssmax's parameter groups)")
            return
        from torch.nn.parallel import DistributedDataParallel as DDP
        self.net = DDP(self.model, device_ids=[self.device.index] if self.cuda else None)

    def build_optimizer(self, state, moments):
        g = self.run["groups"]
        steps = (state or {}).get("adam_steps") or {}
        groups = []
        for name in GROUPS:
            ps = [self.model.param(n) for n in self.trainable if self.group_of[n] == name]
            if not ps:
                continue
            groups.append({"name": name, "params": ps, "lr_scale": g[name]["lr_scale"],
                           "weight_decay": g[name]["weight_decay"], "step": steps.get(name, 0)})
        self.opt = None
        if groups:
            c = self.cfg
            self.opt = AdamW(groups, c["beta1"], c["beta2"], c["eps"])
            moments = {n: m for n, m in moments.items() if "m1" in m and "m2" in m and n in self.group_of}
            if moments and self.run["fsdp"] and self.net is not self.model:
                self.load_fsdp_moments(moments)
                return
            for n, m in moments.items():
                self.opt.state[self.model.param(n)] = {"exp_avg": m["m1"].to(self.device), "exp_avg_sq": m["m2"].to(self.device)}

    def fqn(self, name):
        """The module path of tensor name's parameter (FSDP's keys)."""
        layer, role = self.model.names[name]
        return ("g." if layer < 0 else "layers.%d.w." % layer) + role

    def fsdp_config(self):
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP, StateDictType, FullStateDictConfig
        from torch.distributed.fsdp import FullOptimStateDictConfig
        return FSDP, (StateDictType.FULL_STATE_DICT, FullStateDictConfig(offload_to_cpu=True, rank0_only=True),
                      FullOptimStateDictConfig(offload_to_cpu=True, rank0_only=True))

    def load_fsdp_moments(self, moments):
        """Shards full moments into the FSDP optimizer (PyTorch's own
        optim_state_dict_to_load; not exercised here: see the README)."""
        FSDP, cfg = self.fsdp_config()
        full = {"state": {self.fqn(n): {"exp_avg": m["m1"], "exp_avg_sq": m["m2"]} for n, m in moments.items()},
                "param_groups": [dict({k: v for k, v in g.items() if k != "params"},
                                      params=[self.fqn(n) for n in self.trainable if self.group_of[n] == g["name"]])
                                 for g in self.opt.param_groups]}
        with FSDP.state_dict_type(self.net, cfg[0], cfg[1], cfg[2]):
            osd = FSDP.optim_state_dict_to_load(model=self.net, optim=self.opt, optim_state_dict=full)
        self.opt.load_state_dict(osd)

    def truncate_metrics(self, step):
        path = os.path.join(self.out, "metrics.jsonl")
        if not os.path.exists(path):
            return
        keep = []
        with open(path) as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("step", step + 1) <= step:
                    keep.append(line if line.endswith("\n") else line + "\n")
        tmp = path + ".tmp-%d" % os.getpid()
        with open(tmp, "w") as f:
            f.writelines(keep)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    # ------------------------------------------------------------ batches

    def local_rows(self, stream, offs):
        """This rank's rows of a global micro-batch of window offsets: ids,
        targets, positions, segments [R, T], and the micro-batch's target
        count and longest document. A rank with no row gets row 0 with
        weight 0 (it still joins the gradient all-reduce)."""
        T = self.T
        metas = [stream.window_meta(o, T) for o in offs]
        count = sum(m[1] for m in metas)
        longest = max(m[2] for m in metas)
        mine = list(range(self.rank, len(offs), self.world))
        weight = 1.0
        if not mine:
            mine, weight = [0], 0.0
        ids, tgt, pos, seg = [], [], [], []
        for i in mine:
            x, y, starts = stream.window(offs[i], T)
            p, s = positions(T, starts)
            ids.append(x), tgt.append(y), pos.append(p), seg.append(s)
        dev = self.device
        return (torch.stack(ids).to(dev), torch.stack(tgt).to(dev), torch.stack(pos).to(dev),
                torch.stack(seg).to(dev), count, longest, weight)

    def nll_sum(self, ids, tgt, pos, seg, longest):
        with self.autocast():
            logits = self.net(ids, pos, seg, longest)
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-1, reduction="sum")

    def all_sum(self, x):
        t = torch.tensor(x, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.item()

    # ------------------------------------------------------------ steps

    def train_step(self):
        """One optimizer step: returns (loss, grad norm)."""
        k = self.step
        lr = self.plan.lr[k]
        part_sum = 0.0
        has_grad = self.opt is not None
        for m in range(self.A):
            offs = [w * self.T for w in self.plan.micro(k, m)]
            ids, tgt, pos, seg, count, longest, weight = self.local_rows(self.train, offs)
            if count == 0:
                raise RunError("step %d: no target to predict" % (k + 1))
            sync = contextlib.nullcontext()
            if has_grad and m < self.A - 1 and hasattr(self.net, "no_sync"):
                sync = self.net.no_sync()
            with sync:
                if has_grad:
                    part = self.nll_sum(ids, tgt, pos, seg, longest) * (weight / count)
                    (part * self.world).backward()
                else:
                    with torch.no_grad():
                        part = self.nll_sum(ids, tgt, pos, seg, longest) * (weight / count)
            part_sum += part.item()
        loss = self.all_sum(part_sum) / self.A
        if math.isnan(loss) or math.isinf(loss):
            raise RunError("step %d: loss is %s; lower --lr or check the data" % (k + 1, go_float(loss)))
        norm = 0.0
        if has_grad:
            norm = self.grad_norm() / self.A
            if math.isnan(norm) or math.isinf(norm):
                raise RunError("step %d: gradient norm is %s; lower --lr or check the data" % (k + 1, go_float(norm)))
            factor = 1.0 / self.A
            clip = self.cfg["clip_norm"]
            if clip > 0 and norm > clip:
                factor *= clip / norm
            bad = self.opt.step(lr, factor)
            self.opt.zero_grad(set_to_none=True)
            if bad is not None:
                name = next((n for n, p in self.model.named_tensors() if p is bad[0]), "a weight")
                raise RunError("step %d: the update made %s non-finite (learning rate %g); lower --lr" % (k + 1, name, bad[1]))
        return loss, norm, lr

    def grad_norm(self):
        """The norm of the summed gradients (before scaling)."""
        if self.run["fsdp"]:
            return float(self.net.clip_grad_norm_(float("inf")))
        sq = torch.zeros((), dtype=torch.float64, device=self.device)
        for p in self.model.parameters():
            if p.grad is not None:
                sq += p.grad.double().pow(2).sum()
        return math.sqrt(sq.item())

    @torch.no_grad()
    def evaluate(self):
        batches = D.eval_batches(self.val, self.T, self.B, self.cfg["eval_batches"])
        if not batches:
            return float("nan")
        total = 0.0
        for offs in batches:
            ids, tgt, pos, seg, count, longest, weight = self.local_rows(self.val, offs)
            part = self.nll_sum(ids, tgt, pos, seg, longest).item() * weight / count
            total += self.all_sum(part)
        return total / len(batches)

    def s_means(self):
        if self.run["fsdp"] and self.net is not self.model:
            FSDP, _ = self.fsdp_config()
            with FSDP.summon_full_params(self.net, writeback=False):
                return self._s_means()
        return self._s_means()

    def _s_means(self):
        out, any_s = [], False
        for blk in self.model.layers:
            if "ssmax_s" in blk.w:
                any_s = True
                out.append(float(blk.w["ssmax_s"].detach().double().mean().item()))
            else:
                out.append(0.0)
        return out if any_s else None

    def do_switch(self):
        sw = self.sw
        before = len(self.model.names)
        self.model.switch(sw["layers"], sw["variant"], sw.get("s_init") or 0.0, sw.get("b_init") or 0.0)
        added = len(self.model.names) - before
        new = [t["name"] for t in sw["trainable"]]
        for t in sw["trainable"]:
            self.group_of[t["name"]] = t["group"]
        self.trainable += new
        for n in new:
            self.model.param(n).requires_grad_(True)
        self.model.to(self.device)
        self.wrap()
        if new:
            ps = [self.model.param(n) for n in new]
            g = self.run["groups"]["ssmax"]
            if self.opt is None:
                self.opt = AdamW([{"name": "ssmax", "params": ps, "lr_scale": g["lr_scale"], "weight_decay": g["weight_decay"], "step": 0}],
                                 self.cfg["beta1"], self.cfg["beta2"], self.cfg["eps"])
            elif self.opt.group("ssmax") is not None:
                self.opt.group("ssmax")["params"].extend(ps)
            else:
                self.opt.add_param_group({"name": "ssmax", "params": ps, "lr_scale": g["lr_scale"], "weight_decay": g["weight_decay"], "step": 0})
        self.switched = True
        self.log("step %d: switched to SSMax variant %s (init %s), %d new parameters" % (self.step, sw["variant"], self.cfg.get("init"), added))

    # ------------------------------------------------------------ checkpoints

    def gather(self):
        """Every weight {name: CPU tensor} and every moment {name: (m1, m2)}
        on rank 0 (FSDP gathers full ones)."""
        if self.run["fsdp"] and self.net is not self.model:
            FSDP, cfg = self.fsdp_config()
            with FSDP.state_dict_type(self.net, cfg[0], cfg[1], cfg[2]):
                sd = self.net.state_dict()
                osd = FSDP.optim_state_dict(self.net, self.opt) if self.opt is not None else {"state": {}}
            keys = {self.fqn(n): n for n in self.model.names}
            values = {keys[k]: v for k, v in sd.items() if k in keys}
            moments = {}
            for k, st_ in osd.get("state", {}).items():
                if k in keys and "exp_avg" in st_:
                    moments[keys[k]] = (st_["exp_avg"].cpu(), st_["exp_avg_sq"].cpu())
            return values, moments
        values = {n: p.detach().cpu() for n, p in self.model.named_tensors()}
        moments = {}
        if self.opt is not None:
            for n, p in self.model.named_tensors():
                s = self.opt.state.get(p)
                if s:
                    moments[n] = (s["exp_avg"].cpu(), s["exp_avg_sq"].cpu())
        return values, moments

    def save(self, name, loss):
        values, moments = self.gather()
        if self.rank == 0:
            self.write_step(name, values, moments, loss)
        dist.barrier()

    def write_step(self, name, values, moments, loss):
        tmp = os.path.join(self.out, "." + name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        checkpoint.write_checkpoint(tmp, self.save_plan(), self.node, values, self.infos, self.spec)
        sd = os.path.join(tmp, "trainer_state")
        os.mkdir(sd)
        tensors = []
        if self.opt is not None:
            for g in self.opt.param_groups:
                for n in [n for n in self.trainable if self.group_of[n] == g["name"]]:
                    if n in moments:
                        m1, m2 = moments[n]
                        tensors += [("m1." + n, m1.reshape(-1), "F32"), ("m2." + n, m2.reshape(-1), "F32")]
        dtypes = self.save_dtypes()
        for n, _ in self.model.named_tensors():
            if dtypes.get(n, "F32") != "F32":
                tensors.append(("master." + n, values[n].reshape(-1), "F32"))
        st.write_tensors(os.path.join(sd, "optimizer.safetensors"), tensors, {"format": "ssmax-trainer"})
        state = {
            "step": self.step, "tokens": self.tokens,
            "loader": D.loader_state(self.start_windows + (self.step - self.first_step) * self.A * self.B, self.windows, self.seed,
                                     self.T, self.B, self.train.n),
            "adam_steps": {g["name"]: g["step"] for g in self.opt.param_groups} if self.opt is not None else {},
            "switched_to_ssmax": self.switched, "elapsed_seconds": self.elapsed, "config": self.cfg,
            "last_loss": loss, "total_steps": self.total,
            "engine": {"name": "torch", "world_size": self.world, "fsdp": self.run["fsdp"], "precision": self.run["precision"]},
        }
        with open(os.path.join(sd, "state.json"), "w") as f:
            json.dump(state, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        checkpoint.sync_dir(sd)
        with open(os.path.join(tmp, "DONE"), "w") as f:
            f.write("%d\n" % self.step)
            f.flush()
            os.fsync(f.fileno())
        checkpoint.commit_dir(tmp, os.path.join(self.out, name))

    def prune(self):
        keep = self.cfg["keep"]
        if keep <= 0:
            return
        steps = []
        for e in os.listdir(self.out):
            if e.startswith("step_") and e[5:].isdigit() and os.path.exists(os.path.join(self.out, e, "DONE")):
                steps.append(int(e[5:]))
        steps.sort()
        for s in steps[:max(0, len(steps) - keep)]:
            shutil.rmtree(os.path.join(self.out, "step_%06d" % s))

    # ------------------------------------------------------------ the loop

    def loop(self):
        c = self.cfg
        first_val = None
        if self.step == 0 and self.val is not None:
            first_val = self.evaluate()
            if self.rank == 0:
                emit("first_val", val_loss=first_val)
        ntrain = sum(p.numel() for n in self.trainable for p in [self.model.param(n)])
        if self.rank == 0:
            emit("start", first=self.step, total=self.total,
                 info="%s, %d trainable parameters (torch: %d processes, %s, %s, %s)" % (
                     self.run["summary"], ntrain, self.world, "FSDP" if self.run["fsdp"] else "DDP",
                     dist.get_backend(), self.run["precision"]))
        save_every = c["save_every"] if c["save_every"] > 0 else c["eval_every"]
        per_step = self.T * self.B * self.A
        pause = int(os.environ.get(PAUSE_ENV, "0") or 0)
        last = 0.0
        metrics = open(os.path.join(self.out, "metrics.jsonl"), "a") if self.rank == 0 else None
        while self.step < self.total:
            if self.sw and self.step == self.sw["at"] and not self.switched:
                self.do_switch()
            t0 = time.time()
            last, norm, lr = self.train_step()
            self.step += 1
            self.tokens += per_step
            dt = time.time() - t0
            self.elapsed += dt
            rec = {"step": self.step, "loss": last, "lr": lr, "grad_norm": norm, "tokens_per_sec": per_step / dt,
                   "tokens": self.tokens, "elapsed_seconds": self.elapsed}
            sm = self.s_means()
            if sm is not None:
                rec["s_mean"] = sm
            if self.val is not None and c["eval_every"] > 0 and (self.step % c["eval_every"] == 0 or self.step == self.total):
                rec["val_loss"] = self.evaluate()
            if metrics is not None:
                metrics.write(metrics_line(rec))
                metrics.flush()
            if save_every > 0 and self.step % save_every == 0 and self.step < self.total:
                self.save("step_%06d" % self.step, last)
                if self.rank == 0:
                    self.prune()
                    self.log("checkpoint step_%06d" % self.step)
            if self.rank == 0:
                emit("step", metrics=rec)
            if pause and self.step == pause:
                dist.barrier()
                while True:  # until killed (the kill test)
                    time.sleep(3600)
        self.save("final", last)
        if metrics is not None:
            metrics.close()
        if int(os.environ.get("LOCAL_RANK", "0")) == 0:  # one per node: every node's ssmax reports success
            emit("done", steps=self.step, final=os.path.join(self.out, "final"), last_loss=last)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="ssmax_torch.train")
    ap.add_argument("--run", required=True, help="OUT/torch/node<R>/run.json written by ssmax")
    args = ap.parse_args(argv)
    die_with_parent()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    try:
        dist.init_process_group(backend)
    except Exception as e:
        emit("error", message="torch.distributed: %s" % e)
        return 1
    code = 0
    try:
        Trainer(args.run).loop()
    except RunError as e:
        emit("error", message=str(e))
        code = 1
    except Exception as e:  # an unexpected failure: the traceback goes to stderr
        traceback.print_exc()
        emit("error", message="torch worker %d: %s: %s" % (dist.get_rank(), type(e).__name__, e))
        code = 1
    if code == 0:
        dist.destroy_process_group()
    return code


if __name__ == "__main__":
    sys.exit(main())
