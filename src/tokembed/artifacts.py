"""Save and load artifacts atomically: JSON, safetensors, whole folders.

Every write goes to a temp file in the same folder, is flushed and fsynced, then
``os.replace``d over the target, so a crash never leaves a half-written file. A folder
artifact is written into a temp sibling folder and renamed into place the same way.
Tensors only ever go through safetensors; nothing is pickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import ArtifactError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "write_json",
    "read_json",
    "check_schema",
    "file_sha256",
    "save_tensors",
    "load_tensors",
    "atomic_dir",
    "publish_dir",
    "make_folder",
    "TOKEMBED_VERSION",
]

TOKEMBED_VERSION = "0.1.0"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be opened
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (no race with other threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _default_mode(path: Path, *, folder: bool = False) -> int:
    """The permission bits a plain ``open``/``mkdir`` would give ``path`` (mkstemp/mkdtemp use 0600/0700),
    or its current bits when it is being replaced."""
    with contextlib.suppress(OSError):
        return stat.S_IMODE(path.stat().st_mode)
    return (0o777 if folder else 0o666) & ~_umask()


def make_folder(folder: str | os.PathLike, *, for_path: str | os.PathLike | None = None) -> Path:
    """``mkdir -p folder``; a file in the way or a read-only place is an :class:`ArtifactError`, not an OSError."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        what = f" for {for_path}" if for_path is not None else ""
        raise ArtifactError(
            f"cannot create the folder {folder}{what} ({e.strerror}: {e.filename}); pass an output path in a writable folder"
        ) from None
    return folder


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file + fsync + os.replace).

    The file gets the permissions a plain write would give it (umask; an existing file keeps its own).
    """
    path = Path(path)
    make_folder(path.parent, for_path=path)
    mode = _default_mode(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed file is an :class:`ArtifactError` with line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArtifactError(f"{path}: file not found; pass the folder that holds it") from None
    except UnicodeDecodeError as e:
        raise ArtifactError(f"{path}: not UTF-8 at byte {e.start}; is this the right file?") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}:{e.lineno}:{e.colno}: malformed JSON ({e.msg}); the file is truncated or corrupt") from e
    except RecursionError:  # e.g. 100k nested '[': the parser recurses once per level
        raise ArtifactError(f"{path}: JSON nested too deeply to read; the file is corrupt or hostile") from None


def _type_names(t) -> str:
    return " or ".join(x.__name__ for x in (t if isinstance(t, tuple) else (t,)))


def check_schema(obj: Any, schema: Mapping[str, Any], *, where: str | os.PathLike) -> dict:
    """Check that ``obj`` is a JSON object holding every key of ``schema`` with a value of its type
    (a type or tuple of types; ``int`` never accepts ``bool``, ``float`` accepts ``int``); returns ``obj``.

    >>> check_schema({"step": 3}, {"step": int}, where="train_state.json")
    {'step': 3}
    >>> check_schema({"step": "twelve"}, {"step": int}, where="train_state.json")
    Traceback (most recent call last):
      ...
    tokembed.errors.ArtifactError: train_state.json: 'step' is 'twelve' (str), expected int; the file is corrupt or from another tool
    """
    if not isinstance(obj, dict):
        raise ArtifactError(
            f"{where}: holds a JSON {type(obj).__name__ if obj is not None else 'null'}, expected an object with keys "
            f"{sorted(schema)}; the file is corrupt or from another tool"
        )
    for key, want in schema.items():
        if key not in obj:
            raise ArtifactError(f"{where}: the key {key!r} is missing; the file is corrupt or from another tool")
        v, types = obj[key], want if isinstance(want, tuple) else (want,)
        ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
        if not ok and float in types and isinstance(v, int) and not isinstance(v, bool):
            ok = True
        if not ok:
            raise ArtifactError(
                f"{where}: {key!r} is {v!r:.40} ({type(v).__name__}), expected {_type_names(want)}; "
                "the file is corrupt or from another tool"
            )
    return obj


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> Path:
    """Save torch tensors to a ``.safetensors`` file atomically (contiguous copies; shared storage de-duplicated by the caller)."""
    from safetensors.torch import save

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=dict(metadata or {}))
    return atomic_write_bytes(path, data)


def load_tensors(path: str | os.PathLike, device: str = "cpu") -> dict:
    """Load a ``.safetensors`` file into torch tensors; malformed files raise :class:`ArtifactError`."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: file not found; pass a folder with model.safetensors or the file itself")
    try:
        return load_file(str(path), device=device)
    except Exception as e:  # safetensors raises its own SafetensorError / OSError
        raise ArtifactError(f"{path}: not a valid safetensors file ({e}); the file is truncated or corrupt") from e


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux ``renameat2(RENAME_EXCHANGE)``; False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # no libc symbol (old glibc, musl)
        return False
    at_fdcwd, rename_exchange = -100, 2  # <fcntl.h>, <linux/fs.h>
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Build a folder artifact in a temp sibling and move it into place at the end.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "tok"
    >>> with atomic_dir(d) as tmp:
    ...     _ = (tmp / "a.txt").write_text("x")
    >>> sorted(p.name for p in d.iterdir())
    ['a.txt']

    If the body raises, the temp folder is removed and ``path`` is untouched.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ArtifactError(f"{path} exists and is not a folder; pass a new output folder")
    if path.exists() and not overwrite:
        raise ArtifactError(f"{path} exists; pass another output folder or allow overwriting")
    make_folder(path.parent, for_path=path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        publish_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish_dir(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Move the finished folder ``tmp`` (a sibling of ``path``) to ``path`` in one step, its files fsynced;
    an existing ``path`` is swapped out and removed. :func:`atomic_dir` ends with this; a builder that keeps
    its own staging folder across runs (resumable shards) calls it directly."""
    tmp, path = Path(tmp), Path(path)
    for f in tmp.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    os.chmod(tmp, _default_mode(path, folder=True))
    if path.exists():
        if _exchange(tmp, path):  # one atomic swap: the old folder is now at tmp
            shutil.rmtree(tmp, ignore_errors=True)
        else:  # no renameat2: two renames, with a short window where path is missing
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path
