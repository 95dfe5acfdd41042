"""Minimal safetensors reader/writer (no `safetensors` package needed).

Layout written: 8-byte little-endian header length, JSON header with
"__metadata__" first and tensors sorted by name (data in the same order),
header padded with spaces to a multiple of 8 -- the layout of the fixtures
in /work/shared/fixtures.
"""
import json
import struct

import numpy as np
import torch

_NP = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
       "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
         "I8": 1, "U8": 1, "BOOL": 1}


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), 8 + n


def load(path):
    """Returns (dict name -> (dtype str, numpy array), metadata). BF16 comes back as float32."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    meta = header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        dt, shape = info["dtype"], info["shape"]
        a, b = info["data_offsets"]
        buf = raw[base + a: base + b]
        if dt == "BF16":
            u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(buf, dtype=np.dtype(_NP[dt]).newbyteorder("<"))
        out[name] = (dt, arr.reshape(shape).copy())
    return out, meta


def bf16_round(x):
    """float32/float64 array -> float32 array holding the BF16-rounded values (round to nearest even)."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(torch.bfloat16)
    return t.to(torch.float32).numpy()


def _bytes(dt, arr):
    if dt == "BF16":
        f = np.ascontiguousarray(bf16_round(arr), dtype=np.float32)
        return (f.view(np.uint32) >> 16).astype("<u2").tobytes()
    return np.ascontiguousarray(arr, dtype=np.dtype(_NP[dt]).newbyteorder("<")).tobytes()


def save(path, tensors, metadata=None):
    """tensors: dict name -> (dtype str, array). Writes sorted by name."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    blobs = []
    off = 0
    for name in sorted(tensors):
        dt, arr = tensors[name]
        arr = np.asarray(arr)
        b = _bytes(dt, arr)
        assert len(b) == _SIZE[dt] * int(np.prod(arr.shape, dtype=np.int64)), name
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)
