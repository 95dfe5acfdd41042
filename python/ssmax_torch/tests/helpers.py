"""Shared set-up of the ssmax_torch tests: the repository, the fixtures and
an ssmax binary (SSMAX_BIN, else built once with go build)."""
import os
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
FIXTURES = os.path.join(REPO, "testdata", "fixtures")

_bin = None


def ssmax_bin():
    """The ssmax binary to ask for resolved specs (None: no Go toolchain)."""
    global _bin
    if _bin is None:
        b = os.environ.get("SSMAX_BIN")
        if not b:
            d = tempfile.mkdtemp(prefix="ssmax-torch-test-")
            b = os.path.join(d, "ssmax")
            try:
                subprocess.run(["go", "build", "-o", b, "."], cwd=REPO, check=True, capture_output=True)
            except (OSError, subprocess.CalledProcessError):
                return None
        _bin = b
    return _bin


def resolved_spec(path, seq_len):
    import json

    out = subprocess.run([ssmax_bin(), "inspect", "--resolved", "--seq-len", str(seq_len), path],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def fixture_names():
    return sorted(n for n in os.listdir(FIXTURES) if os.path.exists(os.path.join(FIXTURES, n, "golden.json")))
