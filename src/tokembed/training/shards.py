"""Token shards: a corpus tokenized once into memory-mapped arrays, and the order training reads them in.

Unlike :mod:`tokembed.corpus` (which streams text), a shard holds token ids: one flat
``uint16`` array (``uint32`` when V > 65536) per split, memory-mapped so training reads
windows without loading the whole corpus. Documents (blank-line separated blocks of the
corpus) are the unit of the train/validation split, which is deterministic: document ``i``
goes to validation iff ``sha256("seed:i") / 2^64 < val_fraction`` — it depends on neither
the order of processing nor the number of workers. The validation split is never empty: when no
document hashes into it (a small corpus), the last document is held out instead, with a warning.

Layout of one split (``train``/``val``) in the shard folder::

    {split}.bin        tokens: eos, doc_1 ids, eos, doc_2 ids, eos, ...  (every document token has a left context)
    {split}.docs.bin   int64 (n_docs, 2): token end offset (exclusive) and cumulative UTF-8 bytes per document
    {split}.json       dtype, n_tokens, n_bytes, n_docs, tokenizer fingerprint, vocab size, eos id, split rule
    tokenizer/         the tokenizer the shards were made with (workers load it from here)

A corpus of files is built resumably, file by file, in a staging folder beside the output folder
(:mod:`~tokembed.training.shard_progress`); the output folder appears only when complete, and its
bytes depend neither on the number of workers nor on interruptions.

``n_bytes`` is the UTF-8 byte count of the documents' text (inner newlines included, the
blank separator lines and eos tokens excluded): the denominator of bits per byte.

>>> [is_validation(i, seed=0, val_fraction=0.5) for i in range(5)]
[False, False, False, True, True]
"""

from __future__ import annotations

import collections
import hashlib
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import TOKEMBED_VERSION, atomic_dir, check_schema, read_json, write_json
from ..errors import ArtifactError, ConfigError, EmptyCorpusError, FingerprintMismatchError
from ..tokenizers import load_tokenizer
from .shard_progress import InputFile, Staging

__all__ = [
    "Shard",
    "build_shards",
    "load_shards",
    "encode_documents",
    "is_validation",
    "token_dtype",
    "SPLITS",
    "TokenStream",
]

SPLITS = ("train", "val")
SHARD_FORMAT = 1
#: A block of documents sent to one worker: large enough that process overhead is negligible.
BLOCK_BYTES = 1 << 20
BLOCK_DOCS = 4096


def token_dtype(vocab_size: int) -> np.dtype:
    """``uint16`` when every id fits (V ≤ 65536), else ``uint32``."""
    return np.dtype(np.uint16) if vocab_size <= 65536 else np.dtype(np.uint32)


def is_validation(doc_index: int, *, seed: int, val_fraction: float) -> bool:
    """Document-level split: ``u = sha256(f"{seed}:{i}")[:8] / 2^64``; validation iff ``u < val_fraction``."""
    h = hashlib.sha256(f"{seed}:{doc_index}".encode("ascii")).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64 < val_fraction


@dataclass
class Shard:
    """One split: ``tokens`` (memmap), the UTF-8 bytes and documents it holds, and its tokenizer fingerprint."""

    tokens: np.ndarray  # (N,) uint16/uint32, memory-mapped
    n_bytes: int  # UTF-8 bytes of the documents' text
    n_docs: int
    fingerprint: str  # tokenizer vocab fingerprint
    doc_index: np.ndarray | None = None  # (n_docs, 2) int64: token end offset, cumulative bytes
    vocab_size: int = 0
    eos_id: int = -1
    path: Path | None = None
    split: str = ""

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def bytes_per_token(self) -> float:
        """UTF-8 bytes per predicted token (eos separators included in the token count)."""
        n_pred = len(self) - 1
        return self.n_bytes / n_pred if n_pred > 0 else float("nan")

    def prefix(self, max_tokens: int | None) -> tuple[int, int]:
        """(tokens, bytes) of the longest prefix of whole documents with at most ``max_tokens`` tokens
        (at least one document). The prefix starts with the leading eos and ends with a document's eos."""
        if max_tokens is None or max_tokens >= len(self) or self.doc_index is None or self.n_docs == 0:
            return len(self), self.n_bytes
        ends = self.doc_index[:, 0]
        k = int(np.searchsorted(ends, max_tokens, side="right"))  # documents whose end ≤ max_tokens
        k = max(k, 1)
        return int(ends[k - 1]), int(self.doc_index[k - 1, 1])


def _eos_id(tokenizer) -> int:
    eos = tokenizer.vocab.special_id("eos")
    if eos is None:
        raise ConfigError(
            f"tokenizer {tokenizer!r} has no 'eos' special token to separate documents; "
            "train it with the default special tokens (pad, bos, eos)"
        )
    return eos


def encode_documents(tokenizer, documents: Sequence[str], *, eos_id: int | None = None, leading_eos: bool = True):
    """Tokenize documents into one stream ``[eos] d1 [eos] d2 [eos] ...``.

    Returns ``(tokens int64 (N,), doc_index int64 (n_docs, 2), n_bytes)``; doc_index holds each
    document's token end offset (after its eos) and the cumulative UTF-8 bytes.

    >>> from tokembed.tokenizers import ByteTokenizer
    >>> toks, idx, n = encode_documents(ByteTokenizer(), ["hi\\n", "é"])
    >>> toks.tolist(), idx.tolist(), n
    ([258, 104, 105, 10, 258, 195, 169, 258], [[5, 3], [8, 5]], 5)
    """
    eos = _eos_id(tokenizer) if eos_id is None else eos_id
    encoded = tokenizer.encode_batch(list(documents))
    parts = [np.array([eos], dtype=np.int64)] if leading_eos else []
    index = np.zeros((len(encoded), 2), dtype=np.int64)
    pos = 1 if leading_eos else 0
    nbytes = 0
    for j, (doc, ids) in enumerate(zip(documents, encoded)):
        parts.append(np.asarray(ids + [eos], dtype=np.int64))
        pos += len(ids) + 1
        nbytes += len(doc.encode("utf-8", errors="surrogatepass"))
        index[j] = (pos, nbytes)
    tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return tokens, index, nbytes


# -- workers (spawned processes; they load the tokenizer from its saved folder) --------------
_WORKER_TOKENIZER = None


#: How often a worker checks that the build that started it is still alive (seconds).
_PARENT_POLL_S = 0.5


def _worker_init(tokenizer_dir: str, parent: int) -> None:
    global _WORKER_TOKENIZER
    # the build's pid comes from the build itself: a worker spawned late (the pool starts them on demand)
    # may start after its build was killed, when os.getppid() already names the new parent
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    _WORKER_TOKENIZER = load_tokenizer(tokenizer_dir)


def _exit_with_parent(parent: int) -> None:
    """A killed build (SIGKILL) cannot stop its workers, and they share the task pipe, so none sees it close:
    each exits once it is re-parented instead of waiting forever."""
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_S)
    os._exit(1)


def _encode_block(tokenizer, start: int, docs: list[str], seed: int, val_fraction: float, dtype: str, *,
                  ensure_val: bool = False) -> dict:
    """Encode one block of documents (global indices start, start+1, ...) into per-split arrays
    (``ensure_val``: when no document of the block hashes into validation, its last one goes there;
    ``out["forced"]`` says whether that happened)."""
    held = [is_validation(start + j, seed=seed, val_fraction=val_fraction) for j in range(len(docs))]
    forced = ensure_val and not any(held) and len(docs) > 0
    if forced:
        held[-1] = True
    eos = _eos_id(tokenizer)
    encoded = tokenizer.encode_batch(docs)
    out: dict[str, Any] = {}
    for split in SPLITS:
        out[split] = {"tokens": [], "lens": [], "bytes": []}
    for j, (doc, ids) in enumerate(zip(docs, encoded)):
        split = "val" if held[j] else "train"
        o = out[split]
        o["tokens"].append(np.asarray(ids + [eos], dtype=dtype))
        o["lens"].append(len(ids) + 1)
        o["bytes"].append(len(doc.encode("utf-8", errors="surrogatepass")))
    for split in SPLITS:
        o = out[split]
        o["tokens"] = np.concatenate(o["tokens"]) if o["tokens"] else np.zeros(0, dtype=dtype)
        o["lens"] = np.asarray(o["lens"], dtype=np.int64)
        o["bytes"] = np.asarray(o["bytes"], dtype=np.int64)
    out["forced"] = forced
    return out


def _encode_block_in_worker(start: int, docs: list[str], seed: int, val_fraction: float, dtype: str) -> dict:
    return _encode_block(_WORKER_TOKENIZER, start, docs, seed, val_fraction, dtype)


def _blocks(documents: Iterable[str], *, start: int = 0) -> Iterator[tuple[int, list[str]]]:
    """``(global index of the first document, documents)`` blocks of about :data:`BLOCK_BYTES`."""
    buf, size = [], 0
    for doc in documents:
        buf.append(doc)
        size += len(doc)
        if size >= BLOCK_BYTES or len(buf) >= BLOCK_DOCS:
            yield start, buf
            start, buf, size = start + len(buf), [], 0
    if buf:
        yield start, buf


@dataclass(frozen=True)
class _FileDone:
    """A marker in the block stream: every block of input file ``index`` came before it."""

    index: int
    source: InputFile


def _file_blocks(corpus, files: Sequence[Path], *, first: int, first_doc: int) -> Iterator[tuple[int, list[str]] | _FileDone]:
    """The blocks of ``files`` (the corpus's files ``first``, ``first + 1``, ...), each file's followed by its marker;
    a block never spans two files."""
    doc = first_doc
    for k, path in enumerate(files, start=first):
        source = InputFile.read(path)
        for start, docs in _blocks(corpus.file_documents(path), start=doc):
            yield start, docs
            doc = start + len(docs)
        source.check_unchanged()
        yield _FileDone(k, source)


def _hold_last_block(items: Iterator[Any], hold: Callable[[tuple], bool]) -> tuple[Iterator[Any], Callable[[], list[Any]]]:
    """(an iterator over the items, but for the last block and the markers after it, a function returning
    those once the iterator is spent). Blocks are tuples; anything else is a marker. Once ``hold(block)``
    is False, nothing is held back any more (the last block needs no special care), so a failure while
    reading the next file loses no finished file's marker.

    >>> head, rest = _hold_last_block(iter([(0, ["a"]), "end a", (1, ["b"]), "end b", "end c"]), lambda b: True)
    >>> list(head), rest()
    ([(0, ['a']), 'end a'], [(1, ['b']), 'end b', 'end c'])
    >>> head, rest = _hold_last_block(iter([(0, ["a"]), "end a", (1, ["b"]), "end b"]), lambda b: b[0] < 1)
    >>> list(head), rest()
    ([(0, ['a']), 'end a', (1, ['b']), 'end b'], [])
    """
    tail: list[Any] = []

    def gen():
        for item in items:
            if isinstance(item, tuple):  # a new block: what was held back is not the last block's
                yield from tail
                tail.clear()
                if hold(item):
                    tail.append(item)
                    continue
            if tail:
                tail.append(item)
            else:
                yield item

    return gen(), lambda: tail


class _SplitWriter:
    """Appends one split's tokens and document index; ``state`` (``[n_tokens, n_docs, n_bytes]``) continues
    files an interrupted build left, cut back to that state."""

    def __init__(self, folder: Path, split: str, dtype: np.dtype, eos: int, state: Sequence[int] | None = None):
        self.split = split
        if state is None:
            for name in (f"{split}.bin", f"{split}.docs.bin"):  # a link left in a staging folder is removed, not followed
                (folder / name).unlink(missing_ok=True)
            self.f, self.fi = open(folder / f"{split}.bin", "wb"), open(folder / f"{split}.docs.bin", "wb")
            self.f.write(np.asarray([eos], dtype=dtype).tobytes())  # leading eos: the first document has a context
            self.n_tokens, self.n_docs, self.n_bytes = 1, 0, 0
            return
        self.n_tokens, self.n_docs, self.n_bytes = state
        self.f, self.fi = open(folder / f"{split}.bin", "r+b"), open(folder / f"{split}.docs.bin", "r+b")
        for f, size in ((self.f, self.n_tokens * dtype.itemsize), (self.fi, self.n_docs * 16)):
            f.truncate(size)
            f.seek(size)

    @property
    def state(self) -> list[int]:
        return [self.n_tokens, self.n_docs, self.n_bytes]

    def write(self, part: dict) -> None:
        self.f.write(part["tokens"].tobytes())
        ends = self.n_tokens + np.cumsum(part["lens"])
        cum = self.n_bytes + np.cumsum(part["bytes"])
        self.fi.write(np.stack([ends, cum], axis=1).astype(np.int64).tobytes() if len(ends) else b"")
        self.n_tokens += int(part["lens"].sum())
        self.n_bytes += int(part["bytes"].sum())
        self.n_docs += len(part["lens"])

    def sync(self) -> None:
        for f in (self.f, self.fi):
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        self.f.close()
        self.fi.close()


def build_shards(
    tokenizer,
    corpus,
    out_dir: str | os.PathLike,
    *,
    val_fraction: float = 0.05,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = False,
) -> dict[str, Shard]:
    """Tokenize ``corpus`` (a :class:`~tokembed.corpus.Corpus` or a list of documents) into ``out_dir``.

    Blocks of documents are encoded in ``workers`` spawned processes (default: CPU count; a corpus
    that fits one block is encoded in this process). Each worker loads the tokenizer from the
    saved ``tokenizer`` folder. The output folder appears atomically when the build is complete.

    A :class:`~tokembed.corpus.Corpus` is built resumably: file by file in the staging folder
    ``.NAME.partial`` beside ``out_dir``, which an interrupted build keeps; the next build of the
    same corpus skips the files it finished (:mod:`~tokembed.training.shard_progress`) and writes
    the same bytes as an uninterrupted build. A list of documents is built in one go.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction={val_fraction} must be in [0, 1)")
    out_dir = Path(out_dir)
    eos = _eos_id(tokenizer)
    dtype = token_dtype(tokenizer.vocab_size)
    opts = dict(seed=seed, val_fraction=val_fraction, dtype=dtype, eos=eos,
                n_workers=workers if workers is not None else (os.cpu_count() or 1))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="tokenize", unit="doc")
    try:
        if hasattr(corpus, "file_documents"):
            forced = _build_resumable(tokenizer, corpus, out_dir, bar=bar, **opts)
        else:
            with atomic_dir(out_dir) as tmp:
                tokenizer.save(tmp / "tokenizer")
                writers = {s: _SplitWriter(tmp, s, dtype, eos) for s in SPLITS}
                forced = _encode_all(tokenizer, _blocks(iter(corpus)), writers, folder=tmp, bar=bar, on_file_done=None,
                                     **opts)
    finally:
        if bar is not None:
            bar.close()
    if forced:
        warnings.warn(f"no document of the corpus fell into the validation split (val_fraction={val_fraction}); "
                      "the last document is held out instead", stacklevel=2)
    return load_shards(out_dir, tokenizer=tokenizer)


def _build_resumable(tokenizer, corpus, out_dir: Path, *, bar, **opts) -> bool:
    """build_shards of a Corpus: file by file into the staging folder, one progress record per finished file."""
    dtype = opts["dtype"]
    key = {"format": SHARD_FORMAT, "fingerprint": tokenizer.fingerprint, "tokenizer_kind": tokenizer.kind,
           "vocab_size": tokenizer.vocab_size, "eos_id": opts["eos"], "dtype": dtype.name, "seed": opts["seed"],
           "val_fraction": opts["val_fraction"], "errors": corpus.errors}
    files = list(corpus.files)
    with Staging(out_dir, key) as st:
        k, pos = st.resume(files, itemsize=dtype.itemsize, val_fraction=opts["val_fraction"])
        tokenizer.save(st.path / "tokenizer")
        writers = {s: _SplitWriter(st.path, s, dtype, opts["eos"], state=pos[s] if k else None) for s in SPLITS}
        recorded = {s: w.state for s, w in writers.items()}

        def file_done(done: _FileDone, forced: bool) -> None:
            for w in writers.values():
                w.sync()
            after = {s: w.state for s, w in writers.items()}
            st.record(done.index, done.source, recorded, after, forced=forced)
            recorded.update(after)

        items = _file_blocks(corpus, files[k:], first=k, first_doc=sum(pos[s][1] for s in SPLITS) if k else 0)
        try:
            forced = _encode_all(tokenizer, items, writers, folder=st.path, bar=bar, on_file_done=file_done, **opts)
        except EmptyCorpusError:
            list(corpus.lines())  # raises the corpus's own error, naming its sources
            raise
        st.publish()
    return forced


def _encode_all(tokenizer, items, writers: dict[str, _SplitWriter], *, folder: Path, bar, on_file_done, seed: int,
                val_fraction: float, dtype: np.dtype, eos: int, n_workers: int) -> bool:
    """Encode the block stream into ``writers``, in order; the last block here, holding out its last document when
    no document fell into validation. Markers (:class:`_FileDone`) go to ``on_file_done(marker, forced)``.
    Writes the ``{split}.json`` records and closes the writers; returns whether the last document was held out."""
    forced = [False]

    def emit(x) -> None:
        if isinstance(x, _FileDone):
            on_file_done(x, forced[0])
            return
        for s in SPLITS:
            writers[s].write(x[s])
        forced[0] = forced[0] or x["forced"]
        if bar is not None:
            bar.update(sum(len(x[s]["lens"]) for s in SPLITS))

    need_val = [val_fraction > 0 and writers["val"].n_docs == 0]

    def hold(block: tuple[int, list[str]]) -> bool:  # until a document hashes into validation, the last block may
        start, docs = block                          # have to hold out its last document
        need_val[0] = need_val[0] and not any(is_validation(start + j, seed=seed, val_fraction=val_fraction)
                                              for j in range(len(docs)))
        return need_val[0]

    head, rest = _hold_last_block(items, hold)
    _encode_stream(head, emit, tokenizer=tokenizer, tokenizer_dir=folder / "tokenizer", n_workers=n_workers, seed=seed,
                   val_fraction=val_fraction, dtype_str=dtype.str)
    for item in rest():
        if isinstance(item, tuple):  # the validation split is never left empty: the last document goes there
            start, docs = item
            ensure = val_fraction > 0 and writers["val"].n_docs == 0 and writers["train"].n_docs + len(docs) > 1
            item = _encode_block(tokenizer, start, docs, seed, val_fraction, dtype.str, ensure_val=ensure)
        emit(item)
    if writers["train"].n_docs + writers["val"].n_docs == 0:
        raise EmptyCorpusError("the corpus holds no documents; pass files with text")
    for s, w in writers.items():
        w.close()
        write_json(folder / f"{s}.json", _split_meta(s, w, tokenizer, dtype=dtype, eos=eos, seed=seed,
                                                     val_fraction=val_fraction))
    return forced[0]


def _encode_stream(items, emit, *, tokenizer, tokenizer_dir: Path, n_workers: int, seed: int, val_fraction: float,
                   dtype_str: str) -> None:
    """``emit`` every item in order: blocks encoded (here with one worker, else in ``n_workers`` spawned processes,
    started at the first block, at most ``2·n_workers`` in flight), markers as they are."""
    import multiprocessing as mp

    pending: collections.deque = collections.deque()
    ex = None

    def emit_next() -> None:
        head = pending.popleft()
        emit(head.result() if isinstance(head, Future) else head)

    def drain() -> None:
        while pending:
            emit_next()

    items = iter(items)
    try:
        while True:
            try:
                item = next(items)
            except StopIteration:
                break
            except Exception:  # reading the next file failed: what was read before still counts (its records)
                drain()
                raise
            if isinstance(item, tuple) and n_workers <= 1:
                item = _encode_block(tokenizer, *item, seed, val_fraction, dtype_str)
            elif isinstance(item, tuple):
                if ex is None:  # spawn: no fork of a process that may hold torch/tokenizers threads
                    ex = ProcessPoolExecutor(n_workers, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                                             initargs=(str(tokenizer_dir), os.getpid()))
                item = ex.submit(_encode_block_in_worker, *item, seed, val_fraction, dtype_str)
            pending.append(item)
            while pending and (not isinstance(pending[0], Future) or len(pending) >= 2 * n_workers):
                emit_next()  # back-pressure: memory stays bounded, results stay in order
        drain()
    finally:
        if ex is not None:
            ex.shutdown(wait=True, cancel_futures=True)


def _split_meta(split: str, w: "_SplitWriter", tokenizer, *, dtype: np.dtype, eos: int, seed: int,
                val_fraction: float) -> dict[str, Any]:
    """The ``{split}.json`` record of a written split: its counts, dtype, tokenizer identity and split rule."""
    return {
        "format": SHARD_FORMAT,
        "split": split,
        "dtype": dtype.name,
        "n_tokens": w.n_tokens,
        "n_bytes": w.n_bytes,
        "n_docs": w.n_docs,
        "fingerprint": tokenizer.fingerprint,
        "tokenizer_kind": tokenizer.kind,
        "vocab_size": tokenizer.vocab_size,
        "eos_id": eos,
        "split_rule": {"hash": "sha256(seed:doc_index)[:8]/2^64 < val_fraction", "seed": seed, "val_fraction": val_fraction},
        "tokembed_version": TOKEMBED_VERSION,
    }


#: {split}.json: key -> JSON type.
_META_SCHEMA = {"dtype": str, "n_tokens": int, "n_bytes": int, "n_docs": int, "fingerprint": str, "vocab_size": int,
                "eos_id": int}


def load_shards(out_dir: str | os.PathLike, *, tokenizer=None) -> dict[str, Shard]:
    """Open the shards in ``out_dir`` (memory-mapped); a tokenizer with another fingerprint raises
    :class:`FingerprintMismatchError`."""
    out_dir = Path(out_dir)
    shards = {}
    for s in SPLITS:
        meta_path = out_dir / f"{s}.json"
        if not meta_path.is_file():
            raise ArtifactError(f"{meta_path}: not found; {out_dir} is not a shard folder — build it with build_shards")
        meta = check_schema(read_json(meta_path), _META_SCHEMA, where=meta_path)
        if meta["dtype"] not in ("uint16", "uint32") or min(meta["n_tokens"], meta["n_docs"], meta["n_bytes"]) < 0:
            raise ArtifactError(f"{meta_path}: dtype {meta['dtype']!r} or a negative count (n_tokens, n_docs, n_bytes); "
                                "the file is corrupt — rebuild the shards")
        if tokenizer is not None and meta["fingerprint"] != tokenizer.fingerprint:
            raise FingerprintMismatchError(
                f"{out_dir}: shards were tokenized with a {meta.get('tokenizer_kind')} tokenizer "
                f"(V={meta.get('vocab_size')}, fingerprint {meta['fingerprint'][:12]}), but the tokenizer passed is "
                f"{tokenizer.kind} (V={tokenizer.vocab_size}, fingerprint {tokenizer.fingerprint[:12]}); "
                f"rebuild the shards with this tokenizer or pass the one in {out_dir / 'tokenizer'}"
            )
        dtype = np.dtype(meta["dtype"])
        n = int(meta["n_tokens"])
        bin_path = out_dir / f"{s}.bin"
        expected = n * dtype.itemsize
        if not bin_path.is_file() or bin_path.stat().st_size != expected:
            size = bin_path.stat().st_size if bin_path.is_file() else "missing"
            raise ArtifactError(f"{bin_path}: size {size} bytes, expected {expected} ({n} tokens × {dtype}); rebuild the shards")
        tokens = np.memmap(bin_path, dtype=dtype, mode="r", shape=(n,))
        n_docs = int(meta["n_docs"])
        idx_path = out_dir / f"{s}.docs.bin"
        if n_docs and (not idx_path.is_file() or idx_path.stat().st_size != n_docs * 16):
            raise ArtifactError(f"{idx_path}: missing or not {n_docs} documents × 2 int64; rebuild the shards")
        doc_index = (np.memmap(idx_path, dtype=np.int64, mode="r", shape=(n_docs, 2)) if n_docs  # on disk, like the tokens
                     else np.zeros((0, 2), np.int64))
        shards[s] = Shard(
            tokens=tokens,
            n_bytes=int(meta["n_bytes"]),
            n_docs=n_docs,
            fingerprint=meta["fingerprint"],
            doc_index=doc_index,
            vocab_size=int(meta["vocab_size"]),
            eos_id=int(meta["eos_id"]),
            path=bin_path,
            split=s,
        )
    return shards


class TokenStream:
    """``batch_size`` contiguous regions of the train tokens, each read ``seq_len`` at a time.

    Window of row r at cursor c: ``tokens[r·L + c : r·L + c + T + 1]`` (inputs = first T, targets = last T),
    with ``L = (N - 1) // B`` — wraps to c = 0 (a new epoch) when a region is exhausted. ``rows`` (a slice of
    ``0..B-1``) reads only those rows: a data-parallel rank's share; the cursor stays that of the global batch.
    """

    def __init__(self, tokens: np.ndarray, *, batch_size: int, seq_len: int, cursor: int = 0, epoch: int = 0,
                 rows: slice | None = None):
        n = len(tokens)
        self.tokens, self.B, self.T = tokens, batch_size, seq_len
        self.L = (n - 1) // batch_size
        if self.L < seq_len + 1:
            raise ConfigError(
                f"the train shard has {n} tokens, too few for batch_size={batch_size} rows of seq_len+1={seq_len + 1} "
                f"tokens; pass a larger corpus or lower batch_size/seq_len"
            )
        self.cursor, self.epoch = cursor, epoch
        self.row_ids = np.arange(batch_size)[rows if rows is not None else slice(None)]  # a data-parallel rank's rows

    def next(self) -> tuple["torch.Tensor", "torch.Tensor"]:
        import torch  # lazy: tokenizing workers import this module and need no torch

        if self.cursor + self.T + 1 > self.L:
            self.cursor, self.epoch = 0, self.epoch + 1
        starts = self.row_ids * self.L + self.cursor
        rows = np.stack([np.asarray(self.tokens[s : s + self.T + 1], dtype=np.int64) for s in starts])  # (b, T+1), b = len(row_ids)
        self.cursor += self.T
        t = torch.from_numpy(rows)
        return t[:, :-1], t[:, 1:]  # (B, T) inputs, (B, T) targets

    def state(self) -> dict[str, int]:
        return {"cursor": self.cursor, "epoch": self.epoch}
