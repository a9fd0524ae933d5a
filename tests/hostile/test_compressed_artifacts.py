"""Hostile compressed artifacts: edited metadata, truncated / retyped / out-of-range tensors, NaN, huge claims.

Each case writes a valid artifact, breaks one thing, and expects :class:`ArtifactError` from
``load_compressed`` — before any module exists. The cases that used to crash the process (a
segfault in the C gather, heap memory returned as embedding values) run in a subprocess, so a
crash fails the test instead of killing pytest.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import tokembed
from tokembed.compress import load_compressed, save_compressed
from tokembed.compress.apply import CompressOptions, compress_matrix
from tokembed.errors import ArtifactError

SRC = str(Path(tokembed.__file__).resolve().parents[1])  # the tokembed under test, in the subprocess too
V, D = 300, 64
W = torch.randn(V, D, generator=torch.Generator().manual_seed(0))
COUNTS = torch.floor(100 / torch.arange(1, V + 1).double())
METHODS = {"int8": {}, "int4": {"group_size": 16, "symmetric": False}, "pq": {"M": 8, "nbits": 4, "iters": 2},
           "trim": {}, "hash": {"buckets": 16, "iters": 2}, "prune": {}, "plan": {"M": 8, "nbits": 4}, "fp16": {},
           "lowrank": {"rank": 4}}


def _artifact(tmp_path: Path, method: str = "int8", *, head: bool = True) -> Path:
    opts = CompressOptions(method=method, **METHODS[method])
    inp = compress_matrix(W, opts, counts=COUNTS)
    out = compress_matrix(W.flip(0), opts, counts=COUNTS) if head else None
    path = tmp_path / f"art-{method}"
    save_compressed(path, input=inp, output=out, tied=not head, method=method,
                    output_bias=torch.zeros(V) if head else None)
    return path


def _edit_meta(path: Path, fn) -> None:
    meta = json.loads((path / "compression.json").read_text())
    fn(meta)
    (path / "compression.json").write_text(json.dumps(meta))


def _edit_tensors(path: Path, fn) -> None:
    f = path / "compressed.safetensors"
    t = load_file(str(f))
    fn(t)
    save_file({k: v.contiguous() for k, v in t.items()}, str(f), metadata={"format": "tokembed-compressed"})


def _run_isolated(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          timeout=120)


def _expect_refused_in_subprocess(path: Path, ids: list[int]) -> None:
    """Load, then (if it loads) look up ``ids`` and run the head: must end in a typed error, never a crash."""
    code = f"""
        import torch
        from tokembed.compress import load_compressed
        from tokembed.errors import TokembedError
        try:
            art = load_compressed({str(path)!r})
            emb = art.embedding()
            x = emb(torch.tensor({ids!r}))
            head = art.head(emb)
            z = head(torch.ones(1, emb.embedding_dim))
            print("LOADED", float(x.abs().max()), float(z.abs().max()))
        except TokembedError as e:
            print("REFUSED", type(e).__name__, e)
    """
    r = _run_isolated(code)
    assert r.returncode == 0, f"the process crashed (rc={r.returncode}): {r.stderr[-2000:]}"
    assert r.stdout.startswith("REFUSED ArtifactError"), r.stdout + r.stderr[-2000:]


# ---- the cases from the issue: each crashed or read out of bounds before the fix, so each runs isolated ----

def test_shape_edited_to_ten_million_rows_is_refused_not_a_segfault(tmp_path):
    path = _artifact(tmp_path)

    def grow(meta):
        meta["shape"] = [10**7, D]
        for part in ("input", "output"):
            meta[part]["config"]["shape"] = [10**7, D]

    _edit_meta(path, grow)
    _expect_refused_in_subprocess(path, [10**7 - 1])


def test_codes_cut_to_ten_rows_is_refused_not_heap_memory(tmp_path):
    path = _artifact(tmp_path)
    _edit_tensors(path, lambda t: t.update({"input.codes": t["input.codes"][:10], "input.scale": t["input.scale"][:10]}))
    _expect_refused_in_subprocess(path, [258])


def test_head_codes_truncated_is_refused(tmp_path):
    path = _artifact(tmp_path)
    _edit_tensors(path, lambda t: t.update({"output.codes": t["output.codes"][:10]}))
    _expect_refused_in_subprocess(path, [0])


# ---- every kind: a broken tensor is refused at load, with the tensor named ----

BREAKS = {  # method -> (tensor, how) that must be refused
    "int8": [("input.codes", "dtype"), ("input.scale", "nan"), ("input.scale", "dtype"), ("input.codes", "cols")],
    "int4": [("input.codes", "cols"), ("input.bias", "drop"), ("input.scale", "inf")],
    "pq": [("input.codes", "range"), ("input.codebooks", "rows"), ("input.codebooks", "nan")],
    "trim": [("input.id_map", "range"), ("input.id_map", "negative"), ("input.table", "nan")],
    "hash": [("input.bucket", "range"), ("input.centroids", "cols")],
    "prune": [("input.index", "range"), ("input.values", "rows")],
    "plan": [("input.group_of", "range"), ("input.int4.codes", "rows")],
    "fp16": [("input.weight", "rows"), ("input.weight", "nan")],
    "lowrank": [("input.A", "cols"), ("input.B", "nan")],
}


def _break(t: dict, name: str, how: str) -> None:
    x = t[name]
    if how == "dtype":
        t[name] = x.to(torch.int32) if not x.dtype.is_floating_point else x.double()
    elif how in ("nan", "inf"):
        x = x.clone()
        x.view(-1)[0] = float(how)
        t[name] = x
    elif how == "range":
        x = x.clone()
        x.view(-1)[-1] = torch.iinfo(x.dtype).max
        t[name] = x
    elif how == "negative":
        x = x.clone()
        x.view(-1)[0] = -1
        t[name] = x
    elif how == "rows":
        t[name] = x[:-1]
    elif how == "cols":
        t[name] = x[..., :-1]
    elif how == "drop":
        del t[name]


@pytest.mark.parametrize("method,name,how", [(m, n, h) for m, bs in BREAKS.items() for n, h in bs])
def test_broken_tensor_is_refused_at_load(tmp_path, method, name, how):
    path = _artifact(tmp_path, method, head=False)
    tensors = load_file(str(path / "compressed.safetensors"))
    if name not in tensors:  # the plan may not have used this option
        pytest.skip(f"{method} artifact has no {name}: {sorted(tensors)}")
    _edit_tensors(path, lambda t: _break(t, name, how))
    with pytest.raises(ArtifactError, match="corrupt|missing") as e:
        load_compressed(path)
    assert name.split(".")[-1] in str(e.value) or how == "drop" or "shape" in str(e.value)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_kind_refuses_a_claimed_shape_that_differs(tmp_path, method):
    path = _artifact(tmp_path, method, head=False)
    _edit_meta(path, lambda m: m.update(shape=[V + 1, D]))
    with pytest.raises(ArtifactError, match=r"shape"):
        load_compressed(path)


# ---- metadata: wrong types, huge claims, layouts that cannot be served ----

META_EDITS = {
    "huge shape": lambda m: m.update(shape=[2**40, 2**40]),
    "string shape": lambda m: m.update(shape=["300", D]),
    "negative dim": lambda m: m.update(shape=[V, -64]),
    "huge config shape": lambda m: m["input"]["config"].update(shape=[2**62, D]),
    "bits 3": lambda m: m["input"]["config"].update(bits=3),
    "group size not dividing": lambda m: m["input"]["config"].update(group_size=7),
    "group size huge": lambda m: m["input"]["config"].update(group_size=2**40),
    "symmetric not a bool": lambda m: m["input"]["config"].update(symmetric="yes"),
    "config not an object": lambda m: m["input"].update(config=[1, 2]),
    "unknown kind": lambda m: m["input"].update(kind="zip"),
    "nan scale factor": lambda m: m.update(embedding_scale=float("nan")),
    "tied with a head": lambda m: m.update(tied=True),
    "no input": lambda m: m.pop("input"),
    "not an object": lambda m: m.clear(),
}


@pytest.mark.parametrize("edit", list(META_EDITS))
def test_bad_metadata_is_refused(tmp_path, edit):
    path = _artifact(tmp_path)
    _edit_meta(path, META_EDITS[edit])
    with pytest.raises(ArtifactError):
        load_compressed(path)


def test_pq_claims_more_bits_than_its_codes_hold(tmp_path):
    path = _artifact(tmp_path, "pq", head=False)
    _edit_meta(path, lambda m: m["input"]["config"].update(nbits=60))
    with pytest.raises(ArtifactError, match="nbits=60"):
        load_compressed(path)


def test_extra_and_missing_tensors_are_refused(tmp_path):
    path = _artifact(tmp_path)
    _edit_tensors(path, lambda t: t.update({"input.extra": torch.zeros(3)}))
    with pytest.raises(ArtifactError, match="unexpected tensors"):
        load_compressed(path)
    path = _artifact(tmp_path / "b")
    _edit_tensors(path, lambda t: t.pop("output.scale"))
    with pytest.raises(ArtifactError, match="'scale' is missing"):
        load_compressed(path)
    path = _artifact(tmp_path / "c")
    _edit_tensors(path, lambda t: t.update(output_bias=torch.zeros(V + 5)))
    with pytest.raises(ArtifactError, match="output_bias"):
        load_compressed(path)


def test_a_symmetric_table_with_offsets_is_refused(tmp_path):
    path = _artifact(tmp_path)
    _edit_tensors(path, lambda t: t.update({"input.bias": torch.zeros_like(t["input.scale"])}))
    with pytest.raises(ArtifactError, match="symmetric"):
        load_compressed(path)


@pytest.mark.parametrize("method", list(METHODS))
def test_valid_artifacts_still_load_and_serve(tmp_path, method):
    path = _artifact(tmp_path, method)
    art = load_compressed(path)
    emb = art.embedding()
    assert emb(torch.tensor([[0, V - 1]])).shape == (1, 2, D)
    assert art.head(emb)(torch.ones(2, D)).shape == (2, V)
