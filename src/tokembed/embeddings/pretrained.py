"""Pretrained word vectors: read word2vec/GloVe/fastText files and initialise an embedding from them.

Unlike the other modules in ``tokembed.embeddings`` this one holds no layer: it reads
vector files (streaming, with a progress bar) and writes their rows into an existing
embedding table aligned to a tokembed :class:`~tokembed.vocab.Vocab`.

Formats (auto-detected from the first bytes, or forced with ``format=``):

- ``"word2vec"``: text, header line ``N D``, then ``word v1 .. vD`` per line. fastText's
  ``.vec`` files are the same format (``"fasttext"`` is accepted as an alias).
- ``"word2vec-binary"``: header line ``N D``, then per entry ``word<space>`` followed by
  ``D`` little-endian float32 values (4·D bytes) and an optional newline.
- ``"glove"``: text without a header; ``D`` is the number of fields of the first line minus one.

Alignment (:func:`init_from_pretrained`): each vocab token is looked up exactly first,
then (fallback) with its subword marker removed (``##x``, ``▁x``, ``Ġx``, ``x</w>``,
``x@@``), then lowercased. Rows with no match are filled with the mean of the matched
vectors (``fill="mean"``), a Gaussian with their per-dimension mean/std (``"random"``) or
left as initialised (``"keep"``). If the file's dimension ``D_s`` differs from the
embedding's ``D``, the vectors are projected: ``"pca"`` (top-D principal directions of the
matched vectors; zero-padded when ``D_s < D``) or ``"random"`` (a seeded semi-orthogonal
``D_s×D`` matrix, which keeps dot products exactly when ``D_s ≤ D``).

>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> p = os.path.join(d, "tiny.vec")
>>> _ = open(p, "w").write("2 3\\nthe 1 0 0\\ncat 0 1 0.5\\n")
>>> tokens, matrix = read_vectors(p, progress=False)
>>> tokens, matrix.shape, matrix.dtype.name
(['the', 'cat'], (2, 3), 'float32')
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, VectorFileError

__all__ = [
    "Vectors",
    "read_vectors",
    "write_vectors",
    "detect_format",
    "PretrainedInitReport",
    "init_from_pretrained",
    "candidates",
]

FORMATS = ("word2vec", "word2vec-binary", "glove", "fasttext")
_HEADER = re.compile(rb"^\s*(\d+)\s+(\d+)\s*$")
_CHUNK = 1 << 20  # 1 MiB read size for the binary parser


class Vectors(tuple):
    """``(tokens, matrix)`` as returned by :func:`read_vectors`, with metadata attributes.

    Unpacks like a 2-tuple; also has ``.tokens``, ``.matrix`` (N, D) float32, ``.format``,
    ``.duplicates`` (how many later entries repeated an earlier word and were dropped; first wins),
    ``.path``.
    """

    def __new__(cls, tokens: list[str], matrix: np.ndarray, *, format: str, duplicates: int, path: str):
        self = super().__new__(cls, (tokens, matrix))
        self.tokens, self.matrix, self.format, self.duplicates, self.path = tokens, matrix, format, duplicates, path
        return self

    def __getnewargs_ex__(self):  # keep copy/pickle of the tuple subclass consistent
        return (self.tokens, self.matrix), {"format": self.format, "duplicates": self.duplicates, "path": self.path}


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def detect_format(path: str | os.PathLike) -> str:
    """Guess the format of a vector file from its first bytes: ``word2vec``, ``word2vec-binary`` or ``glove``.

    A first line of two integers is a header (word2vec/fastText); the file is text when the
    line after it decodes as UTF-8 and ends in D numbers, binary otherwise.
    """
    path = Path(path)
    with _open_binary(path) as f:
        head = f.read(1 << 16)
        while head.count(b"\n") < 2 and len(head) < (1 << 24):  # long lines (large D): read up to 16 MiB
            more = f.read(1 << 20)
            if not more:
                break
            head += more
    if not head.strip():
        raise VectorFileError(f"{path}: the file is empty; pass a word2vec, GloVe or fastText vector file")
    first, _, rest = head.partition(b"\n")
    m = _HEADER.match(first)
    if not m:
        return "glove"
    dim = int(m.group(2))
    entry = rest.partition(b"\n")[0]  # a text entry is one line: word and D numbers
    try:
        parts = entry.decode("utf-8").split()
    except UnicodeDecodeError:
        return "word2vec-binary"
    if len(parts) > dim and all(_is_number(x) for x in parts[-dim:]):
        return "word2vec"
    return "word2vec-binary"


def read_vectors(
    path: str | os.PathLike,
    *,
    limit: int | None = None,
    progress: bool = True,
    format: str | None = None,
    encoding_errors: str = "strict",
) -> Vectors:
    """Read a word-vector file into ``(tokens, matrix)``; ``matrix`` is float32 ``(N, D)``.

    Streams the file (a ``.gz`` suffix is decompressed on the fly) with a tqdm progress bar.
    Duplicate words: the first entry wins, later ones are dropped and counted in ``.duplicates``.

    Args:
        path: the vector file.
        limit: read at most this many vectors (the first ones; files are usually frequency-sorted).
        progress: show a tqdm progress bar.
        format: force ``"word2vec"``, ``"word2vec-binary"``, ``"glove"`` or ``"fasttext"``;
            None detects it (:func:`detect_format`).
        encoding_errors: how to decode words that are not valid UTF-8 (``"strict"`` raises,
            ``"replace"`` substitutes U+FFFD).

    Raises:
        VectorFileError: malformed header or line (with file:line or byte offset), non-finite
            values, truncated file.
    """
    path = Path(path)
    if not path.is_file():
        raise VectorFileError(f"{path}: no such vector file; pass the path of a word2vec/GloVe/fastText file")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit={limit} reads nothing; pass None (all vectors) or a count >= 1", param="limit")
    if format is not None and format not in FORMATS:
        raise ConfigError(f"format={format!r} is not known; choose one of {', '.join(FORMATS)} (or None to detect)")
    try:
        fmt = format or detect_format(path)
        fmt = "word2vec" if fmt == "fasttext" else fmt
        reader = _read_binary if fmt == "word2vec-binary" else _read_text
        tokens, matrix, dups = reader(path, fmt=fmt, limit=limit, progress=progress, errors=encoding_errors)
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:  # a .gz file that is not gzip, or cut short
        raise VectorFileError(
            f"{path}: not a readable gzip file ({e}); the file is corrupt or truncated — download it again, "
            "or pass the uncompressed file"
        ) from e
    return Vectors(tokens, matrix, format=format or fmt, duplicates=dups, path=str(path))


def _progress(path: Path, total: int | None, unit: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, unit_scale=True, desc=f"reading {path.name}", disable=not enabled, leave=False)


def _parse_header(line: bytes, path: Path) -> tuple[int, int]:
    m = _HEADER.match(line)
    if not m or int(m.group(2)) <= 0:
        raise VectorFileError(
            f"{path}:1: header {line[:80]!r} is not 'COUNT DIM'; word2vec/fastText files start with e.g. '400000 300' "
            "(pass format='glove' for a file without a header)"
        )
    return int(m.group(1)), int(m.group(2))


#: preallocation cap (rows x D float32) when the file size cannot bound the header (a .gz file); the buffer grows
#: by doubling past it, so a lying header costs at most this much before the data runs out
_PREALLOC_BYTES = 64 * 2**20
#: fewest bytes one entry takes: text "w" + D times " 0" (the newline may be missing on the last line);
#: binary "w " + 4·D bytes (the newline after a vector is optional)
_MIN_ENTRY_BYTES = {"text": lambda dim: 1 + 2 * dim, "binary": lambda dim: 2 + 4 * dim}


def _rows_for_header(path: Path, count: int, dim: int, *, limit: int | None, header_bytes: int, layout: str) -> int:
    """Rows to preallocate for a ``COUNT DIM`` header, checked against the file size first.

    A header is a claim: ``1000000000 300`` would preallocate 1.1 TiB. The claimed entries must fit
    in the bytes after the header (each takes at least :data:`_MIN_ENTRY_BYTES`); a ``.gz`` file's size
    says nothing, so its preallocation is capped at :data:`_PREALLOC_BYTES` and grows with the data.

    >>> import tempfile; p = Path(tempfile.mkdtemp()) / "v.vec"; _ = p.write_text("1000000000 300\\nthe 1 2 3\\n")
    >>> _rows_for_header(p, 1000000000, 300, limit=None, header_bytes=15, layout="text")
    Traceback (most recent call last):
      ...
    tokembed.errors.VectorFileError: ...: header '1000000000 300' announces 1000000000 vectors of dimension 300 (at least 601000000000 bytes) but only 10 bytes follow it; ...
    """
    want = count if limit is None else min(count, limit)
    if path.suffix == ".gz":
        return max(1, min(want, _PREALLOC_BYTES // (4 * dim)))
    body = path.stat().st_size - header_bytes
    need = want * _MIN_ENTRY_BYTES[layout](dim)
    if need > body:
        raise VectorFileError(
            f"{path}:1: header '{count} {dim}' announces {want} vectors of dimension {dim} (at least {need} bytes) "
            f"but only {body} bytes follow it; the header is wrong or the file is truncated — fix the header's "
            "COUNT and DIM, or pass format='glove' for a file without a header",
            param="format",
        )
    return want


class _Rows:
    """Growable float32 row buffer (preallocated when the header gives the count) with first-wins dedup."""

    def __init__(self, dim: int, expected: int | None):
        self.dim, self.n = dim, 0
        if expected is None:  # no count (GloVe): start small, whatever D the first line claims
            expected = min(1024, _PREALLOC_BYTES // (4 * dim))
        self.buf = np.empty((max(expected, 1), dim), dtype=np.float32)
        self.tokens: list[str] = []
        self.seen: set[str] = set()
        self.duplicates = 0

    def add(self, word: str, row: np.ndarray) -> None:
        self.add_many([word], row[None], limit=self.n + 1)

    def add_many(self, words: list[str], block: np.ndarray, *, limit: int) -> None:
        """Append the rows of a (n, D) block whose word is new (first wins), until ``limit`` rows are held."""
        seen, keep = self.seen, []
        room = limit - self.n
        for j, word in enumerate(words):
            if len(keep) >= room:
                break
            if word in seen:  # later entries of a word are counted and dropped
                self.duplicates += 1
                continue
            seen.add(word)
            keep.append(j)
        self.tokens.extend(words if len(keep) == len(words) else [words[j] for j in keep])
        while self.n + len(keep) > len(self.buf):
            self.buf = np.concatenate([self.buf, np.empty_like(self.buf)])
        self.buf[self.n : self.n + len(keep)] = block if len(keep) == len(block) else block[keep]
        self.n += len(keep)

    @property
    def entries(self) -> int:
        return self.n + self.duplicates

    def result(self) -> tuple[list[str], np.ndarray, int]:
        return self.tokens, np.ascontiguousarray(self.buf[: self.n]), self.duplicates


def _short(text: str, width: int = 60) -> str:
    """``repr`` of a value quoted in an error, cut to ``width`` characters: a binary file read as text
    (``/proc/self/environ``) must not pour its content into the message.

    >>> _short("x" * 100, 10)
    "'xxxxxxxxxx'... (100 chars)"
    """
    return repr(text) if len(text) <= width else f"{text[:width]!r}... ({len(text)} chars)"


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _read_text(path: Path, *, fmt: str, limit: int | None, progress: bool, errors: str):
    size = None if path.suffix == ".gz" else path.stat().st_size
    rows: _Rows | None = None
    dim = count = None
    with _open_binary(path) as f, _progress(path, size, "B", progress) as bar:
        for lineno, raw in enumerate(f, start=1):
            bar.update(len(raw))
            if lineno == 1 and fmt == "word2vec":
                count, dim = _parse_header(raw, path)
                rows = _Rows(dim, _rows_for_header(path, count, dim, limit=limit, header_bytes=len(raw), layout="text"))
                continue
            if limit is not None and rows is not None and rows.n >= limit:
                break
            try:
                line = raw.decode("utf-8", errors=errors).rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise VectorFileError(
                    f"{path}:{lineno}: invalid UTF-8 at byte {e.start} of the line; "
                    "pass encoding_errors='replace' to keep the vector with U+FFFD in the word",
                    param="encoding_errors",
                ) from e
            if not line.strip():
                continue
            parts = line.rstrip().split(" ")
            if dim is None:  # GloVe: the first line fixes D
                first_line = raw
                dim = len(parts) - 1
                if dim <= 0:
                    raise VectorFileError(f"{path}:{lineno}: line has no values after the word; is this a vector file?")
                rows = _Rows(dim, None)
            if len(parts) < dim + 1:
                raise VectorFileError(
                    f"{path}:{lineno}: expected a word and {dim} values, got {len(parts) - 1} values; "
                    "the file is truncated or mixes dimensions (re-export it, or pass limit= to stop before this line)"
                )
            if len(parts) > dim + 1 and _is_number(parts[-dim - 1]):
                header = fmt == "glove" and _HEADER.match(first_line)
                raise VectorFileError(
                    f"{path}:{lineno}: expected a word and {dim} values, got {len(parts) - 1} values; "
                    + (
                        "the first line looks like a word2vec header: pass format='word2vec'"
                        if header
                        else "the file mixes dimensions (re-export it, or pass limit= to stop before this line)"
                    ),
                    param="format" if header else "limit",
                )
            word = " ".join(parts[:-dim])  # GloVe 840B has words that contain spaces (". . .")
            try:
                vec = np.array(parts[-dim:], dtype=np.float32)
            except ValueError as e:
                raise VectorFileError(
                    f"{path}:{lineno}: a value of word {_short(word)} is not a number ({_short(str(e))}); fix or drop this line"
                ) from e
            if not np.isfinite(vec).all():
                raise VectorFileError(f"{path}:{lineno}: word {_short(word)} has a NaN/Inf value; fix or drop this line")
            rows.add(word, vec)
    if rows is None:
        raise VectorFileError(f"{path}: no vectors found; pass a word2vec, GloVe or fastText vector file")
    if count is not None and limit is None and rows.entries != count:
        raise VectorFileError(
            f"{path}: the header announces {count} vectors but the file holds {rows.entries}; "
            "the file is truncated or the header is wrong (fix the header's first number)"
        )
    return rows.result()


def _read_binary(path: Path, *, fmt: str, limit: int | None, progress: bool, errors: str):
    """Chunked parser: per entry only the word is handled in Python; the vectors of a whole chunk
    are gathered with one numpy fancy-index (the readable per-entry version is the loop body)."""
    with _open_binary(path) as f:
        header = f.readline()
        count, dim = _parse_header(header, path)
        n_want = count if limit is None else min(count, limit)
        rows = _Rows(dim, _rows_for_header(path, count, dim, limit=limit, header_bytes=len(header), layout="binary"))
        nbytes = 4 * dim
        buf, offset, eof = b"", len(header), False  # offset: file offset of buf[0]
        with _progress(path, n_want, "vec", progress) as bar:
            while rows.entries < count and rows.n < n_want and not eof:
                chunk = f.read(max(_CHUNK, 2 * (nbytes + 64)))
                eof = not chunk
                buf += chunk
                pos, starts, words, size = 0, [], [], len(buf)
                remaining = count - rows.entries
                while len(words) < remaining:
                    space = buf.find(b" ", pos)
                    if space < 0 or size - space - 1 < nbytes:
                        break  # the entry continues in the next chunk
                    raw_word = buf[pos:space].lstrip(b"\r\n")  # word2vec C writes a newline after each vector
                    try:
                        word = raw_word.decode("utf-8", errors=errors)
                    except UnicodeDecodeError as e:
                        raise VectorFileError(
                            f"{path}: byte {offset + pos}: word of entry {rows.entries + len(words) + 1} is not valid "
                            "UTF-8; pass encoding_errors='replace'",
                            param="encoding_errors",
                        ) from e
                    if not word:
                        raise VectorFileError(
                            f"{path}: byte {offset + pos}: entry {rows.entries + len(words) + 1} has an empty word; "
                            "the file is not word2vec binary or D in the header is wrong (try format='word2vec')"
                        )
                    words.append(word)
                    starts.append(space + 1)
                    pos = space + 1 + nbytes
                if words:
                    view = memoryview(buf)
                    packed = b"".join(view[s : s + nbytes] for s in starts)  # the n vectors back to back
                    block = np.frombuffer(packed, dtype="<f4").reshape(len(starts), dim)  # (n, D)
                    bad = ~np.isfinite(block).all(axis=1)
                    if bad.any():
                        j = int(np.argmax(bad))
                        raise VectorFileError(
                            f"{path}: byte {offset + starts[j]}: word {_short(words[j])} has a NaN/Inf value"
                        )
                    before = rows.n
                    rows.add_many(words, block, limit=n_want)
                    bar.update(rows.n - before)
                offset += pos
                buf = buf[pos:]
            if rows.entries < count and rows.n < n_want:
                raise VectorFileError(
                    f"{path}: byte {offset}: file ends inside entry {rows.entries + 1} of {count} announced "
                    "by the header; the file is truncated (re-download it, or pass limit= to read fewer vectors)"
                )
    return rows.result()


def write_vectors(path: str | os.PathLike, tokens: list[str], matrix, *, format: str = "word2vec") -> Path:
    """Write ``(tokens, matrix)`` as a word-vector file that :func:`read_vectors` (and gensim) read back exactly.

    ``format``: ``"word2vec"``/``"fasttext"`` (text with header), ``"glove"`` (text, no header) or
    ``"word2vec-binary"``. Text values are written with 9 significant digits, which round-trips
    float32 exactly. The file is built in memory and written atomically (temp file + rename).
    Tokens must be non-empty and free of spaces and line breaks (the formats cannot hold them).

    >>> import tempfile, os
    >>> p = write_vectors(os.path.join(tempfile.mkdtemp(), "v.bin"), ["a", "b"], np.eye(2), format="word2vec-binary")
    >>> read_vectors(p, progress=False).matrix.tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    from ..artifacts import atomic_write_bytes

    mat = np.asarray(matrix, dtype=np.float32)
    if mat.ndim != 2 or mat.shape[0] != len(tokens):
        raise ConfigError(f"matrix has shape {mat.shape}; it needs one row per token ({len(tokens)}, D)")
    bad = [t for t in tokens if not t or any(c in t for c in " \n\r")]
    if bad:
        raise ConfigError(
            f"tokens {bad[:3]!r} are empty or contain a space/line break; word2vec/GloVe files cannot hold them"
        )
    if format not in FORMATS:
        raise ConfigError(f"format={format!r} is not known; choose one of {', '.join(FORMATS)}")
    n, dim = mat.shape
    parts = [] if format == "glove" else [f"{n} {dim}\n".encode()]
    if format == "word2vec-binary":
        little = mat.astype("<f4")
        for t, row in zip(tokens, little):
            parts.append(t.encode("utf-8") + b" " + row.tobytes() + b"\n")
    else:
        for t, row in zip(tokens, mat.tolist()):
            parts.append((t + " " + " ".join(f"{x:.9g}" for x in row) + "\n").encode("utf-8"))
    return atomic_write_bytes(path, b"".join(parts))


# ---------------------------------------------------------------------------------------------
# alignment to a Vocab


_PREFIX_MARKERS = ("##", "\u2581", "\u0120")  # WordPiece continuation, SentencePiece '▁', byte-level BPE 'Ġ'
_SUFFIX_MARKERS = ("</w>", "@@")  # subword-nmt / CLIP end-of-word, subword-nmt continuation


def candidates(token: str) -> list[tuple[str, str]]:
    """Lookup keys for ``token`` in order, each with its kind (``exact``, ``marker``, ``case``).

    ``case`` keys are lowercase and are looked up among the lowercased file words, so ``dog``
    finds ``Dog`` and ``Dog`` finds ``dog`` (the first file word of that spelling wins).

    >>> candidates("##Ing")
    [('##Ing', 'exact'), ('Ing', 'marker'), ('##ing', 'case'), ('ing', 'case')]
    >>> candidates("\u2581the")
    [('▁the', 'exact'), ('the', 'marker'), ('▁the', 'case'), ('the', 'case')]
    """
    out = [(token, "exact")]
    prefix, body, suffix = "", token, ""
    for m in _PREFIX_MARKERS:
        if body.startswith(m) and len(body) > len(m):
            prefix, body = m, body[len(m) :]
            break
    for m in _SUFFIX_MARKERS:
        if body.endswith(m) and len(body) > len(m):
            body, suffix = body[: -len(m)], m
            break
    if body != token:
        out.append((body, "marker"))
    out.append((prefix + body.lower() + suffix, "case"))  # keep the marker itself as is ('Ġ'.lower() is 'ġ')
    if body != token:
        out.append((body.lower(), "case"))
    return out


@dataclass
class PretrainedInitReport:
    """What :func:`init_from_pretrained` did. Coverage counts are over the vocab rows it set."""

    vocab_size: int  # V
    exact: int  # rows whose token is in the file as is
    fallback: int  # rows matched after removing a subword marker and/or lowercasing
    missing: int  # rows filled with `fill`
    skipped: int  # rows left untouched (padding row)
    source_dim: int  # D_s of the file
    target_dim: int  # D of the embedding
    projection: str | None  # None, "pca", "pca+zero-pad" or "random"
    fill: str
    format: str
    duplicates: int  # duplicate words dropped while reading
    fallback_kinds: dict[str, int] = field(default_factory=dict)  # marker/case -> count
    missing_examples: list[str] = field(default_factory=list)  # first 20 missing tokens

    @property
    def coverage(self) -> float:
        """Share of the set rows that got a pretrained vector (exact or fallback)."""
        n = self.exact + self.fallback + self.missing
        return (self.exact + self.fallback) / n if n else 0.0

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {**asdict(self), "coverage": self.coverage}


def _target_matrix(target) -> tuple[Any, int | None]:
    """(writable (V, D) tensor/array or module, padding row) of an embedding module or a matrix."""
    import torch

    if isinstance(target, (np.ndarray, torch.Tensor)):
        return target, None
    pad = getattr(target, "padding_idx", None)
    w = getattr(target, "weight", None)
    if isinstance(w, torch.Tensor) and tuple(w.shape) == (target.num_embeddings, target.embedding_dim):
        return w, pad
    if hasattr(target, "load_matrix"):
        return target, pad
    raise ConfigError(
        f"{type(target).__name__} has no (V, D) 'weight' and no load_matrix(); pass a TokenEmbedding, "
        "a FactorizedEmbedding or a (V, D) tensor"
    )


def _project(
    src: np.ndarray, fit_rows: np.ndarray, dim: int, how: str | None, rng: np.random.Generator
) -> tuple[np.ndarray, str | None]:
    """Map (N, D_s) vectors to (N, D)."""
    ds = src.shape[1]
    if ds == dim:
        return src, None
    if how is None:
        raise ConfigError(
            f"the vectors have dimension {ds} but the embedding has {dim}; pass project='pca' or project='random'"
        )
    if how == "pca":
        mu = fit_rows.mean(0, keepdims=True) if len(fit_rows) else np.zeros((1, ds), np.float32)
        _, _, vt = np.linalg.svd((fit_rows - mu).astype(np.float64), full_matrices=False)  # vt (min(N, D_s), D_s)
        k = min(dim, vt.shape[0])
        out = np.zeros((len(src), dim), np.float32)
        out[:, :k] = ((src - mu) @ vt[:k].T).astype(np.float32)  # top-k principal coordinates
        return out, "pca" if k == dim else "pca+zero-pad"
    if how == "random":
        q, _ = np.linalg.qr(rng.standard_normal((max(ds, dim), min(ds, dim))))  # orthonormal columns
        r = q if ds >= dim else q.T  # (D_s, D): orthonormal rows when D_s <= D (dot products kept)
        return (src @ r).astype(np.float32), "random"
    raise ConfigError(f"project={how!r} is not known; choose 'pca', 'random' or None")


def init_from_pretrained(
    target,
    vocab,
    vectors,
    *,
    fill: str = "mean",
    project: str | None = None,
    seed: int = 0,
    limit: int | None = None,
    progress: bool = True,
    format: str | None = None,
) -> PretrainedInitReport:
    """Write pretrained vectors into the rows of ``target`` aligned to ``vocab``; return the coverage report.

    Args:
        target: an embedding module (its ``weight`` (V, D), or ``load_matrix(M)`` for designs such
            as :class:`FactorizedEmbedding`) or a (V, D) tensor / array, written in place.
        vocab: the :class:`~tokembed.vocab.Vocab` whose id ``i`` names row ``i``.
        vectors: a vector file path, or ``(tokens, matrix)`` already read by :func:`read_vectors`.
        fill: rows without a match: ``"mean"`` (mean of matched vectors), ``"random"`` (Gaussian with
            the matched vectors' per-dimension mean and std, seeded) or ``"keep"`` (leave as is).
        project: ``"pca"``, ``"random"`` or None (dimensions must then agree).
        seed: seed for ``fill="random"`` and ``project="random"``.

    >>> import torch
    >>> from tokembed.vocab import Vocab
    >>> from tokembed.embeddings import TokenEmbedding
    >>> v = Vocab(["<pad>", "the", "##cat", "Dog"])
    >>> emb = TokenEmbedding(4, 2, padding_idx=0)
    >>> vecs = (["the", "cat", "dog"], np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32))
    >>> r = init_from_pretrained(emb, v, vecs)
    >>> r.exact, r.fallback, r.missing, r.skipped, r.fallback_kinds
    (1, 2, 0, 1, {'marker': 1, 'case': 1})
    >>> emb.weight.tolist()
    [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    """
    import torch

    if fill not in ("mean", "random", "keep"):
        raise ConfigError(f"fill={fill!r} is not known; choose 'mean', 'random' or 'keep'")
    if isinstance(vectors, (str, os.PathLike)):
        vectors = read_vectors(vectors, limit=limit, progress=progress, format=format)
    tokens, matrix = vectors
    matrix = np.asarray(matrix, dtype=np.float32)
    dest, pad = _target_matrix(target)
    V, D = (dest.shape if isinstance(dest, (np.ndarray, torch.Tensor)) else (dest.num_embeddings, dest.embedding_dim))
    if V != len(vocab):
        raise ConfigError(f"the embedding has {V} rows but the vocab has {len(vocab)} tokens; they must agree")
    src_rows, exact, fallback, kinds, missing = _match_rows(vocab, tokens, pad)
    rng = np.random.default_rng(seed)
    hit = np.nonzero(src_rows >= 0)[0]
    used = matrix[src_rows[hit]] if len(hit) else np.zeros((0, matrix.shape[1]), np.float32)  # (H, D_s)
    projected, how = _project(used, used, D, project, rng)  # (H, D)
    current = _rows_copy(dest)  # (V, D)
    current[hit] = projected
    if missing and fill != "keep":
        if len(hit) == 0:
            raise ConfigError(
                f"no vocab token was found in the vectors (first missing: {[vocab.token(i) for i in missing[:5]]}); "
                "check the vocab and the file match (same language, casing), or pass fill='keep'",
                param="fill",
            )
        current[missing] = _fill_rows(projected, len(missing), fill=fill, rng=rng)
    if pad is not None:
        current[pad] = 0.0
    _write_rows(dest, current)
    return PretrainedInitReport(
        vocab_size=V,
        exact=exact,
        fallback=fallback,
        missing=len(missing),
        skipped=0 if pad is None else 1,
        source_dim=matrix.shape[1],
        target_dim=D,
        projection=how,
        fill=fill,
        format=getattr(vectors, "format", "matrix"),
        duplicates=getattr(vectors, "duplicates", 0),
        fallback_kinds=kinds,
        missing_examples=[vocab.token(i) for i in missing[:20]],
    )

def _match_rows(vocab, tokens: list[str], pad: int | None) -> tuple[np.ndarray, int, int, dict[str, int], list[int]]:
    """Row of ``tokens`` each vocab id takes (-1: none), via :func:`candidates` (exact first, then fallbacks).

    Returns ``(src_rows (V,), exact, fallback, fallback_kinds, missing ids)``; the ``pad`` row is skipped.
    """
    index: dict[str, int] = {}
    lower: dict[str, int] = {}
    for i, t in enumerate(tokens):
        index.setdefault(t, i)
        lower.setdefault(t.lower(), i)
    src_rows = np.full(len(vocab), -1, dtype=np.int64)
    kinds: dict[str, int] = {}
    exact = fallback = 0
    missing: list[int] = []
    for i, tok in enumerate(vocab):
        if i == pad:
            continue
        for key, kind in candidates(tok):
            j = (lower if kind == "case" else index).get(key)
            if j is not None:
                src_rows[i] = j
                if kind == "exact":
                    exact += 1
                else:
                    fallback += 1
                    kinds[kind] = kinds.get(kind, 0) + 1
                break
        else:
            missing.append(i)
    return src_rows, exact, fallback, kinds, missing


def _rows_copy(dest) -> np.ndarray:
    """A float numpy copy (V, D) of the current rows of ``dest`` (tensor, array or embedding module)."""
    import torch

    if isinstance(dest, torch.Tensor):
        return dest.detach().cpu().numpy().copy()
    if isinstance(dest, np.ndarray):
        return dest.copy()
    return dest.weight_matrix().detach().cpu().numpy().copy()


def _fill_rows(projected: np.ndarray, n: int, *, fill: str, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows (n, D) for unmatched tokens: the mean of the matched rows ``projected`` (H, D), or Gaussian
    draws with their per-dimension mean and std (``fill="random"``; std 1 when H == 1)."""
    if fill == "mean":
        return projected.mean(0)
    D = projected.shape[1]
    mu, sd = projected.mean(0), projected.std(0) if len(projected) > 1 else np.ones(D, np.float32)
    return (mu + sd * rng.standard_normal((n, D))).astype(np.float32)


def _write_rows(dest, current: np.ndarray) -> None:
    """Write ``current`` (V, D) into ``dest`` in place (tensor in its dtype, array, or ``load_matrix``)."""
    import torch

    new = torch.from_numpy(current)
    with torch.no_grad():
        if isinstance(dest, torch.Tensor):
            dest.copy_(new.to(dest.dtype))
        elif isinstance(dest, np.ndarray):
            dest[...] = current
        else:
            dest.load_matrix(new)
