"""The data of a run, in the order ssmax's spago engine reads it.

ssmax (Go) tokenizes, splits and shuffles: it writes the train and
validation token streams (documents concatenated, little-endian unsigned
ints of run.json's token_width bytes), the offset after each document
(int64), and for every step, micro-batch and row the index k of the train
window that row holds (uint32): stream tokens [k·T, k·T+T+1), inputs the
first T, targets the last T. Here a window is cut as data.Stream.window
cuts it: a document's last token gets no target (-1), and a document that
starts inside the window starts a new segment (positions, attention and
SSMax's n restart there). Python never re-implements Go's random numbers.
"""
import array
import bisect
import mmap
import os
import struct

import torch


class Stream:
    """A token stream and its document ends."""

    def __init__(self, node, info, width):
        self.n = info["num_tokens"]
        path = os.path.join(node, info["tokens"])
        size = os.path.getsize(path)
        if size != self.n * width:
            raise ValueError("%s: %d bytes, want %d tokens of %d bytes" % (path, size, self.n, width))
        with open(path, "rb") as f:
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        dt = torch.int16 if width == 2 else torch.int32
        self.tokens = torch.frombuffer(self._mm, dtype=dt)
        self.width = width
        self.ends = array.array("q")
        with open(os.path.join(node, info["doc_ends"]), "rb") as f:
            self.ends.frombytes(f.read())
        if len(self.ends) != info["num_docs"] or (len(self.ends) and self.ends[-1] != self.n):
            raise ValueError("%s: document ends do not match the stream" % info["doc_ends"])

    def read(self, off, n):
        t = self.tokens[off:off + n].to(torch.int64)
        if self.width == 2:
            t = t & 0xFFFF
        return t

    def cuts(self, off, T):
        """Where the window at off ends documents: each e in (0, T] such that
        a document ends at stream offset off + e."""
        k = bisect.bisect_right(self.ends, off)
        out = []
        while k < len(self.ends) and self.ends[k] <= off + T:
            out.append(self.ends[k] - off)
            k += 1
        return out

    def window_meta(self, off, T):
        """(segment starts, number of targets, longest document) of the
        window at off, from the document ends alone."""
        cuts = self.cuts(off, T)
        starts = [0] + [e for e in cuts if e < T]
        bounds = starts + [T]
        longest = max(bounds[i + 1] - bounds[i] for i in range(len(starts)))
        return starts, T - len(cuts), longest

    def window(self, off, T):
        """(inputs [T], targets [T], segment starts) of the window at off."""
        tok = self.read(off, T + 1)
        inputs, targets = tok[:T].clone(), tok[1:].clone()
        for e in self.cuts(off, T):
            targets[e - 1] = -1
        starts, _, _ = self.window_meta(off, T)
        return inputs, targets, starts


class Plan:
    """The window of every sequence of every step, and every step's
    learning rate."""

    def __init__(self, node, data, total, accum, batch):
        self.accum, self.batch = accum, batch
        self.first = data.get("first_step", 0)
        with open(os.path.join(node, data["batches"]), "rb") as f:
            raw = f.read()
        steps = total - self.first
        if len(raw) != 4 * steps * accum * batch:
            raise ValueError("%s: %d bytes, want %d steps x %d x %d windows" % (data["batches"], len(raw), steps, accum, batch))
        self.windows = array.array("I")
        self.windows.frombytes(raw)
        with open(os.path.join(node, data["lr"]), "rb") as f:
            raw = f.read()
        self.lr = list(struct.unpack("<%dd" % total, raw))

    def micro(self, step, m):
        """The window indices of micro-batch m of step (global rows)."""
        i = ((step - self.first) * self.accum + m) * self.batch
        return list(self.windows[i:i + self.batch])


def eval_batches(stream, T, batch, max_batches):
    """The validation batches (lists of window offsets) as data.EvalLoader
    yields them: windows in order, the last batch possibly smaller."""
    n = (stream.n - 1) // T if stream.n > T else 0
    out = []
    for start in range(0, n, batch):
        if len(out) >= max(1, max_batches):
            break
        out.append([k * T for k in range(start, min(start + batch, n))])
    return out


def loader_state(consumed, windows, seed, T, batch, tokens):
    """The spago loader's position after `consumed` windows (its
    trainer_state "loader"): the epoch advances lazily, when the next window
    is drawn."""
    epoch, cursor = 0, 0
    if consumed > 0:
        epoch = (consumed - 1) // windows
        cursor = consumed - epoch * windows
    return {"seed": seed, "epoch": epoch, "cursor": cursor, "seq_len": T, "batch_size": batch,
            "windows": windows, "tokens": tokens}
