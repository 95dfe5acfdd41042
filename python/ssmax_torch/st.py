"""safetensors files without numpy: a reader (the `safetensors` package's
safe_open when it is installed, else a small one of our own) and a writer.

Checkpoints are written from a header that ssmax (Go) planned byte for byte
(run.json's save plan), so the tensors keep the order, names, dtypes and
metadata of the source checkpoint; the `safetensors` package's own writer
would reorder them, so writing always goes through write_file here. Byte
order is little-endian, as the format requires (every platform PyTorch
supports for training is little-endian).
"""
import ctypes
import json
import os
import struct

import torch

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
NAMES = {v: k for k, v in DTYPES.items()}

try:  # optional
    from safetensors import safe_open as _safe_open
except Exception:  # pragma: no cover - depends on the environment
    _safe_open = None


def read_header(path):
    """Returns (header dict without __metadata__, metadata dict, data offset)."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError("%s: not a safetensors file (too short)" % path)
        (n,) = struct.unpack("<Q", raw)
        header = json.loads(f.read(n).decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    return header, meta, 8 + n


class Reader:
    """Reads the tensors of one safetensors file by name."""

    def __init__(self, path):
        self.path = path
        self.header, self.metadata, self.base = read_header(path)
        self._f = None

    def names(self):
        """Tensor names in storage order (by data offset)."""
        return sorted(self.header, key=lambda k: self.header[k]["data_offsets"][0])

    def dtype(self, name):
        return self.header[name]["dtype"]

    def shape(self, name):
        return list(self.header[name]["shape"])

    def raw(self, name):
        """The tensor's bytes."""
        info = self.header[name]
        a, b = info["data_offsets"]
        if self._f is None:
            self._f = open(self.path, "rb")
        self._f.seek(self.base + a)
        data = self._f.read(b - a)
        if len(data) != b - a:
            raise ValueError("%s: tensor %s is truncated" % (self.path, name))
        return data

    def tensor(self, name):
        """The tensor in its stored dtype and shape (a fresh CPU tensor)."""
        info = self.header[name]
        dt = DTYPES.get(info["dtype"])
        if dt is None:
            raise ValueError("%s: tensor %s: dtype %s not supported" % (self.path, name, info["dtype"]))
        if _safe_open is not None:
            with _safe_open(self.path, framework="pt") as f:
                return f.get_tensor(name).clone()
        data = self.raw(name)
        if len(data) == 0:
            return torch.empty(info["shape"], dtype=dt)
        return torch.frombuffer(bytearray(data), dtype=dt).reshape(info["shape"]).clone()

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None


def tensor_bytes(t, dtype_name):
    """The little-endian bytes of t cast to dtype_name."""
    t = t.detach().to("cpu", DTYPES[dtype_name]).contiguous()
    n = t.numel() * t.element_size()
    if n == 0:
        return b""
    return ctypes.string_at(t.data_ptr(), n)


def encode_header(tensors, metadata=None):
    """The header ssmax's Go writer produces (safetensors.EncodeHeader):
    compact JSON, __metadata__ first, tensors in the given order with keys
    dtype, shape, data_offsets, padded with spaces to a multiple of 8.
    tensors: list of (name, dtype name, shape, byte size)."""
    parts = []
    if metadata is not None:
        parts.append('"__metadata__":' + json.dumps(metadata, ensure_ascii=False, separators=(",", ":")))
    off = 0
    for name, dt, shape, size in tensors:
        parts.append("%s:{\"dtype\":%s,\"shape\":[%s],\"data_offsets\":[%d,%d]}" % (
            json.dumps(name, ensure_ascii=False), json.dumps(dt), ",".join(str(int(d)) for d in shape), off, off + size))
        off += size
    h = ("{" + ",".join(parts) + "}").encode("utf-8")
    return h + b" " * ((8 - len(h) % 8) % 8)


def write_file(path, header, chunks):
    """Writes header (bytes, as planned) and the data chunks (bytes, in
    header order) to path through a temporary sibling, fsynced and renamed."""
    tmp = os.path.join(os.path.dirname(path) or ".", "." + os.path.basename(path) + ".tmp-%d" % os.getpid())
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        for c in chunks:
            f.write(c)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_tensors(path, named, metadata=None):
    """Writes named = [(name, tensor, dtype name)] as one safetensors file."""
    datas = [tensor_bytes(t, dt) for _, t, dt in named]
    header = encode_header([(n, dt, list(t.shape), len(d)) for (n, t, dt), d in zip(named, datas)], metadata)
    write_file(path, header, datas)
