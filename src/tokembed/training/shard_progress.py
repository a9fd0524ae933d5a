"""Resumable shard building: the staging folder an interrupted build keeps, and its per-file records.

Unlike :mod:`~tokembed.training.shards` (the shard format and the encoding), this module only
decides what an earlier, interrupted :func:`~tokembed.training.shards.build_shards` of the same
corpus already finished. A build writes into the staging folder ``.NAME.partial`` beside the output
folder ``NAME``, input file after input file. Once a file's tokens are in the split files and
fsynced, one record ``progress/{k:06d}.json`` is written atomically::

    {"format": 1, "index": 2,
     "input": {"path": "/data/corpus/c.txt", "size": 1048576, "mtime_ns": ..., "sha256": "9f86d0..."},
     "docs": [120, 180],                 # global indices of the file's documents: [first, end)
     "splits": {"train": {"file": "train.bin", "tokens": [t0, t1], "docs": [n0, n1], "bytes": [b0, b1]},
                "val":   {"file": "val.bin",   ...}},
     "forced": false}                    # the held-out-last-document rule was applied by now

A rerun with the same tokenizer, split rule and dtype (``build.json``; otherwise the staging folder
is emptied) keeps records ``0..k-1``, cuts the split files back to where record ``k-1`` ends, and
encodes from file ``k`` on, so its shards are byte-identical to an uninterrupted build. A record
is kept while:

- its input is the corpus's k-th file, unchanged: same resolved path, size, mtime and sha256
  (a changed file is re-encoded, and every file after it, since document indices follow on);
- the split files on disk reach its ranges.

A record that is not what a build writes is an :class:`~tokembed.errors.ArtifactError` naming the
fix: a symbolic link, a malformed or mis-numbered file, ranges that do not continue the previous
record, or an output file other than the split's own file in the staging folder (a record never
points outside it). The validation split's "never empty" rule depends on the corpus's last block,
so while no document has hashed into validation, the last non-empty file kept is re-encoded too.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..artifacts import check_schema, file_sha256, make_folder, publish_dir, read_json, write_json
from ..errors import ArtifactError, CorpusError

__all__ = ["InputFile", "Staging", "staging_path", "start_position", "PROGRESS_FORMAT"]

PROGRESS_FORMAT = 1
SPLITS = ("train", "val")  # the same splits as shards.SPLITS (not imported: shards imports this module)
_RECORD_SCHEMA = {"format": int, "index": int, "input": dict, "docs": list, "splits": dict, "forced": bool}
_INPUT_SCHEMA = {"path": str, "size": int, "mtime_ns": int, "sha256": str}
_RANGE_KEYS = ("tokens", "docs", "bytes")


def staging_path(out_dir: str | os.PathLike) -> Path:
    """The staging folder of a build of ``out_dir``: a hidden sibling.

    >>> staging_path("run/data").as_posix()
    'run/.data.partial'
    """
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.partial"


def start_position() -> dict[str, list[int]]:
    """Split state before the first file: ``split -> [n_tokens, n_docs, n_bytes]`` (the leading eos is one token)."""
    return {s: [1, 0, 0] for s in SPLITS}


@dataclass(frozen=True)
class InputFile:
    """An input file's identity when it was encoded: resolved path, size, mtime (ns) and sha256 of its bytes."""

    path: str
    size: int
    mtime_ns: int
    sha256: str

    @classmethod
    def read(cls, path: str | os.PathLike) -> "InputFile":
        p = Path(path).resolve()
        st = p.stat()
        return cls(str(p), st.st_size, st.st_mtime_ns, file_sha256(p))

    def check_unchanged(self) -> None:
        """Raise :class:`CorpusError` when the file changed since :meth:`read` (it was being written meanwhile)."""
        st = Path(self.path).stat()
        if (st.st_size, st.st_mtime_ns) != (self.size, self.mtime_ns):
            raise CorpusError(f"{self.path}: changed while it was being encoded (size {self.size} -> {st.st_size}); "
                              "rerun once nothing writes to the corpus (the files before it are kept)")

    def matches(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` is still this file: the same resolved path, size and mtime, then the same sha256."""
        p = Path(path).resolve()
        try:
            st = p.stat()
        except OSError:
            return False
        return (str(p), st.st_size, st.st_mtime_ns) == (self.path, self.size, self.mtime_ns) and file_sha256(p) == self.sha256


class Staging:
    """The staging folder of one build, locked against a second builder while open (``with Staging(...) as st``)."""

    def __init__(self, out_dir: str | os.PathLike, build_key: dict[str, Any]):
        self.out_dir = Path(out_dir)
        self.path = staging_path(out_dir)
        self.progress = self.path / "progress"
        self.key = build_key
        self._fd: int | None = None

    def __enter__(self) -> "Staging":
        if self.path.is_symlink() or (self.path.exists() and not self.path.is_dir()):
            raise ArtifactError(f"{self.path}: the staging folder of {self.out_dir} is a link or a file; remove it "
                                "(a build only writes into a folder of its own)")
        make_folder(self.path, for_path=self.out_dir)
        self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise ArtifactError(f"{self.path}: another build of {self.out_dir} is running; wait for it to finish "
                                "or pass another output folder") from None
        if self._stored_key() != self.key:  # another tokenizer or split rule: nothing here can be reused
            self._empty()
            write_json(self.path / "build.json", self.key)
        if self.progress.is_symlink():
            self.close()
            raise ArtifactError(f"{self.progress}: is a link; progress records are read only from inside {self.path}; "
                                f"delete {self.path} to start the build over")
        make_folder(self.progress)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _stored_key(self) -> Any:
        try:
            return read_json(self.path / "build.json")
        except ArtifactError:  # missing or torn: start over
            return None

    def _empty(self) -> None:
        for child in self.path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def resume(self, files: Sequence[Path], *, itemsize: int, val_fraction: float) -> tuple[int, dict[str, list[int]]]:
        """``(k, position)``: files ``0..k-1`` are done and the split files end at ``position``
        (``split -> [n_tokens, n_docs, n_bytes]``); records from ``k`` on are removed."""
        pos, kept = start_position(), []
        for k, f in enumerate(files):
            rec_path = self.progress / f"{k:06d}.json"
            if not (rec_path.exists() or rec_path.is_symlink()):
                break
            rec = self._read_record(rec_path, k, pos)
            if not (InputFile(**{key: rec["input"][key] for key in _INPUT_SCHEMA}).matches(f)
                    and self._reaches(rec, itemsize)):
                break
            kept.append((rec, pos))
            pos = {s: [r[1] for r in (rec["splits"][s][key] for key in _RANGE_KEYS)] for s in SPLITS}
        if val_fraction > 0 and (pos["val"][1] == 0 or any(r["forced"] for r, _ in kept)):
            # the held-out-last-document rule is decided by the corpus's last block: redo the last non-empty file
            while kept and kept[-1][0]["docs"][1] == kept[-1][0]["docs"][0]:
                kept.pop()
            if kept:
                pos = kept.pop()[1]
        for p in self.progress.iterdir():
            if not (p.name.endswith(".json") and p.stem.isdigit() and int(p.stem) < len(kept)):
                p.unlink() if not p.is_dir() or p.is_symlink() else shutil.rmtree(p)
        return len(kept), pos

    def _read_record(self, path: Path, k: int, pos: dict[str, list[int]]) -> dict[str, Any]:
        """Record ``k``, checked to be what a build writes and to continue ``pos``; else an ArtifactError."""
        fix = f"delete {self.path} to start the build over"
        if path.is_symlink():
            raise ArtifactError(f"{path}: is a symbolic link to {os.readlink(path)}; a progress record must be a file "
                                f"inside {self.path}; {fix}")
        rec = check_schema(read_json(path), _RECORD_SCHEMA, where=path)
        check_schema(rec["input"], _INPUT_SCHEMA, where=f"{path}: input")
        if rec["format"] != PROGRESS_FORMAT or rec["index"] != k or sorted(rec["splits"]) != sorted(SPLITS):
            raise ArtifactError(f"{path}: format {rec['format']}, index {rec['index']}, splits {sorted(rec['splits'])}; "
                                f"expected format {PROGRESS_FORMAT}, index {k}, splits {list(SPLITS)}; {fix}")
        docs = _range(rec["docs"], where=f"{path}: docs")
        n_new = 0
        for s in SPLITS:
            out = check_schema(rec["splits"][s], {"file": str, **{key: list for key in _RANGE_KEYS}}, where=f"{path}: {s}")
            if out["file"] != f"{s}.bin":
                raise ArtifactError(f"{path}: the {s} output is {out['file']!r}, not {s}.bin of {self.path}; a record may "
                                    f"only name its own split files, never a path outside the folder; {fix}")
            for i, key in enumerate(_RANGE_KEYS):
                lo, _ = _range(out[key], where=f"{path}: {s}.{key}")
                if lo != pos[s][i]:
                    raise ArtifactError(f"{path}: {s}.{key} starts at {lo}, but the previous record ends at {pos[s][i]}; "
                                        f"the records do not follow each other; {fix}")
            n_new += out["docs"][1] - out["docs"][0]
        if docs[0] != sum(pos[s][1] for s in SPLITS) or docs[1] - docs[0] != n_new:
            raise ArtifactError(f"{path}: documents {docs} do not continue the previous record's "
                                f"{sum(pos[s][1] for s in SPLITS)} or disagree with its splits' {n_new}; {fix}")
        return rec

    def _reaches(self, rec: dict[str, Any], itemsize: int) -> bool:
        """Whether the split files on disk hold everything up to the record's ends."""
        for s in SPLITS:
            out = rec["splits"][s]
            for name, need in ((f"{s}.bin", out["tokens"][1] * itemsize), (f"{s}.docs.bin", out["docs"][1] * 16)):
                f = self.path / name
                if f.is_symlink() or not f.is_file() or f.stat().st_size < need:
                    return False
        return True

    def record(self, k: int, source: InputFile, before: dict[str, list[int]], after: dict[str, list[int]], *,
               forced: bool) -> None:
        """Write record ``k`` atomically (call it once the split files are fsynced up to ``after``)."""
        splits = {s: {"file": f"{s}.bin", **{key: [before[s][i], after[s][i]] for i, key in enumerate(_RANGE_KEYS)}}
                  for s in SPLITS}
        first = sum(before[s][1] for s in SPLITS)
        write_json(self.progress / f"{k:06d}.json", {
            "format": PROGRESS_FORMAT, "index": k, "input": asdict(source),
            "docs": [first, first + sum(after[s][1] - before[s][1] for s in SPLITS)], "splits": splits, "forced": forced,
        })

    def publish(self) -> Path:
        """Drop the records and move the finished staging folder to the output folder in one step."""
        shutil.rmtree(self.progress)
        (self.path / "build.json").unlink()
        publish_dir(self.path, self.out_dir)
        self.close()
        return self.out_dir


def _range(v: Any, *, where: str) -> tuple[int, int]:
    """``[lo, hi]`` with ``0 <= lo <= hi`` (ints), else an ArtifactError."""
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
            and 0 <= v[0] <= v[1]):
        raise ArtifactError(f"{where}: {v!r:.60} is not a range [lo, hi] of integers with 0 <= lo <= hi; "
                            "the record is corrupt — delete the staging folder to start over")
    return v[0], v[1]
