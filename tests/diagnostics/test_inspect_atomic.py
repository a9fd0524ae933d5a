"""``tokembed inspect`` writes its report folder as one unit (issue 12, "nothing half-written")."""

import json

import pytest

from tokembed.cli import main


def _inspect(d, out, *extra):
    return main(["inspect", str(d / "E.npy"), "--vocab", str(d / "vocab.txt"), "-o", str(out), "--no-progress",
                 "--projector-rows", "0", *extra])


def test_killed_overwrite_leaves_the_old_report_whole(matrix_folder, tmp_path, monkeypatch, capsys):
    d, E = matrix_folder
    out = tmp_path / "report"
    assert _inspect(d, out) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert (out / "summary.json").is_file() and any(p.parts[0] == "plots" for p in before)

    import importlib

    ins = importlib.import_module("tokembed.diagnostics.inspect")

    def killed(ctx):  # the figures of the new run are written by now; then the process is killed
        raise KeyboardInterrupt

    monkeypatch.setattr(ins, "_example_neighbours", killed)
    E[:5] *= 3  # another matrix: new figures would differ
    import numpy as np

    np.save(d / "E.npy", E)
    assert _inspect(d, out) == 130
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # no new plot next to the old summary.json
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report.")]  # no temp folder left
    json.loads((out / "summary.json").read_text())
