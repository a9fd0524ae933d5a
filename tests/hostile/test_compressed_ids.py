"""Out-of-range ids never reach the C gather: every entry point raises TokenIdError first.

Before the fix, ``QuantizedTensor.gather`` handed ids to the kernel unchecked: row 12 of a 10-row
table returned garbage (−1.7e28) and a large id read far outside the table. The calls run in a
subprocess, so a crash fails the test instead of killing pytest.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import tokembed

SRC = str(Path(tokembed.__file__).resolve().parents[1])

ENTRY_POINTS = {
    "QuantizedTensor.gather (kernel)": "qt.gather(ids)",
    "QuantizedTensor.gather (reference)": "qt.gather(ids, use_kernel=False)",
    "QuantizedTensor.gather_reference": "qt.gather_reference(ids)",
    "QuantizedTensor.rows": "qt.rows(int(ids.min()), int(ids.max()) + 1)",
    "gather_dequant": "K.gather_dequant(qt.codes, qt.scale, qt.bias, ids, D=8, bits=qt.config.bits, qoff=qt.qoff)",
    "gather_dequant_reference": ("K.gather_dequant_reference(qt.codes, qt.scale, qt.bias, ids, D=8, bits=qt.config.bits, "
                                 "qoff=qt.qoff)"),
    "QuantizedEmbedding(validate=False)": "QuantizedEmbedding(qt, validate=False)(ids.view(1, -1))",
    "QuantizedEmbedding": "QuantizedEmbedding(qt)(ids.view(1, -1))",
}


IDS = {"row 12 of 10": [12], "negative": [3, -1], "2^40": [2**40], "2^62": [2**62]}


def _script(cases: list[tuple[str, int, str]]) -> str:
    """One process runs every case, flushing a line before each call, so a crash names its case."""
    body = ["import torch", "from tokembed.compress import QuantizedEmbedding, quantize",
            "from tokembed.compress import _kernels as K", "from tokembed.errors import TokenIdError",
            "tables = {b: quantize(torch.randn(10, 8, generator=torch.Generator().manual_seed(0)), bits=b) for b in (8, 4)}"]
    for entry, bits, ids_name in cases:
        key = f"{entry}|{bits}|{ids_name}"
        body += [f"print('TRY', {key!r}, sep='\\t', flush=True)", f"qt, ids = tables[{bits}], torch.tensor({IDS[ids_name]!r})", "try:",
                 f"    out = {ENTRY_POINTS[entry]}", f"    print('RETURNED', {key!r}, out.flatten()[:4].tolist(), sep='\\t', flush=True)",
                 "except TokenIdError as e:", f"    print('REFUSED', {key!r}, sep='\\t', flush=True)"]
    return "\n".join(body)


@pytest.fixture(scope="module")
def outcomes() -> tuple[dict, subprocess.CompletedProcess]:
    cases = [(e, b, i) for e in ENTRY_POINTS for b in (8, 4) for i in IDS]
    env = {**os.environ, "PYTHONPATH": SRC}
    r = subprocess.run([sys.executable, "-c", _script(cases)], capture_output=True, text=True, env=env, timeout=300)
    got = {}
    for line in r.stdout.splitlines():
        word, key = line.split("\t")[:2]
        got[key] = word if word != "TRY" else f"CRASHED (rc={r.returncode})"
    return got, r


@pytest.mark.parametrize("ids", list(IDS))
@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_out_of_range_ids_raise_token_id_error_at_every_entry_point(outcomes, entry, bits, ids):
    got, r = outcomes
    key = f"{entry}|{bits}|{ids}"
    assert got.get(key) == "REFUSED", f"{key}: {got.get(key, 'not reached, an earlier case crashed')}; {r.stderr[-800:]}"


def test_float_ids_are_refused_not_truncated():
    from tokembed.compress import quantize
    from tokembed.errors import TokenIdError

    qt = quantize(torch.randn(10, 8), bits=8)
    for use_kernel in (True, False):
        with pytest.raises(TokenIdError, match="dtype"):
            qt.gather(torch.tensor([1.7, 2.2]), use_kernel=use_kernel)


def test_an_inconsistent_table_is_refused_before_the_kernel():
    """A table built by hand whose scales have fewer rows than its codes: the kernel would read past them."""
    call = ("K.gather_dequant(qt.codes, qt.scale[:3].contiguous(), None, torch.tensor([7]), D=8, bits=qt.config.bits, "
            "qoff=qt.qoff)")
    code = f"""
        import torch
        from tokembed.compress import quantize
        from tokembed.compress import _kernels as K
        from tokembed.errors import ConfigError
        qt = quantize(torch.randn(10, 8), bits=8)
        try:
            {call}
            print("RETURNED")
        except ConfigError as e:
            print("REFUSED", e)
    """
    env = {**os.environ, "PYTHONPATH": SRC}
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("REFUSED") and "inconsistent" in r.stdout, r.stdout + r.stderr
