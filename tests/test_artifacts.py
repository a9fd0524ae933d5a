import json

import pytest
import torch

from tokembed.artifacts import atomic_dir, atomic_write_text, load_tensors, read_json, save_tensors, write_json
from tokembed.errors import ArtifactError


def test_json_round_trip_and_errors(tmp_path):
    write_json(tmp_path / "a.json", {"x": [1, 2], "é": "ü"})
    assert read_json(tmp_path / "a.json") == {"x": [1, 2], "é": "ü"}
    (tmp_path / "bad.json").write_text('{"x": [1, 2')
    with pytest.raises(ArtifactError, match=r"bad.json:1:\d+: malformed JSON"):
        read_json(tmp_path / "bad.json")
    with pytest.raises(ArtifactError, match="not found"):
        read_json(tmp_path / "missing.json")


def test_atomic_write_leaves_no_temp(tmp_path):
    atomic_write_text(tmp_path / "f.txt", "one")
    atomic_write_text(tmp_path / "f.txt", "two")
    assert (tmp_path / "f.txt").read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_dir_failure_keeps_old_content(tmp_path):
    out = tmp_path / "art"
    with atomic_dir(out) as d:
        (d / "a.txt").write_text("v1")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as d:
            (d / "a.txt").write_text("half")
            raise RuntimeError("crash mid-write")
    assert (out / "a.txt").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_tensors_round_trip_and_corrupt_file(tmp_path):
    t = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    save_tensors(tmp_path / "m.safetensors", t, metadata={"k": "v"})
    assert torch.equal(load_tensors(tmp_path / "m.safetensors")["w"], t["w"])
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ArtifactError, match="not a valid safetensors"):
        load_tensors(tmp_path / "bad.safetensors")


def test_artifacts_get_umask_permissions_not_mkstemp_0600(tmp_path):
    """A report or checkpoint must be readable like any file the user writes (umask), not 0600/0700."""
    import os
    import stat

    from tokembed.artifacts import atomic_dir, atomic_write_text

    old = os.umask(0o022)
    try:
        f = atomic_write_text(tmp_path / "report.html", "x")
        assert stat.S_IMODE(f.stat().st_mode) == 0o644
        os.chmod(f, 0o600)  # an existing file keeps its own bits
        atomic_write_text(f, "y")
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        with atomic_dir(tmp_path / "ckpt") as d:
            (d / "config.json").write_text("{}")
        assert stat.S_IMODE((tmp_path / "ckpt").stat().st_mode) == 0o755
        os.umask(0o077)
        assert stat.S_IMODE(atomic_write_text(tmp_path / "private.txt", "z").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_atomic_dir_swaps_in_one_step_on_linux(tmp_path, monkeypatch):
    import sys

    from tokembed import artifacts

    out = tmp_path / "art"
    with atomic_dir(out) as d:
        (d / "a.txt").write_text("v1")
    seen = []
    real_replace = artifacts.os.replace
    monkeypatch.setattr(artifacts.os, "replace", lambda a, b: (seen.append((a, b)), real_replace(a, b))[1])
    with atomic_dir(out) as d:
        (d / "a.txt").write_text("v2")
    assert (out / "a.txt").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]
    if sys.platform.startswith("linux") and artifacts._exchange(tmp_path / "art", tmp_path / "art"):
        assert seen == []  # the swap was renameat2(RENAME_EXCHANGE): path never missing
