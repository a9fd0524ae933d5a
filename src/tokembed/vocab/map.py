"""VocabMap: one remap of token ids (old id -> new id or dropped, plus new tokens with their init).

Unlike :class:`~tokembed.vocab.Vocab` (one id <-> token table), a VocabMap relates two
tables: the one a model was trained with and the one it is moved to. Every vocabulary
operation (trim, add, transplant) produces one, and the same map is applied to every place
that holds the vocabulary (input rows, head rows and bias, optimizer moments, frozen-row
masks, special ids) by :mod:`tokembed.vocab.apply`, so the places cannot drift apart.

Shapes: V old tokens, V' new tokens, R old table rows (R >= V: rows past V are padding),
R' new rows, D row width.

Rows of the new table, by kind (``source[j]`` is the old id of new row ``j`` or -1):

- kept token: ``E'[j] = E[source[j]]`` (bit-identical copy);
- new token: its init (``compose``: mean of the old rows of the pieces the old tokenizer splits
  its text into; ``mean``: mean of all old token rows; ``mean-cov``: a sample of
  ``N(mean, 1e-9·Cov)`` as transformers' ``mean_resizing``; ``random``: ``N(0, σ²)`` with σ the
  old rows' std, seeded);
- padding row (``j >= V'``): zeros, never produced by the tokenizer.

A table that already had padding rows (R > V) puts new tokens into those rows first
(LlamaFactory #10547): only when V' exceeds R does the table grow.

>>> m = VocabMap.from_keep(old_size=4, keep=[0, 2, 3])
>>> m.old_to_new, m.new_size
([0, -1, 1, 2], 3)
>>> import torch
>>> m.apply_rows(torch.arange(8.0).reshape(4, 2)).tolist()
[[0.0, 1.0], [4.0, 5.0], [6.0, 7.0]]
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..artifacts import read_json, write_json
from ..errors import ArtifactError, ConfigError

__all__ = ["VocabMap", "NewToken", "INITS", "MAP_FILE", "MEAN_COV_EPSILON"]

#: File name of the map written next to every output.
MAP_FILE = "vocab_map.json"

#: Init schemes for the rows of new tokens.
INITS = ("compose", "mean", "mean-cov", "random")

#: Scale of the covariance in ``mean-cov``: transformers' ``_init_added_embeddings_weights_with_mean``
#: samples from N(mean, 1e-9·Cov) so new rows sit next to the mean, as Hewitt (2021) recommends.
MEAN_COV_EPSILON = 1e-9


@dataclass
class NewToken:
    """A token of the new vocabulary that had no row before."""

    id: int  # its id in the new vocabulary
    token: str  # its string in the new vocabulary
    pieces: list[int] = field(default_factory=list)  # old ids the old tokenizer splits its text into (compose init)
    special: bool = False  # a special token (never composed from text)
    intermediate_of: str = ""  # BPE add: the requested token whose merges built this one on the way
    intermediates: list[str] = field(default_factory=list)  # BPE add: strings built on the way to this token


@dataclass
class VocabMap:
    """old id -> new id (``-1`` dropped) and the new tokens; see the module docstring."""

    old_size: int  # V
    new_size: int  # V'
    old_to_new: list[int]  # (V,) new id of each old id, -1 when dropped
    new_tokens: list[NewToken] = field(default_factory=list)
    old_fingerprint: str = ""
    new_fingerprint: str = ""
    pad_to_multiple_of: int = 1  # R' is rounded up to a multiple of this
    operation: str = ""  # "trim", "add", "transplant", "between", ...

    def __post_init__(self) -> None:
        if len(self.old_to_new) != self.old_size:
            raise ConfigError(f"old_to_new has {len(self.old_to_new)} entries for an old vocabulary of {self.old_size}")
        if self.pad_to_multiple_of < 1:
            raise ConfigError(f"pad_to_multiple_of={self.pad_to_multiple_of}; pass an integer >= 1")
        taken = [j for j in self.old_to_new if j >= 0] + [t.id for t in self.new_tokens]
        if sorted(taken) != list(range(self.new_size)):
            raise ConfigError(
                f"the map does not cover new ids 0..{self.new_size - 1} exactly once (kept + new tokens give {len(taken)} ids); "
                "the map file is corrupt"
            )

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_keep(cls, *, old_size: int, keep: Iterable[int], **kw: Any) -> "VocabMap":
        """Keep the old ids ``keep`` (in old order), renumbered 0, 1, ...; drop the rest."""
        kept = sorted(set(int(i) for i in keep))
        old_to_new = [-1] * old_size
        for j, i in enumerate(kept):
            old_to_new[i] = j
        return cls(old_size=old_size, new_size=len(kept), old_to_new=old_to_new, operation=kw.pop("operation", "trim"), **kw)

    @classmethod
    def between(cls, old_tok, new_tok, **kw: Any) -> "VocabMap":
        """Map two tokenizers: a token string in both keeps its row; new strings are composed from the
        old tokenizer's pieces of their text; old strings missing from the new vocabulary are dropped.

        Piece texts come from the new tokenizer's ``decode`` of the single id, so markers
        (``Ġ``, ``▁``, ``##``) are handled by the engines themselves.
        """
        old_v, new_v = old_tok.vocab, new_tok.vocab
        old_to_new = [new_v.get(t, -1) for t in old_v]
        specials = set(new_v.special_tokens.values())
        fresh = [j for j, t in enumerate(new_v) if t not in old_v]
        plain = [j for j in fresh if new_v.token(j) not in specials]
        pieces = dict(zip(plain, compose_pieces(old_tok, new_tok, plain)))
        new_tokens = [NewToken(j, new_v.token(j), pieces.get(j, []), special=j not in pieces) for j in fresh]
        return cls(
            old_size=len(old_v),
            new_size=len(new_v),
            old_to_new=old_to_new,
            new_tokens=new_tokens,
            old_fingerprint=old_tok.fingerprint,
            new_fingerprint=new_tok.fingerprint,
            operation=kw.pop("operation", "between"),
            **kw,
        )

    # -- facts ---------------------------------------------------------------------------
    @property
    def source(self) -> torch.Tensor:
        """(V',) old id of each new id, -1 for new tokens."""
        src = [-1] * self.new_size
        for i, j in enumerate(self.old_to_new):  # plain Python: ~5 ms for 50k ids, steadier than tensor masking
            if j >= 0:
                src[j] = i
        return torch.tensor(src, dtype=torch.int64)

    @property
    def dropped(self) -> list[int]:
        return [i for i, j in enumerate(self.old_to_new) if j < 0]

    @property
    def is_identity(self) -> bool:
        return self.old_size == self.new_size and all(i == j for i, j in enumerate(self.old_to_new))

    def new_id(self, old_id: int | None) -> int | None:
        """New id of an old id (None when dropped or when ``old_id`` is None)."""
        if old_id is None or not 0 <= old_id < self.old_size:
            return None
        j = self.old_to_new[old_id]
        return j if j >= 0 else None

    def rows(self, old_rows: int) -> int:
        """R': rows of the new table, given R old rows (old padding rows are filled first)."""
        if old_rows < self.old_size:
            raise ArtifactError(
                f"the table has {old_rows} rows but the tokenizer has {self.old_size} tokens; "
                "pass the tokenizer the model was trained with"
            )
        padded_before = old_rows - self.old_size
        need = self.new_size
        if padded_before and not self.dropped:
            need = max(need, old_rows)  # new tokens go into the old padding rows first
        m = self.pad_to_multiple_of
        return -(-need // m) * m

    # -- application ---------------------------------------------------------------------
    def apply_rows(self, table: torch.Tensor, *, init: str = "compose", seed: int = 0, fill: str = "init") -> torch.Tensor:
        """(R, ...) -> (R', ...): kept rows copied, new rows initialised, padding rows zero.

        ``fill``: ``"init"`` (model weights: new rows from ``init``) or ``"zeros"`` (optimizer
        moments, counts, masks: a new token starts with no history). The blocks are written straight
        into the result (no second copy of the table).
        """
        out = torch.empty((self.rows(table.shape[0]), *table.shape[1:]), dtype=table.dtype)
        for _ in self.row_blocks(table, init=init, seed=seed, fill=fill, out=out):
            pass
        return out

    def row_blocks(self, table: torch.Tensor, *, init: str = "compose", seed: int = 0, fill: str = "init",
                   out: torch.Tensor | None = None) -> Iterator[tuple[int, torch.Tensor]]:
        """The new table as consecutive ``(first row, (n, ...) block)`` of :data:`CHUNK_ROWS` rows, so a writer
        can stream it to disk without holding the whole new table (:meth:`apply_rows` passes ``out``, the
        (R', ...) result, and the blocks are its views)."""
        if init not in INITS:
            raise ConfigError(f"init={init!r}; choose one of {', '.join(INITS)}")
        R2 = self.rows(table.shape[0])
        src = self.source  # (V',) old id of each new id, -1 for new tokens
        fresh = bool(self.new_tokens) and fill == "init" and table.is_floating_point()
        old = table[: self.old_size]
        g = torch.Generator().manual_seed(seed)
        stats = self._init_stats(old, init, n_new=int((src < 0).sum()), g=g) if fresh else None
        pieces = {t.id: t.pieces for t in self.new_tokens}
        for a in range(0, R2, CHUNK_ROWS):
            n = min(CHUNK_ROWS, R2 - a)
            block = out[a : a + n] if out is not None else torch.empty((n, *table.shape[1:]), dtype=table.dtype)
            s = src[a : a + n]
            _copy_kept(block, s, table)  # E'[j] = E[source[j]]; new and padding rows zero
            new = (s < 0).nonzero().squeeze(1)
            if stats is not None and len(new):
                block[new] = self._new_rows([a + int(k) for k in new], old, pieces, stats, g).to(table.dtype)
            yield a, block

    @staticmethod
    def _init_stats(old: torch.Tensor, init: str, *, n_new: int, g: torch.Generator) -> dict[str, Any]:
        """What an init needs from the old rows (V, ...), in one chunked pass (float64 sums, nothing table-sized).

        ``mean-cov`` draws all ``n_new`` samples here (:func:`_mean_cov_rows`); the other inits keep their
        per-block draws.
        """
        V = old.shape[0]
        lowrank = init == "mean-cov" and old.dim() == 2 and 0 < n_new <= old.shape[1] and V > old.shape[1]
        cov = init == "mean-cov" and old.dim() == 2 and not lowrank
        mean, second, proj = _moments(old, cov=cov, squares=init == "random", project=n_new if lowrank else 0, g=g)
        stats: dict[str, Any] = {"init": init, "mean": mean, "path": init}
        if init == "random":
            stats["std"] = (second.mean() - mean.mean() ** 2).clamp(min=0).sqrt()  # σ of all old entries
        elif lowrank:
            stats["samples"], stats["path"] = _mean_cov_rows(mean, proj, V), "mean-cov sketch"
        elif cov:
            stats["samples"] = _mean_cov_samples(mean, second, n_new, g)
            stats["path"] = "mean-cov cholesky"
        if "samples" in stats:
            stats["next"] = 0  # samples are handed out in new-id order, block after block
        return stats

    @staticmethod
    def _new_rows(ids: list[int], old: torch.Tensor, pieces: dict[int, list[int]], stats: dict[str, Any], g) -> torch.Tensor:
        """(n, ...) float64 rows for the new ids ``ids`` (see the module docstring for the inits)."""
        n, mean = len(ids), stats["mean"]
        if "std" in stats:
            return torch.randn((n, *old.shape[1:]), generator=g, dtype=torch.float64) * stats["std"]
        if "samples" in stats:
            k = stats["next"]
            stats["next"] = k + n
            return stats["samples"][k : k + n]
        rows = mean.expand(n, *old.shape[1:]).clone()
        if stats["init"] == "compose":
            return _compose_rows(rows, ids, old, pieces)
        return rows
    # -- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "tokembed.vocab_map/1",
            "operation": self.operation,
            "old_size": self.old_size,
            "new_size": self.new_size,
            "old_fingerprint": self.old_fingerprint,
            "new_fingerprint": self.new_fingerprint,
            "pad_to_multiple_of": self.pad_to_multiple_of,
            "old_to_new": self.old_to_new,
            "new_tokens": [_token_dict(t) for t in self.new_tokens],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VocabMap":
        try:
            return cls(
                old_size=int(d["old_size"]),
                new_size=int(d["new_size"]),
                old_to_new=[int(i) for i in d["old_to_new"]],
                new_tokens=[NewToken(int(t["id"]), str(t["token"]), [int(p) for p in t["pieces"]], bool(t["special"]),
                                     str(t.get("intermediate_of", "")), [str(x) for x in t.get("intermediates", [])])
                            for t in d["new_tokens"]],
                old_fingerprint=str(d.get("old_fingerprint", "")),
                new_fingerprint=str(d.get("new_fingerprint", "")),
                pad_to_multiple_of=int(d.get("pad_to_multiple_of", 1)),
                operation=str(d.get("operation", "")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ArtifactError(f"vocab map: missing or malformed field ({e}); the file is not a tokembed vocab_map.json") from None

    def save(self, folder: str | os.PathLike) -> Path:
        return write_json(Path(folder) / MAP_FILE, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "VocabMap":
        p = Path(path)
        return cls.from_dict(read_json(p / MAP_FILE if p.is_dir() else p))

    def summary(self) -> dict[str, int]:
        return {"old_size": self.old_size, "new_size": self.new_size, "kept": self.old_size - len(self.dropped),
                "dropped": len(self.dropped), "added": len(self.new_tokens)}

    def __repr__(self) -> str:
        s = self.summary()
        return f"VocabMap({s['old_size']} -> {s['new_size']}: kept {s['kept']}, dropped {s['dropped']}, added {s['added']})"


def _token_dict(t: NewToken) -> dict[str, Any]:
    """A new token as JSON; the BPE intermediate fields only when set (older maps read back the same)."""
    d: dict[str, Any] = {"id": t.id, "token": t.token, "pieces": t.pieces, "special": t.special}
    if t.intermediate_of:
        d["intermediate_of"] = t.intermediate_of
    if t.intermediates:
        d["intermediates"] = t.intermediates
    return d


#: Rows per chunk when summing statistics of a table: the float64 copy of one chunk (16k × 1024 = 128 MiB)
#: is all that is allocated beyond the table.
CHUNK_ROWS = 16384


def _moments(old: torch.Tensor, *, cov: bool, squares: bool = False, project: int = 0,
             g: torch.Generator | None = None):
    """(mean (...,), second moment or None, projection or None) of the rows ``x`` of ``old`` (V, ...), one chunked pass.

    The second moment is the covariance Cov = E[(x - mean)(x - mean)^T] (D, D) when ``cov``, E[x^2]
    elementwise when ``squares``. With ``project = n > 0`` the pass also draws w ~ N(0, I) of shape (V, n),
    chunk by chunk from ``g``, and returns ``Xc^T w`` (D, n) for the centred rows ``Xc = X - 1 mean^T``.

    Numerics: every chunk is shifted by K, the float32 mean of the first rows, so the float32 sums and
    BLAS products see deviations, not the (often large) common mean; per-chunk results are accumulated in
    float64 and unshifted at the end (``mean = K + E[x - K]``, ``Cov = E[d d^T] - δ δ^T``,
    ``Xc^T w = D^T w - δ (1^T w)^T`` with ``d = x - K``, ``δ = mean - K``). Column sums are float32
    ``sum(0)`` (a cascade sum; a float64 reduction over dim 0 is 10x slower, a matrix-vector product with
    a ones vector loses digits).
    """
    V = old.shape[0]
    flat = old.reshape(V, -1)  # (V, D) (a 1-D table, e.g. a bias, is (V, 1))
    D = flat.shape[1]
    K = flat[: min(V, 1024)].float().mean(0)  # (D,) shift
    s1 = torch.zeros(D, dtype=torch.float64)
    s2 = torch.zeros((D, D) if cov else D, dtype=torch.float64) if cov or squares else None
    P = torch.zeros((D, project), dtype=torch.float64) if project else None
    sw = torch.zeros(project, dtype=torch.float64) if project else None
    buf = torch.empty(min(V, CHUNK_ROWS), D)  # one deviation buffer, reused: no fresh pages per chunk
    for chunk in flat.split(CHUNK_ROWS):
        if squares:
            c = chunk.float()
            s2 += (c * c).sum(0).double()
        d = torch.sub(chunk.float(), K, out=buf[: chunk.shape[0]])  # (chunk, D) deviations from the shift
        s1 += d.sum(0).double()
        if cov:
            s2 += (d.T @ d).double()
        if project:
            w = torch.randn((d.shape[0], project), generator=g)  # (chunk, n)
            P += (d.T @ w).double()
            sw += w.sum(0).double()
    shape = old.shape[1:]
    delta = s1 / V  # (D,) mean - K
    mean = K.double() + delta
    second = None
    if cov:
        second = s2 / V - torch.outer(delta, delta)
    elif squares:
        second = (s2 / V).view(shape)
    proj = P - torch.outer(delta, sw) if project else None  # (D, n) = Xc^T w
    return mean.view(shape), second, proj


def _mean_cov_rows(mean: torch.Tensor, Xcw: torch.Tensor, V: int) -> torch.Tensor:
    """n samples of N(mean, ε·Cov) from the projection ``Xcᵀ w`` (D, n) of one pass, without forming Cov.

    With ``X`` the (V, D) rows, ``Xc = X - 1 meanᵀ`` and ``Cov = Xcᵀ Xc / V``, the (D, n) matrix
    ``sqrt(ε / V) · Xcᵀ w`` for w ~ N(0, I_V×n) has columns ~ N(0, ε·Cov) exactly: O(V·D·n) work instead
    of the O(V·D²) of the covariance and its Cholesky factor (that path is taken when n > D). Unlike the
    Cholesky path, this needs no positive definite Cov: when V > D but Cov is singular (a constant
    column, dependent columns) it samples the degenerate Gaussian (a constant column stays at its mean),
    where transformers falls back to the mean row. V <= D gives the mean, as transformers (the caller checks).
    """
    return mean + (MEAN_COV_EPSILON / V) ** 0.5 * Xcw.T  # (n, D)


def _mean_cov_samples(mean: torch.Tensor, cov: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    """n samples of N(mean, ε·Cov) through the Cholesky factor; the mean when ε·Cov is not positive definite."""
    try:
        L = torch.linalg.cholesky(MEAN_COV_EPSILON * cov)
    except RuntimeError:  # singular (V <= D or constant rows): transformers falls back to the mean too
        return mean.expand(n, -1).clone()
    z = torch.randn((n, mean.shape[0]), generator=g, dtype=torch.float64)
    return mean + z @ L.T


def _copy_kept(block: torch.Tensor, s: torch.Tensor, table: torch.Tensor) -> None:
    """``block[j] = table[s[j]]`` where ``s[j] >= 0``; zeros for new rows and for padding rows past ``len(s)``.

    The kept rows of one block are usually one run of consecutive old ids (add, and every block of an
    identity-like map): then it is one slice copy, else one index gather.
    """
    m = len(s)
    block[m:].zero_()
    keep = (s >= 0).nonzero().squeeze(1)  # positions of kept rows
    if len(keep) < m:
        block[:m][s < 0] = 0
    if not len(keep):
        return
    ks = s[keep]  # their old ids
    j0, j1, i0, i1 = int(keep[0]), int(keep[-1]), int(ks[0]), int(ks[-1])
    if j1 - j0 == len(keep) - 1 and i1 - i0 == len(keep) - 1 and bool((ks[1:] > ks[:-1]).all()):
        block[j0 : j1 + 1].copy_(table[i0 : i1 + 1])  # one run: a slice copy
    else:
        block[keep] = table[ks]


#: new ids composed per gather: bounds the gathered piece rows (float64) to a few MB, not a table fraction
COMPOSE_IDS = 1024


def _compose_rows(rows: torch.Tensor, ids: list[int], old: torch.Tensor, pieces: dict[int, list[int]]) -> torch.Tensor:
    """``rows[k] = mean of old[pieces[ids[k]]]`` for the ids with pieces, :data:`COMPOSE_IDS` ids at a time
    (each slice one gather and one scatter-add, written into ``rows``)."""
    for a in range(0, len(ids), COMPOSE_IDS):
        _compose_slice(rows[a : a + COMPOSE_IDS], ids[a : a + COMPOSE_IDS], old, pieces)
    return rows


def _compose_slice(rows: torch.Tensor, ids: list[int], old: torch.Tensor, pieces: dict[int, list[int]]) -> None:
    flat, seg = [], []
    for k, j in enumerate(ids):
        p = pieces.get(j) or []
        flat += p
        seg += [k] * len(p)
    if not flat:
        return
    seg_t = torch.tensor(seg)
    sums = torch.zeros_like(rows).index_add_(0, seg_t, old[torch.tensor(flat)].double())
    counts = torch.bincount(seg_t, minlength=len(ids))
    has = counts > 0
    rows[has] = sums[has] / counts[has].double().view(-1, *([1] * (rows.dim() - 1)))  # e_new = mean of its pieces' rows


def pieces_of(tok, texts: Sequence[str]) -> list[list[int]]:
    """The ids of each text's ordinary encoding, special and post-processor tokens left out (one batch call)."""
    kw = {"add_special_tokens": False} if hasattr(tok, "add_special_tokens") else {}
    specials = tok.vocab.special_ids
    return [[i for i in ids if i not in specials] for ids in tok.encode_batch(list(texts), **kw)]


def compose_pieces(old_tok, new_tok, new_ids: Sequence[int]) -> list[list[int]]:
    """For each new id, the old ids the old tokenizer splits that token's text into (the compose init)."""
    texts = []
    for j in new_ids:
        token = new_tok.vocab.token(j)
        text = token[2:] if token.startswith("##") else new_tok.decode([j])  # a WordPiece continuation: its text without ##
        texts.append(text or token)
    return pieces_of(old_tok, texts)
