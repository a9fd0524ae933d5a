"""The main job: train and compare a grid of tokenizer kinds × embedding designs under an equal budget.

Unlike ``tokembed train`` (one model, one config), a study trains one small decoder-only
Transformer per (tokenizer kind, embedding design, seed), evaluates each on the same
held-out text, and writes ``results.csv``, ``results.json`` and a self-contained
``report.html`` (see :mod:`tokembed.study_report`) whose recommendations are computed
from the rows.

**Equal budget.** Every run sees the same number of UTF-8 *text bytes* and has the same
non-embedding architecture (D, layers, heads, sequence length, batch). A tokenizer that
packs more bytes into a token needs fewer steps to see those bytes, so

    steps = ceil(budget_bytes / (batch_size · seq_len · bytes_per_token))

with ``bytes_per_token = train_shard.n_bytes / predicted tokens`` measured on the tokenized
training shard of that tokenizer (the rule of :func:`tokembed.training.loop.train` for
``max_bytes``). A byte-level run therefore takes about 3–4× as many steps as a BPE run;
every run sees at least the budget and less than one batch more. Runs are compared by
**bits per byte** on the validation shard, which does not depend on the tokenizer
(``bpb = Σ CE_nats / ln 2 / UTF-8 bytes``).

Every tokenizer kind is trained once per study and cached inside the study folder by a
fingerprint of (kind, V, corpus bytes); runs are cached by a fingerprint of their full
config, so re-running a study only trains what changed. Kinds or designs that this
installation does not provide are skipped with a message, never silently.

>>> cfg = StudyConfig.from_name("quick")
>>> cfg.tokenizers[:2], cfg.designs[:2]
(['byte', 'bytebpe'], ['untied', 'tied'])
>>> steps_for_budget(budget_bytes=65536, batch_size=16, seq_len=64, bytes_per_token=1.0)
64
>>> steps_for_budget(budget_bytes=65536, batch_size=16, seq_len=64, bytes_per_token=3.7)
18
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, TokembedError

__all__ = [
    "StudyConfig",
    "StudyResult",
    "DESIGNS",
    "ALL_KINDS",
    "PRESETS",
    "RESULT_COLUMNS",
    "run_study",
    "steps_for_budget",
    "design_overrides",
    "write_results",
]

#: The tokenizer kinds a default study compares (issue 4), in report order.
ALL_KINDS: list[str] = ["byte", "bytebpe", "unigram", "wordpiece", "morph"]

#: Embedding designs -> ModelConfig fields (``{rank}``/``{cutoffs}`` filled from the study config).
#: ``factorized`` ties its head to the factorized table E = A·B, as ALBERT does (Lan et al. 2020, §3.1),
#: so "factorized vs tied" isolates the factorization; ``adaptive`` is adaptive input + adaptive softmax
#: (Baevski & Auli 2019; Grave et al. 2017).
DESIGNS: dict[str, dict[str, Any]] = {
    "untied": {"embedding": "lookup", "head": "untied"},
    "tied": {"embedding": "lookup", "head": "tied"},
    "tied_bias": {"embedding": "lookup", "head": "tied_bias"},
    "factorized": {"embedding": "factorized", "head": "tied", "rank": "{rank}"},
    "adaptive": {"embedding": "adaptive", "head": "adaptive", "cutoffs": "{cutoffs}"},
}

#: Columns of results.csv, in order (results.json rows have the same keys).
RESULT_COLUMNS: list[str] = [
    "id",
    "tokenizer",
    "design",
    "vocab_size",
    "d_model",
    "seed",
    "embedding_params",
    "head_params",
    "non_embedding_params",
    "total_params",
    "bits_per_byte",
    "perplexity",
    "ece",
    "accuracy",
    "val_loss",
    "train_tokens_per_s",
    "train_bytes_per_s",
    "seconds",
    "steps",
    "tokens_seen",
    "bytes_seen",
    "budget_bytes",
    "bytes_per_token",
    "lossless",
    "final_train_loss",
    "val_tokens",
    "val_bytes",
    "embedding_bytes",
]


@dataclass
class StudyConfig:
    """Everything a study needs besides the corpus; load it with :meth:`from_file` or :meth:`from_name`."""

    tokenizers: list[str] = field(default_factory=lambda: list(ALL_KINDS))  # tokenizer kinds, report order
    designs: list[str] = field(default_factory=lambda: list(DESIGNS))  # embedding designs (keys of DESIGNS)
    vocab_size: dict[str, int | list[int]] = field(default_factory=lambda: {"default": 1024})  # V per kind (a list = one
    #                                            tokenizer per V); "default" for kinds not named; byte is fixed at 259
    d_model: int = 64  # D, the same for every run
    n_layers: int = 2  # Transformer blocks
    n_heads: int = 4  # attention heads
    seq_len: int = 64  # T, tokens per training sequence
    batch_size: int = 16  # B, sequences per step
    budget_bytes: int = 589_824  # text bytes every run sees (the equal budget): 576 KiB
    seeds: list[int] = field(default_factory=lambda: [0, 1])  # one run per seed; 2 seeds let the report judge noise
    rank: int = 16  # r of the factorized design (E ≈ A·B, A ∈ R^{V×r}, B ∈ R^{r×D})
    cutoffs: list[float] = field(default_factory=lambda: [0.0625, 0.25])  # adaptive cutoffs as fractions of V (V/16, V/4 as tokembed.model)
    lr: float = 3e-3  # peak learning rate (AdamW)
    warmup_steps: int = 10  # linear warmup, then cosine decay
    positional: str = "rope"  # positional scheme, the same for every run
    eval_bytes: int = 32_768  # validation text evaluated per run (bytes; converted to tokens per tokenizer)
    corpus_bytes: int | None = 1_048_576  # sample the corpus down to about this many bytes (0 or None = all of it)
    val_fraction: float = 0.05  # document-level validation split
    device: str = "cpu"  # "cpu", "cuda" or "auto"
    workers: int = 0  # runs trained in parallel processes (0 = one per CPU core; 1 = in this process)
    threads: int = 1  # torch threads per run: these models are too small to gain from more, and a busy
    #                   machine makes intra-op threads spin (measured 10-100x slower with 2 threads at load 10)

    def __post_init__(self) -> None:
        self.validate()

    # -- validation --------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the key, the value and the allowed range."""

        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"study config: {key}={getattr(self, key)!r} {why}")

        for key in ("d_model", "n_layers", "n_heads", "seq_len", "batch_size", "budget_bytes", "rank", "eval_bytes", "threads"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(key, "must be a positive integer")
        if self.warmup_steps < 0 or isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int):
            raise bad("warmup_steps", "must be an integer >= 0")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise bad("workers", "must be an integer >= 0 (0 = one per CPU core)")
        if self.d_model % self.n_heads:
            raise bad("d_model", f"must be divisible by n_heads={self.n_heads}")
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or not (0 < self.lr < 1):
            raise bad("lr", "must be a number in (0, 1)")
        if not isinstance(self.val_fraction, (int, float)) or not (0 < self.val_fraction < 0.5):
            raise bad("val_fraction", "must be in (0, 0.5)")
        if self.corpus_bytes is not None and (isinstance(self.corpus_bytes, bool) or not isinstance(self.corpus_bytes, int)
                                              or 0 < self.corpus_bytes < 1024 or self.corpus_bytes < 0):
            raise bad("corpus_bytes", "must be an integer >= 1024, or 0 (or null) for the whole corpus")
        for key in ("tokenizers", "designs", "seeds", "cutoffs"):
            v = getattr(self, key)
            if not isinstance(v, list) or not v:
                raise bad(key, "must be a non-empty list")
        if len(set(self.tokenizers)) != len(self.tokenizers) or not all(isinstance(k, str) for k in self.tokenizers):
            raise bad("tokenizers", "must be distinct kind names, e.g. ['byte', 'bytebpe']")
        for d in self.designs:
            if d not in DESIGNS:
                raise bad("designs", f"names unknown design {d!r}; choose from {', '.join(DESIGNS)}")
        if len(set(self.designs)) != len(self.designs):
            raise bad("designs", "lists a design twice")
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise bad("seeds", "must be distinct integers")
        if not all(isinstance(c, (int, float)) and 0 < c < 1 for c in self.cutoffs) or sorted(self.cutoffs) != self.cutoffs:
            raise bad("cutoffs", "must be increasing fractions of V in (0, 1), e.g. [0.25]")
        if not isinstance(self.vocab_size, dict):
            raise bad("vocab_size", "must be a table kind -> V, e.g. {default = 1024, byte = 259}")
        for k, v in self.vocab_size.items():
            vs = v if isinstance(v, list) and v else [v]
            if any(isinstance(x, bool) or not isinstance(x, int) or x < 16 for x in vs) or len(set(vs)) != len(vs):
                raise ConfigError(f"study config: vocab_size.{k}={v!r} must be an integer >= 16 or a list of distinct ones")
        if self.device not in ("cpu", "cuda", "auto"):
            raise bad("device", "must be 'cpu', 'cuda' or 'auto'")
        if self.positional not in ("sinusoidal", "learned", "rope", "alibi", "none"):
            raise bad("positional", "must be one of sinusoidal, learned, rope, alibi, none")

    # -- derived -----------------------------------------------------------------
    def vocab_for(self, kind: str) -> list[int | None]:
        """Requested vocabulary sizes of a kind (``[None]`` for ``byte``: its V is fixed at 256 + specials).

        >>> StudyConfig(vocab_size={"default": 512, "bytebpe": [256 + 3 + 200, 2048]}).vocab_for("bytebpe")
        [459, 2048]
        """
        if kind == "byte":
            return [None]
        v = self.vocab_size.get(kind, self.vocab_size.get("default", 1024))
        return list(v) if isinstance(v, list) else [v]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # -- constructors ------------------------------------------------------------
    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> "StudyConfig":
        """A preset (``"default"``, ``"quick"``, ``"tiny"``) with optional field overrides."""
        if name not in PRESETS:
            raise ConfigError(f"unknown study preset {name!r}; choose from {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides}, where=f"preset {name!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "study config") -> "StudyConfig":
        """Build from a mapping; an unknown key is a ConfigError naming it and the known keys."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"{where}: expected a table of keys, got {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        d = dict(d)
        preset = d.pop("preset", None)
        if preset is not None:
            if preset not in PRESETS:
                raise ConfigError(f"{where}: preset={preset!r} is unknown; choose from {', '.join(PRESETS)}")
            d = {**PRESETS[preset], **d}
        for k in d:
            if k not in names:
                raise ConfigError(f"{where}: unknown key {k!r}; known keys: {', '.join(names)}, preset")
        if isinstance(d.get("vocab_size"), int) and not isinstance(d.get("vocab_size"), bool):
            d["vocab_size"] = {"default": d["vocab_size"]}
        try:
            return cls(**d)
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}".replace("study config: ", "")) from None

    @classmethod
    def from_file(cls, path: str | Path, *, preset: str | None = None) -> "StudyConfig":
        """Load a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file; keys are the field names.

        The file may sit under a ``[study]`` table and may name a ``preset``; keys it sets override
        the preset's. ``preset`` here is used when the file names none (the CLI's ``--quick``).
        """
        from .config import read_config_file

        p = Path(path)
        data = read_config_file(p, what="study config")
        data = data.get("study", data) if isinstance(data, dict) else data
        if preset is not None and isinstance(data, dict):
            data = {"preset": preset, **data}
        return cls.from_dict(data, where=f"study config {p}")


#: Named presets. ``default`` is ``tokembed study`` with no arguments (the full 5 × 5 grid, 2 seeds: about
#: 3 minutes on an idle 2-core CPU, under 10 with other jobs running); ``quick`` is ``--quick`` (under 2
#: minutes); ``tiny`` is for tests.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "quick": {
        "seeds": [0],
        "tokenizers": ["byte", "bytebpe", "unigram"],
        "designs": ["untied", "tied", "factorized"],
        "vocab_size": {"default": 512},
        "d_model": 32,
        "seq_len": 64,
        "batch_size": 8,
        "budget_bytes": 98_304,
        "eval_bytes": 16_384,
        "corpus_bytes": 262_144,
        "rank": 8,
        "warmup_steps": 4,
    },
    "tiny": {
        "seeds": [0],
        "tokenizers": ["byte"],
        "workers": 1,
        "designs": ["untied", "tied"],
        "d_model": 16,
        "n_heads": 2,
        "n_layers": 1,
        "seq_len": 16,
        "batch_size": 4,
        "budget_bytes": 2048,
        "eval_bytes": 2048,
        "corpus_bytes": 32_768,
        "rank": 4,
        "warmup_steps": 2,
    },
}


def steps_for_budget(*, budget_bytes: int, batch_size: int, seq_len: int, bytes_per_token: float) -> int:
    """Optimizer steps that make a run see ``budget_bytes`` of text (at least 1).

    ``steps = ceil(budget_bytes / (B · T · bytes_per_token))``, the same rule as ``TrainConfig.max_bytes``:
    the bytes seen are at least the budget and less than one batch (B · T · bytes_per_token) more.
    """
    per_step = batch_size * seq_len * bytes_per_token
    return max(1, math.ceil(budget_bytes / per_step))


def design_overrides(design: str, config: StudyConfig, vocab_size: int) -> dict[str, Any]:
    """ModelConfig fields of ``design`` with ``{rank}``/``{cutoffs}`` filled in for this V.

    >>> design_overrides("adaptive", StudyConfig(cutoffs=[0.25, 0.5]), 1000)
    {'embedding': 'adaptive', 'head': 'adaptive', 'cutoffs': [250, 500]}
    >>> design_overrides("factorized", StudyConfig(rank=8), 1000)
    {'embedding': 'factorized', 'head': 'tied', 'rank': 8}
    """
    out: dict[str, Any] = {}
    for k, v in DESIGNS[design].items():
        if v == "{rank}":
            v = config.rank
        elif v == "{cutoffs}":
            v = sorted({max(1, min(vocab_size - 1, int(c * vocab_size))) for c in config.cutoffs})
        out[k] = v
    return out


# -- the run ---------------------------------------------------------------------


@dataclass
class StudyResult:
    """What :func:`run_study` produced: the rows, skipped grid cells and the files written."""

    out_dir: Path
    rows: list[dict[str, Any]]  # one per run, keys RESULT_COLUMNS
    details: dict[str, dict[str, Any]]  # run id -> history, reliability, band_stats, band_loss
    skipped: list[dict[str, str]]  # {"tokenizer"|"design": name, "reason": ...}
    config: StudyConfig
    corpus: dict[str, Any]  # description of the text used
    seconds: float
    report: Path | None = None
    notes: list[str] = field(default_factory=list)  # caveats the report must show (e.g. lossy tokenizers)


def _log_default(msg: str) -> None:
    print(msg, flush=True)


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _prepare_corpus(corpus, config: StudyConfig, out_dir: Path, log) -> tuple[Any, dict[str, Any]]:
    """The text of the study: the corpus itself, or a seeded document sample of about ``corpus_bytes``.

    The sample keeps whole documents (so the train/validation split stays document-level) and is
    written to ``DIR/data/corpus.txt``, which makes the study reproducible from its folder alone.
    Language tags (``LANG=PATH``) do not survive sampling; pass ``corpus_bytes = 0`` to keep them.
    """
    from .artifacts import atomic_write_text
    from .corpus import Corpus

    total = sum(corpus.byte_sizes().values())
    sources = [str(f) for f in corpus.files]
    if not config.corpus_bytes or total <= config.corpus_bytes:
        return corpus, {"sources": sources, "bytes": total, "sampled": False}
    path = out_dir / "data" / "corpus.txt"
    rng = random.Random(0)
    keep = config.corpus_bytes / total
    parts: list[str] = []
    n = 0
    for doc in corpus.documents():
        if rng.random() < keep:
            parts.append(doc)
            n += len(doc.encode("utf-8")) + 1
    if len(parts) < 2:  # a few huge documents: sampling by document would leave (almost) nothing
        log(f"corpus: {total:,} bytes, too few documents (blank-line separated blocks) to sample; using all of it")
        return corpus, {"sources": sources, "bytes": total, "sampled": False}
    text = "\n".join(parts)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)
    log(f"corpus: {total:,} bytes in {len(sources)} file(s); sampled {len(parts):,} documents = {n:,} bytes -> {path}")
    return Corpus([str(path)]), {"sources": sources, "bytes": n, "sampled": True, "sampled_from_bytes": total, "path": str(path)}


def _available_kinds() -> set[str]:
    from .tokenizers import KINDS

    return set(KINDS)


def _tokenizer(kind: str, V: int | None, corpus, corpus_sha: str, out_dir: Path, log):
    """Train ``kind`` at ``V`` once per study: cached in ``DIR/tokenizers/<kind>-<key>`` by (kind, V, corpus)."""
    from .tokenizers import load_tokenizer, train_tokenizer

    key = _sha({"kind": kind, "V": V, "corpus": corpus_sha})[:12]
    folder = out_dir / "tokenizers" / f"{kind}-{key}"
    if (folder / "tokembed.json").is_file():
        tok = load_tokenizer(folder)
        log(f"tokenizer {kind}: cached, V={tok.vocab_size} ({folder})")
        return tok, folder
    t0 = time.perf_counter()
    tok = train_tokenizer(kind, corpus, V)
    tok.save(folder)
    log(f"tokenizer {kind}: trained V={tok.vocab_size} in {time.perf_counter() - t0:.1f}s")
    return tok, folder


def _shards(tok, corpus, corpus_sha: str, config: StudyConfig, out_dir: Path):
    from .training.shards import build_shards, load_shards

    folder = out_dir / "shards" / f"{tok.kind}-{_sha({'tok': tok.fingerprint, 'corpus': corpus_sha, 'val': config.val_fraction})[:12]}"
    if folder.is_dir():
        try:
            return load_shards(folder, tokenizer=tok), folder
        except TokembedError:
            pass  # stale or partial: rebuild below
    return build_shards(tok, corpus, folder, val_fraction=config.val_fraction, seed=0), folder


def _bytes_per_token(shard) -> float:
    """UTF-8 bytes per predicted token of a shard (``Shard.bytes_per_token``: eos separators count as tokens)."""
    n_pred = int(len(shard.tokens)) - 1
    return shard.n_bytes / n_pred if n_pred > 0 else float("nan")


def run_study(
    config: StudyConfig | None = None,
    corpus=None,
    out_dir: str | Path = "study",
    *,
    log: Callable[[str], None] | None = None,
    write_report: bool = True,
) -> StudyResult:
    """Train and evaluate the grid ``config.tokenizers × config.designs × config.seeds`` on ``corpus``.

    Args:
        config: the study configuration (default: ``StudyConfig()``, the default study).
        corpus: a :class:`~tokembed.corpus.Corpus` (default: the built-in corpus).
        out_dir: folder for tokenizers, shards, runs, results and ``report.html``.
        log: progress printer (default: ``print``).
        write_report: also write ``report.html`` (needs matplotlib).
    """
    from .corpus import Corpus

    t_start = time.perf_counter()
    user_log = log or _log_default

    def log(msg: str) -> None:
        user_log(f"[{time.perf_counter() - t_start:5.0f}s] {msg}")

    config = config or StudyConfig()
    config.validate()
    corpus = corpus if corpus is not None else Corpus()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output {out} exists and is not a folder; pass -o with a new or existing folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the output folder {out} ({e.strerror}); pass -o with a writable folder") from None

    try:
        from .model import ModelConfig, build_model
        from .training.config import TrainConfig
    except ImportError as e:
        raise TokembedError(f"the study needs tokembed's model/train/evaluate modules, which this install lacks ({e})") from e

    corpus, corpus_info = _prepare_corpus(corpus, config, out, log)
    corpus_sha = _sha([_file_sha(f) for f in corpus.files])
    skipped: list[dict[str, str]] = []
    notes: list[str] = []
    kinds = []
    available = _available_kinds()
    for kind in config.tokenizers:
        if kind in available:
            kinds.append(kind)
        else:
            import difflib

            close = difflib.get_close_matches(kind, sorted(available), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            reason = f"tokenizer kind {kind!r} is not available in this installation (have: {', '.join(sorted(available))}){hint}"
            log(f"SKIP {reason}")
            skipped.append({"tokenizer": kind, "reason": reason})

    # Which designs does this installation's model support? Probe with a tiny model, once per design.
    designs = []
    for d in config.designs:
        probe = ModelConfig(vocab_size=300, d_model=config.d_model, n_layers=1, n_heads=config.n_heads,
                            max_seq_len=config.seq_len, positional=config.positional, **design_overrides(d, config, 300))
        try:
            build_model(probe, seed=0)
        except (TokembedError, NotImplementedError, ValueError, KeyError) as e:
            reason = f"design {d!r} is not available in this installation's model ({type(e).__name__}: {e})"
            log(f"SKIP {reason}")
            skipped.append({"design": d, "reason": reason})
            continue
        designs.append(d)

    n_tok = sum(len(config.vocab_for(k)) for k in kinds)
    n_runs = n_tok * len(designs) * len(config.seeds)
    log(f"study: {n_tok} tokenizer(s) of {len(kinds)} kind(s) × {len(designs)} design(s) × {len(config.seeds)} seed(s) = {n_runs} runs, "
        f"budget {config.budget_bytes:,} text bytes each -> {out}")

    specs: list[_RunSpec] = []
    for kind, V in ((k, v) for k in kinds for v in config.vocab_for(k)):
        tok, tok_dir = _tokenizer(kind, V, corpus, corpus_sha, out, log)
        shards, shard_dir = _shards(tok, corpus, corpus_sha, config, out)
        bpt = _bytes_per_token(shards["train"])
        val_bpt = _bytes_per_token(shards["val"])
        steps = steps_for_budget(budget_bytes=config.budget_bytes, batch_size=config.batch_size,
                                 seq_len=config.seq_len, bytes_per_token=bpt)
        eval_tokens = max(config.seq_len + 1, int(config.eval_bytes / val_bpt))
        log(f"tokenizer {kind} V={tok.vocab_size}: {bpt:.2f} bytes/token on the train shard -> {steps} steps of "
            f"{config.batch_size}×{config.seq_len} tokens")
        if not getattr(tok, "lossless", True):
            warn = (f"tokenizer {kind} is lossy (decode(encode(x)) != x: it normalizes or drops characters), so it "
                    f"does not model every byte and its bits per byte are optimistic")
            if warn not in notes:
                log(f"NOTE {warn}")
                notes.append(warn)
        for design in designs:
            overrides = design_overrides(design, config, tok.vocab_size)
            for seed in config.seeds:
                run_id = f"{kind}-{design}-V{tok.vocab_size}-s{seed}"
                mc = ModelConfig(vocab_size=tok.vocab_size, d_model=config.d_model, n_layers=config.n_layers,
                                 n_heads=config.n_heads, max_seq_len=config.seq_len, positional=config.positional,
                                 **overrides)
                tc = TrainConfig(model=mc, seq_len=config.seq_len, batch_size=config.batch_size,
                                 max_bytes=config.budget_bytes, lr=config.lr,
                                 warmup_steps=min(config.warmup_steps, max(0, steps - 1)), seed=seed, device=config.device)
                key = _sha({"train": dataclasses.asdict(tc), "tok": tok.fingerprint, "corpus": corpus_sha,
                            "eval_tokens": eval_tokens, "budget": config.budget_bytes})
                specs.append(_RunSpec(run_id=run_id, kind=kind, design=design, seed=seed, train=tc, study=config,
                                      tokenizer_dir=tok_dir, shard_dir=shard_dir, run_dir=out / "runs" / run_id,
                                      key=key, steps=steps, bytes_per_token=bpt, eval_tokens=eval_tokens))

    results: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    todo = []
    for i, spec in enumerate(specs, 1):
        cached = _load_cached_run(spec.run_dir, spec.key)
        if cached is not None:
            results[spec.run_id] = cached
            log(f"[{i}/{len(specs)}] {spec.run_id}: cached, bpb {cached[0]['bits_per_byte']:.4f}")
        else:
            todo.append(spec)
    workers = min(config.workers or (os.cpu_count() or 1), len(todo)) if todo else 0
    if todo:
        log(f"training {len(todo)} run(s) in {workers} process(es), {config.threads} torch thread(s) each")

    n_done = len(results)

    def done(spec: _RunSpec, run: Callable[[], tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Record one finished run; a user-level failure (e.g. a non-finite loss) skips that run, not the study."""
        nonlocal n_done
        n_done += 1
        try:
            results[spec.run_id] = run()
        except TokembedError as e:
            reason = f"run {spec.run_id} failed: {type(e).__name__}: {e}"
            log(f"[{n_done}/{len(specs)}] FAILED {reason}")
            skipped.append({"run": spec.run_id, "reason": reason})
            return
        row = results[spec.run_id][0]
        log(f"[{n_done}/{len(specs)}] {spec.run_id}: {spec.steps} steps, bpb {row['bits_per_byte']:.4f}, "
            f"{row['total_params']:,} params, {row['seconds']:.1f}s train")

    if workers <= 1:
        for spec in todo:
            log(f"{spec.run_id}: training {spec.steps} steps ...")
            done(spec, lambda spec=spec: _execute(spec))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(_execute, spec): spec for spec in todo}
            for fut in as_completed(futures):
                done(futures[fut], fut.result)
    rows = [results[s.run_id][0] for s in specs if s.run_id in results]
    details = {s.run_id: results[s.run_id][1] for s in specs if s.run_id in results}

    result = StudyResult(out_dir=out, rows=rows, details=details, skipped=skipped, config=config,
                         corpus=corpus_info, seconds=time.perf_counter() - t_start, notes=notes)
    write_results(result)
    if write_report:
        from .study_report import write_report as _write_report

        result.report = _write_report(result)
    result.seconds = time.perf_counter() - t_start
    return result


@dataclass
class _RunSpec:
    """One grid cell, everything a (possibly separate) process needs to train and evaluate it."""

    run_id: str
    kind: str
    design: str
    seed: int
    train: Any  # TrainConfig
    study: StudyConfig
    tokenizer_dir: Path
    shard_dir: Path
    run_dir: Path
    key: str  # fingerprint of everything that determines the result (the run cache key)
    steps: int
    bytes_per_token: float
    eval_tokens: int


def _execute(spec: _RunSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train and evaluate one run (in this process or a worker) and save ``runs/<id>/result.json``."""
    import torch

    from .device import resolve_device
    from .training.evaluate import evaluate
    from .training.shards import load_shards
    from .tokenizers import load_tokenizer
    from .training.checkpoint import load_checkpoint
    from .training.loop import train

    threads = torch.get_num_threads()
    torch.set_num_threads(spec.study.threads)
    try:
        tok = load_tokenizer(spec.tokenizer_dir)
        shards = load_shards(spec.shard_dir, tokenizer=tok)
        res = train(spec.train, tokenizer=tok, shards=shards, out_dir=spec.run_dir, progress=False)
        device = str(resolve_device(spec.study.device))  # evaluate where it trained
        model, _, _ = load_checkpoint(res.checkpoint, tokenizer=tok, device=device)
        ev = evaluate(model, tok, shards["val"], seq_len=spec.study.seq_len, batch_size=spec.study.batch_size,
                      max_tokens=spec.eval_tokens, device=device)
    finally:
        torch.set_num_threads(threads)
    row, det = _row(spec.run_id, spec.kind, spec.design, spec.seed, tok, spec.study, spec.steps, spec.bytes_per_token, res, ev)
    _save_run(spec.run_dir, spec.key, row, det)
    return row, det


def _jsonable(x: Any) -> Any:
    """Plain JSON values from dataclasses / numpy / torch scalars (for the details of a run)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return _jsonable(dataclasses.asdict(x))
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


def _row(run_id, kind, design, seed, tok, config, steps, bpt, res, ev) -> tuple[dict[str, Any], dict[str, Any]]:
    params = dict(ev.params)
    emb = int(params.get("embedding", 0))
    head = int(params.get("head", 0))
    total = int(params.get("total", 0))
    rest = int(params.get("rest", total - emb - head))
    hist = list(res.history or [])
    last = hist[-1] if hist else {}
    steps = int(getattr(res, "steps", 0) or steps)
    tokens_seen = int(getattr(res, "tokens", 0) or steps * config.batch_size * config.seq_len)
    bytes_seen = int(round(getattr(res, "bytes", 0) or tokens_seen * bpt))
    row = {
        "id": run_id,
        "tokenizer": kind,
        "design": design,
        "vocab_size": tok.vocab_size,
        "d_model": config.d_model,
        "seed": seed,
        "embedding_params": emb,
        "head_params": head,
        "non_embedding_params": rest,
        "total_params": total,
        "bits_per_byte": float(ev.bits_per_byte),
        "perplexity": float(ev.perplexity),
        "ece": float(ev.ece),
        "accuracy": float(getattr(ev, "accuracy", float("nan"))),
        "val_loss": float(ev.loss),
        "train_tokens_per_s": float(res.tokens_per_s),
        "train_bytes_per_s": float(res.tokens_per_s) * bpt,
        "seconds": float(res.seconds),
        "steps": steps,
        "tokens_seen": tokens_seen,
        "bytes_seen": bytes_seen,
        "budget_bytes": config.budget_bytes,
        "bytes_per_token": bpt,
        "lossless": bool(getattr(tok, "lossless", True)),
        "final_train_loss": float(last["loss"]) if "loss" in last else float("nan"),
        "val_tokens": int(ev.n_tokens),
        "val_bytes": int(ev.n_bytes),
        "embedding_bytes": int(ev.embedding_bytes),
    }
    det = {
        "history": _jsonable(hist),
        "reliability": _jsonable(ev.reliability),
        "band_stats": _jsonable(res.band_stats),
        "band_loss": _jsonable(ev.band_loss),
    }
    return row, det


def _save_run(run_dir: Path, key: str, row: dict, det: dict) -> None:
    from .artifacts import write_json

    write_json(run_dir / "result.json", {"key": key, "row": _jsonable(row), "details": det})


def _load_cached_run(run_dir: Path, key: str):
    p = run_dir / "result.json"
    if not p.is_file():
        return None
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if d.get("key") != key or set(d.get("row", {})) != set(RESULT_COLUMNS):
        return None
    row = {k: (float("nan") if v is None else v) for k, v in d["row"].items()}
    return row, d.get("details", {})


def write_results(result: StudyResult) -> tuple[Path, Path]:
    """Write ``results.csv`` (RESULT_COLUMNS) and ``results.json`` (rows + config + skipped + details)."""
    from .artifacts import atomic_write_text, write_json

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in result.rows:
        w.writerow({k: r.get(k) for k in RESULT_COLUMNS})
    csv_path = atomic_write_text(result.out_dir / "results.csv", buf.getvalue())
    json_path = write_json(
        result.out_dir / "results.json",
        {
            "columns": RESULT_COLUMNS,
            "rows": _jsonable(result.rows),
            "skipped": result.skipped,
            "notes": result.notes,
            "config": result.config.to_dict(),
            "corpus": result.corpus,
            "seconds": result.seconds,
            "details": result.details,
            "machine": _machine(),
        },
    )
    return csv_path, json_path


def _machine() -> dict[str, Any]:
    import os
    import platform

    info: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    if "torch" in sys.modules:
        info["torch"] = sys.modules["torch"].__version__
    return info

