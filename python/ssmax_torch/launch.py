"""torch.distributed.run (what `torchrun` runs), started by ssmax as
`python -m ssmax_torch.launch [torchrun options] --module ssmax_torch.train ...`.

It is torchrun itself, with one compatibility fix: on Python 3.11 and newer,
iterating an IntFlag no longer yields its zero and composite members, so
torch < 2.0's elastic launcher parses its own default "--redirects 0" into
None and crashes before starting a worker (Debian 12's python3-torch 1.13
on Python 3.11 does). Std.from_str is replaced by one that parses the same
syntax ("0".."3", or "rank:value,...") without iterating the enum.
"""
import re
import sys


def _fix_std():
    try:
        from torch.distributed.elastic.multiprocessing import api
    except Exception:
        return
    Std = api.Std
    if Std.from_str("0") is not None:
        return  # this torch parses it

    def from_str(cls, vm):
        if re.match(r"^[0123]$", vm):
            return cls(int(vm))
        if re.match(r"^(\d:[0123],)*(\d:[0123])$", vm):
            out = {}
            for m in vm.split(","):
                i, v = m.split(":")
                out[int(i)] = cls(int(v))
            return out
        raise ValueError("%s does not match %s or %s" % (vm, r"^[0123]$", r"^(\d:[0123],)*(\d:[0123])$"))

    Std.from_str = classmethod(from_str)


def main():
    _fix_std()
    from torch.distributed.run import main as run_main
    run_main()


if __name__ == "__main__":
    sys.exit(main())
