"""Checkpoint directories: reading the weights of one, and writing step_N/
and final/ in the layout every ssmax command reads.

The layout comes from ssmax (Go): run.json's save plan gives each shard's
file name, its exact header and the order of its tensors (the source
checkpoint's, SSMax tensors after their layer's attention), and the plan's
directory holds config.json (with the "ssmax" object), the shard index and
the tensors the model does not use. Here only the weight values are
encoded, in each tensor's stored dtype.
"""
import json
import os
import shutil

from . import st
from .model import to_engine, to_stored

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


def weight_files(d):
    """The safetensors files of a checkpoint directory."""
    idx = os.path.join(d, INDEX)
    if os.path.exists(idx):
        with open(idx) as f:
            return [os.path.join(d, n) for n in sorted(set(json.load(f)["weight_map"].values()))]
    if os.path.exists(os.path.join(d, SINGLE)):
        return [os.path.join(d, SINGLE)]
    files = sorted(n for n in os.listdir(d) if n.endswith(".safetensors"))
    if not files:
        raise ValueError("%s: no safetensors weights" % d)
    return [os.path.join(d, n) for n in files]


def open_readers(d):
    """{tensor name: Reader} over a checkpoint directory's weight files."""
    out = {}
    for path in weight_files(d):
        r = st.Reader(path)
        for name in r.header:
            out[name] = r
    return out


def load_weights(d, infos, spec):
    """{name: float32 tensor in the engine layout} of the tensors infos
    lists (optional ones may be absent), and {name: stored dtype}."""
    readers = open_readers(d)
    weights, dtypes = {}, {}
    for info in infos:
        name = info["name"]
        r = readers.get(name)
        if r is None:
            if info.get("optional"):
                continue
            raise ValueError("%s: tensor %s missing" % (d, name))
        t = r.tensor(name)
        if list(t.shape) != list(info["shape"]):
            raise ValueError("%s: tensor %s has shape %s, want %s" % (d, name, list(t.shape), info["shape"]))
        weights[name] = to_engine(t.float(), info, spec)
        dtypes[name] = r.dtype(name)
    for r in set(readers.values()):
        r.close()
    return weights, dtypes


def write_checkpoint(dst, plan, node, values, infos, spec):
    """Writes the checkpoint directory dst (which must not exist) from the
    save plan: values {name: engine tensor}, infos {name: spec tensor}."""
    os.makedirs(dst)
    plan_dir = os.path.join(node, plan["dir"])
    extras = None
    for shard in plan["shards"]:
        if any(t.get("extra") for t in shard["tensors"]) and extras is None:
            extras = st.Reader(os.path.join(plan_dir, "extras.safetensors"))

        def chunks(shard=shard):
            for t in shard["tensors"]:
                name = t["name"]
                if t.get("extra"):
                    b = extras.raw(name)
                else:
                    b = st.tensor_bytes(to_stored(values[name], infos[name], spec), t["dtype"])
                if len(b) != t["size"]:
                    raise ValueError("tensor %s: %d bytes, the plan says %d" % (name, len(b), t["size"]))
                yield b

        st.write_file(os.path.join(dst, shard["name"]), shard["header"].encode("utf-8"), chunks())
    if extras is not None:
        extras.close()
    names = ["config.json"] + ([INDEX] if plan["index"] else [])
    for n in names:
        copy_synced(os.path.join(plan_dir, n), os.path.join(dst, n))
    for n in plan["auxiliary"] or []:
        copy_synced(os.path.join(plan["aux_dir"], n), os.path.join(dst, n))


def copy_synced(src, dst):
    shutil.copyfile(src, dst)
    with open(dst, "rb") as f:
        os.fsync(f.fileno())


def sync_dir(d):
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_dir(tmp, dst):
    """Renames the finished directory tmp to dst, replacing dst."""
    sync_dir(tmp)
    parent = os.path.dirname(os.path.abspath(dst))
    if os.path.lexists(dst):
        old = tmp + ".old"
        os.rename(dst, old)
        os.rename(tmp, dst)
        sync_dir(parent)
        shutil.rmtree(old)
        return
    os.rename(tmp, dst)
    sync_dir(parent)
