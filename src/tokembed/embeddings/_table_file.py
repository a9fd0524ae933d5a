"""An on-disk ``(V, D)`` table (.npy or .safetensors): layout validation, row I/O and a redo journal.

Private helper of :mod:`tokembed.embeddings.memmap`. The file is read and written with
``os.pread``/``os.pwrite`` at ``offset + row · row_bytes`` instead of one ``mmap`` of the
whole file, so a table far larger than the process's address-space limit (``RLIMIT_AS``)
still works, and a truncated file is an error at open time rather than a SIGBUS later.

Crash safety of in-place row updates — a write-ahead **redo journal** ``<table>.journal``:

1. write ``magic | n | row_bytes | ids (n·u64) | rows (n·row_bytes) | sha256`` to the journal, fsync it and its folder;
2. ``pwrite`` the rows into the table, fsync the table;
3. unlink the journal, fsync the folder.

On open, a journal whose checksum verifies is replayed (step 2 again: idempotent); a torn one
(crash during step 1) is discarded, since the table was not touched before the journal was
durable. So after a ``kill -9`` at any point the table holds the whole old or the whole new
rows of an update, never a mix. A journal costs O(rows touched) per update; the
copy-on-write alternative (copy the table, patch, rename) costs O(V·D) per update, which is
exactly what a table larger than RAM cannot afford.

Shapes: V rows, D columns; ``row_bytes = D · itemsize``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..artifacts import _fsync_dir
from ..errors import ArtifactError

__all__ = ["TableLayout", "read_layout", "create_table", "RowFile"]

# dtypes a table may hold: numpy descr / safetensors name -> torch dtype
_NPY = {"<f4": torch.float32, "<f2": torch.float16, "<f8": torch.float64}
_ST = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}
_NPY_OF = {v: k for k, v in _NPY.items()}
_ST_OF = {v: k for k, v in _ST.items()}
_MAX_HEADER = 1 << 20  # a table header is a few hundred bytes; refuse to parse megabytes of "header"
_JOURNAL_MAGIC = b"TKJ1"
_CHUNK_BYTES = 16 << 20  # create_table streams the file in 16 MiB pieces


@dataclass(frozen=True)
class TableLayout:
    """Where the rows of a table file live: ``num_rows × dim`` of ``dtype`` from byte ``offset``."""

    path: Path
    num_rows: int
    dim: int
    dtype: torch.dtype
    offset: int

    @property
    def row_bytes(self) -> int:
        return self.dim * torch.empty((), dtype=self.dtype).element_size()

    @property
    def nbytes(self) -> int:
        return self.offset + self.num_rows * self.row_bytes


def _bad(path, what: str, fix: str = "rewrite it with MemmapEmbedding.create(...) or numpy.save") -> ArtifactError:
    return ArtifactError(f"table file {path}: {what}; {fix}")


def _npy_layout(path: Path, f) -> tuple:
    try:
        major, _ = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, descr = read(f, max_header_size=_MAX_HEADER)
    except ValueError as e:
        raise _bad(path, f"not a valid .npy header ({e})") from e
    key = descr.str  # explicit byte order, e.g. '<f4'
    if key not in _NPY:
        raise _bad(path, f"dtype {descr} is not one of {sorted(_NPY)} (little-endian floats)")
    if fortran:
        raise _bad(path, "is stored in Fortran (column-major) order; rows are not contiguous", "save it with numpy.ascontiguousarray(table)")
    return shape, _NPY[key], f.tell()


def _safetensors_layout(path: Path, f, tensor_name: str | None) -> tuple:
    raw = f.read(8)
    if len(raw) < 8:
        raise _bad(path, "is shorter than a safetensors header")
    (n,) = struct.unpack("<Q", raw)
    if n > _MAX_HEADER:
        raise _bad(path, f"declares a {n}-byte header (> {_MAX_HEADER}); it is not a safetensors table")
    try:
        header = json.loads(f.read(n))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(path, f"safetensors header is not JSON ({e})") from e
    names = [k for k in header if k != "__metadata__"]
    name = tensor_name if tensor_name is not None else (names[0] if len(names) == 1 else None)
    if name not in names:
        raise _bad(path, f"holds tensors {names[:10]}", "pass tensor_name= one of them" if tensor_name is None or names else "save one (V, D) tensor")
    info = header[name]
    try:
        dtype_name, shape, (start, end) = info["dtype"], tuple(int(x) for x in info["shape"]), info["data_offsets"]
        start, end = int(start), int(end)
    except (KeyError, TypeError, ValueError) as e:
        raise _bad(path, f"tensor {name!r} has a malformed entry {str(info)[:200]}") from e
    if dtype_name not in _ST:
        raise _bad(path, f"tensor {name!r} has dtype {dtype_name}, not one of {sorted(_ST)}")
    dtype = _ST[dtype_name]
    if not 0 <= start <= end:
        raise _bad(path, f"tensor {name!r} has data_offsets [{start}, {end}]")
    if len(shape) == 2 and end - start != shape[0] * shape[1] * torch.empty((), dtype=dtype).element_size():
        raise _bad(path, f"tensor {name!r} spans {end - start} bytes but shape {list(shape)} of {dtype_name} needs another size")
    return shape, dtype, 8 + n + start


def read_layout(path: str | os.PathLike, *, tensor_name: str | None = None) -> TableLayout:
    """Validate a table file's header, shape, dtype and size (before anything is read or mapped)."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"table file {path} does not exist; create it with MemmapEmbedding.create({str(path)!r}, V, D)")
    with open(path, "rb") as f:
        if path.suffix == ".npy":
            shape, dtype, offset = _npy_layout(path, f)
        elif path.suffix == ".safetensors":
            shape, dtype, offset = _safetensors_layout(path, f, tensor_name)
        else:
            raise _bad(path, f"has suffix {path.suffix!r}", "use a .npy or .safetensors file")
    if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
        raise _bad(path, f"holds shape {list(shape)}, not a (V, D) table with V, D >= 1")
    layout = TableLayout(path, int(shape[0]), int(shape[1]), dtype, int(offset))
    size = path.stat().st_size
    if size < layout.nbytes:
        raise _bad(path, f"is {size} bytes but its header promises {layout.nbytes} (V={layout.num_rows}, D={layout.dim}, {dtype}): truncated")
    return layout


def _header_bytes(num_rows: int, dim: int, dtype: torch.dtype, suffix: str) -> bytes:
    if suffix == ".npy":
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": _NPY_OF[dtype], "fortran_order": False, "shape": (num_rows, dim)})
        return buf.getvalue()
    nbytes = num_rows * dim * torch.empty((), dtype=dtype).element_size()
    head = json.dumps({"table": {"dtype": _ST_OF[dtype], "shape": [num_rows, dim], "data_offsets": [0, nbytes]}}).encode()
    head += b" " * (-len(head) % 8)  # safetensors aligns the data to 8 bytes
    return struct.pack("<Q", len(head)) + head


def create_table(path, num_rows: int, dim: int, *, dtype=torch.float32, init: str = "normal", std: float = 0.02, seed: int = 0, weight: torch.Tensor | None = None) -> TableLayout:
    """Write a ``(V, D)`` table file atomically, streaming 16 MiB at a time (``init``: normal | zeros | the given ``weight``)."""
    path = Path(path)
    if path.suffix not in (".npy", ".safetensors"):
        raise _bad(path, f"has suffix {path.suffix!r}", "use a .npy or .safetensors file")
    table = _NPY_OF if path.suffix == ".npy" else _ST_OF
    if dtype not in table:
        raise ArtifactError(f"dtype {dtype} cannot be stored in a {path.suffix} table; use one of {sorted(map(str, table))}")
    if init not in ("normal", "zeros"):
        raise ArtifactError(f"init={init!r} is not 'normal' or 'zeros'")
    header = _header_bytes(num_rows, dim, dtype, path.suffix)
    row_bytes = dim * torch.empty((), dtype=dtype).element_size()
    step = max(1, _CHUNK_BYTES // row_bytes)
    g = torch.Generator().manual_seed(seed)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(header)
            if weight is None and init == "zeros":
                f.truncate(len(header) + num_rows * row_bytes)  # sparse: no pages written
            else:
                for lo in range(0, num_rows, step):
                    n = min(step, num_rows - lo)
                    rows = weight[lo : lo + n] if weight is not None else torch.empty(n, dim).normal_(0.0, std, generator=g)
                    f.write(_to_bytes(rows, dtype))
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileNotFoundError):  # a journal of a table this one replaces must not be replayed into it
            path.with_name(path.name + ".journal").unlink()
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return read_layout(path)


def _to_bytes(rows: torch.Tensor, dtype: torch.dtype) -> bytes:
    t = rows.detach().to(dtype).contiguous()
    return (t.view(torch.int16) if dtype == torch.bfloat16 else t).numpy().tobytes()  # numpy has no bfloat16


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_rows(fd: int, layout: TableLayout, ids: list[int], data: bytes) -> None:
    """pwrite each row (coalescing runs of consecutive ids); ids sorted, data in the same order."""
    rb, i = layout.row_bytes, 0
    while i < len(ids):
        j = i + 1
        while j < len(ids) and ids[j] == ids[j - 1] + 1:
            j += 1
        view, at = memoryview(data)[i * rb : j * rb], layout.offset + ids[i] * rb
        while view:
            n = os.pwrite(fd, view, at)
            view, at = view[n:], at + n
        i = j


class RowFile:
    """Rows of a table file by id: ``read(ids)``, journaled ``write(ids, rows)``; recovers a journal on open."""

    def __init__(self, layout: TableLayout, *, writable: bool):
        self.layout, self.writable = layout, writable
        self.journal = layout.path.with_name(layout.path.name + ".journal")
        self.fd = -1
        self.fd = os.open(layout.path, os.O_RDWR if writable else os.O_RDONLY)
        try:
            if writable:
                import fcntl  # noqa: PLC0415  (POSIX only)

                try:
                    fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError as e:
                    raise ArtifactError(f"table file {layout.path} is open for writing in another process; close it there or open with writable=False") from e
            if self.journal.exists():
                if not writable:
                    raise ArtifactError(f"table file {layout.path} has an unfinished update ({self.journal.name}); open it once with writable=True to recover")
                self.recover()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # also drops the writer's lock
            self.fd = -1

    def __del__(self):
        self.close()

    def read(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows ``ids`` (sorted, unique, in range) as float32 (n, D); runs of consecutive ids read at once."""
        lay, rb = self.layout, self.layout.row_bytes
        out = bytearray(len(ids) * rb)
        view, idl, i = memoryview(out), ids.tolist(), 0
        while i < len(idl):
            j = i + 1
            while j < len(idl) and idl[j] == idl[j - 1] + 1:
                j += 1
            got = os.preadv(self.fd, [view[i * rb : j * rb]], lay.offset + idl[i] * rb)
            if got != (j - i) * rb:
                raise _bad(lay.path, f"short read at row {idl[i]} (the file shrank while open)", "restore the file")
            i = j
        if not out:
            return torch.empty(0, lay.dim)
        return torch.frombuffer(out, dtype=lay.dtype).view(len(idl), lay.dim).float()  # (n, D)

    def write(self, ids: torch.Tensor, rows: torch.Tensor) -> None:
        """Replace rows ``ids`` (sorted, unique) by ``rows`` (n, D), crash-safely (journal, then in place)."""
        if not self.writable:
            raise ArtifactError(f"table file {self.layout.path} was opened read-only; open it with writable=True to update rows")
        idl = ids.tolist()
        data = _to_bytes(rows, self.layout.dtype)
        body = _JOURNAL_MAGIC + struct.pack("<QQ", len(idl), self.layout.row_bytes) + struct.pack(f"<{len(idl)}Q", *idl) + data
        jfd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(jfd, body + hashlib.sha256(body).digest())
            os.fsync(jfd)
        finally:
            os.close(jfd)
        _fsync_dir(self.journal.parent)  # the journal exists durably before the table is touched
        self._apply(idl, data)

    def _apply(self, idl: list[int], data: bytes) -> None:
        _write_rows(self.fd, self.layout, idl, data)
        os.fsync(self.fd)
        self.journal.unlink()
        _fsync_dir(self.journal.parent)

    def recover(self) -> bool:
        """Replay a complete journal (True) or drop a torn one (False)."""
        body = self.journal.read_bytes()
        lay = self.layout
        ok = len(body) >= 4 + 16 + 32 and body[:4] == _JOURNAL_MAGIC and hashlib.sha256(body[:-32]).digest() == body[-32:]
        if ok:
            n, rb = struct.unpack("<QQ", body[4:20])
            ok = rb == lay.row_bytes and len(body) == 20 + 8 * n + n * rb + 32
        if not ok:  # torn while the journal was written: the table itself was never touched
            self.journal.unlink()
            _fsync_dir(self.journal.parent)
            return False
        idl = list(struct.unpack(f"<{n}Q", body[20 : 20 + 8 * n]))
        if any(i >= lay.num_rows for i in idl):
            raise _bad(lay.path, f"journal {self.journal.name} names rows >= V={lay.num_rows}", "delete the journal if the table was replaced")
        self._apply(idl, body[20 + 8 * n : -32])
        return True
