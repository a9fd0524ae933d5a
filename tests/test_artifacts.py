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
