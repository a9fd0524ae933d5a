"""``tokembed study --quick`` writes the same results.csv, bit for bit, as the committed reference.

The reference (``data/quick_reference.csv``) was written by the tree before the package
restructuring (issue 10) with the default seeds; every column but the wall-clock ones must
match exactly, so a refactoring that changes a single float of a single run fails here.
Takes about 60-90 s on a loaded 2-core machine (9 runs), hence ``slow``.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

REFERENCE = Path(__file__).parent / "data" / "quick_reference.csv"

#: Columns that measure wall-clock speed: they differ from run to run by design.
TIMING_COLUMNS = frozenset({"train_tokens_per_s", "train_bytes_per_s", "seconds"})


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def compare_results(reference: Path, fresh: Path) -> list[str]:
    """The differences between two results.csv files outside the timing columns (empty = identical).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.csv").write_text("id,bits_per_byte,seconds\\nx,1.5,3\\n")
    >>> _ = (d / "b.csv").write_text("id,bits_per_byte,seconds\\nx,1.5,9\\n")
    >>> compare_results(d / "a.csv", d / "b.csv")
    []
    >>> _ = (d / "b.csv").write_text("id,bits_per_byte,seconds\\nx,1.50001,9\\n")
    >>> compare_results(d / "a.csv", d / "b.csv")
    ["row x: bits_per_byte '1.5' != '1.50001'"]
    """
    ref, new = _rows(reference), _rows(fresh)
    out = []
    if [r["id"] for r in ref] != [r["id"] for r in new]:
        return [f"run ids differ: {[r['id'] for r in ref]} != {[r['id'] for r in new]}"]
    if list(ref[0]) != list(new[0]):
        return [f"columns differ: {list(ref[0])} != {list(new[0])}"]
    for a, b in zip(ref, new):
        for col in a:
            if col not in TIMING_COLUMNS and a[col] != b[col]:
                out.append(f"row {a['id']}: {col} {a[col]!r} != {b[col]!r}")
    return out


@pytest.mark.slow
def test_study_quick_matches_the_reference(tmp_path):
    out = tmp_path / "study"
    proc = subprocess.run([sys.executable, "-m", "tokembed", "study", "--quick", "-o", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    diffs = compare_results(REFERENCE, out / "results.csv")
    assert not diffs, "\n".join(diffs[:20])


if __name__ == "__main__":  # python tests/study/test_quick_reference.py RESULTS.csv
    problems = compare_results(REFERENCE, Path(sys.argv[1]))
    print("\n".join(problems) or "identical to the reference (timing columns aside)")
    sys.exit(1 if problems else 0)
