"""The main job: train and compare a grid of tokenizer kinds × embedding designs under an equal budget.

Unlike ``tokembed train`` (one model, one config), a study trains one small decoder-only
Transformer per (tokenizer kind, embedding design, seed) through the same pipeline
(:mod:`tokembed.training.pipeline`), evaluates each on the same held-out text, and writes
``results.csv``, ``results.json`` and a self-contained ``report.html``
(:mod:`tokembed.study.report`) whose recommendations are computed from the rows. What the
grid is and the equal-budget rule are :mod:`tokembed.study.config`. Runs are compared by
**bits per byte** on the validation shard, which does not depend on the tokenizer
(``bpb = Σ CE_nats / ln 2 / UTF-8 bytes``).

Every tokenizer kind is trained once per study and cached inside the study folder by a
fingerprint of (kind, V, corpus bytes); runs are cached by a fingerprint of their full
config, so re-running a study only trains what changed. Kinds or designs that this
installation does not provide are skipped with a message, never silently.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import hashlib
import io
import json
import math
import multiprocessing
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..artifacts import atomic_write_text, write_json
from ..corpus import Corpus
from ..errors import ConfigError, DependencyError, EmptyCorpusError, NonFiniteError, TokembedError, VocabSizeError
from ..model import ModelConfig, build_model
from ..tokenizers import KINDS, load_tokenizer
from ..training.config import TrainConfig
from ..training.pipeline import prepare_tokenizer, train_and_evaluate
from ..training.shards import build_shards, load_shards
from .config import StudyConfig, design_overrides, steps_for_budget
from .report import write_report as write_html_report


__all__ = ["StudyResult", "StudyRunError", "RESULT_COLUMNS", "SKIP_ERRORS", "run_study", "write_results"]

#: The declared reasons to skip a grid cell instead of stopping the study: an engine or optional
#: dependency this installation lacks, a vocab size the corpus cannot fill, a run whose loss or
#: weights became non-finite (a result about that design, shown in the report).
SKIP_ERRORS: tuple[type[Exception], ...] = (DependencyError, VocabSizeError, NonFiniteError)


class StudyRunError(TokembedError):
    """A run of the study failed for a reason that is not a declared skip; the message names the run."""

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
    Language tags (``LANG=PATH``) survive sampling: every language keeps the same share of its
    documents, written to ``DIR/data/<LANG>.txt``; a language left without a document is an error.
    """
    total = sum(corpus.byte_sizes().values())
    sources = [str(f) for f in corpus.files]
    if not config.corpus_bytes or total <= config.corpus_bytes:
        return corpus, {"sources": sources, "bytes": total, "sampled": False}
    rng = random.Random(0)
    keep = config.corpus_bytes / total
    langs: list[str | None] = list(corpus.languages) or [None]
    parts: dict[str | None, list[str]] = {lang: [] for lang in langs}
    sizes: dict[str | None, int] = dict.fromkeys(langs, 0)
    for lang in langs:  # untagged: one pass over every document, as before
        for doc in corpus.documents(lang):
            if rng.random() < keep:
                parts[lang].append(doc)
                sizes[lang] += len(doc.encode("utf-8")) + 1
    n = sum(sizes.values())
    if sum(len(p) for p in parts.values()) < 2:  # a few huge documents: sampling by document would leave (almost) nothing
        log(f"corpus: {total:,} bytes, too few documents (blank-line separated blocks) to sample; using all of it")
        return corpus, {"sources": sources, "bytes": total, "sampled": False}
    empty = [lang for lang in langs if lang is not None and not parts[lang]]
    if empty:
        raise EmptyCorpusError(
            f"language {empty[0]!r} has no text after sampling the corpus to corpus_bytes={config.corpus_bytes:,} "
            f"(every language keeps {keep:.2%} of its documents); pass more text for it or a larger corpus_bytes",
            param="corpus_bytes",
        )
    specs = []
    for lang in langs:
        path = out_dir / "data" / (f"{lang}.txt" if lang is not None else "corpus.txt")
        text = "\n".join(parts[lang])
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)
        specs.append(str(path) if lang is None else f"{lang}={path}")
    where = out_dir / "data"
    log(f"corpus: {total:,} bytes in {len(sources)} file(s); sampled {sum(len(p) for p in parts.values()):,} documents "
        f"= {n:,} bytes -> {specs[0] if langs == [None] else where}")
    info = {"sources": sources, "bytes": n, "sampled": True, "sampled_from_bytes": total,
            "path": specs[0] if langs == [None] else str(where)}
    if langs != [None]:
        info["languages"] = {lang: sizes[lang] for lang in langs}
    return Corpus(specs), info


def _tokenizer(kind: str, V: int | None, corpus, corpus_sha: str, out_dir: Path, log):
    """Train ``kind`` at ``V`` once per study: cached in ``DIR/tokenizers/<kind>-<key>`` by (kind, V, corpus)."""
    key = _sha({"kind": kind, "V": V, "corpus": corpus_sha})[:12]
    folder = out_dir / "tokenizers" / f"{kind}-{key}"
    if (folder / "tokembed.json").is_file():
        tok = load_tokenizer(folder)
        log(f"tokenizer {kind}: cached, V={tok.vocab_size} ({folder})")
        return tok, folder
    t0 = time.perf_counter()
    tok = prepare_tokenizer(kind, corpus, vocab_size=V)
    tok.save(folder)
    log(f"tokenizer {kind}: trained V={tok.vocab_size} in {time.perf_counter() - t0:.1f}s")
    return tok, folder


def _shards(tok, corpus, corpus_sha: str, config: StudyConfig, out_dir: Path):
    folder = out_dir / "shards" / f"{tok.kind}-{_sha({'tok': tok.fingerprint, 'corpus': corpus_sha, 'val': config.val_fraction})[:12]}"
    if folder.is_dir():
        try:
            return load_shards(folder, tokenizer=tok), folder
        except TokembedError:
            pass  # stale or partial: rebuild below
    return build_shards(tok, corpus, folder, val_fraction=config.val_fraction, seed=0), folder


def run_study(
    config: StudyConfig | None = None,
    corpus=None,
    out_dir: str | Path = "study",
    *,
    log: Callable[[str], None] | None = None,
    write_report: bool = True,
) -> StudyResult:
    """Train and evaluate the grid ``config.tokenizers × config.designs × config.seeds`` on ``corpus``.

    A grid cell is skipped only for a declared reason (:data:`SKIP_ERRORS`: a tokenizer kind or
    engine this installation lacks, a vocab size the corpus cannot fill, a run that diverged); the
    reason is logged and kept in ``StudyResult.skipped``. Any other exception stops the study and
    names the run.

    Args:
        config: the study configuration (default: ``StudyConfig()``, the default study).
        corpus: a :class:`~tokembed.corpus.Corpus` (default: the built-in corpus).
        out_dir: folder for tokenizers, shards, runs, results and ``report.html``.
        log: progress printer (default: ``print``).
        write_report: also write ``report.html`` (needs matplotlib).
    """
    t_start = time.perf_counter()
    user_log = log or _log_default

    def log(msg: str) -> None:
        user_log(f"[{time.perf_counter() - t_start:5.0f}s] {msg}")

    config = config or StudyConfig()
    config.validate()
    out = _output_folder(out_dir)
    corpus, corpus_info = _prepare_corpus(corpus if corpus is not None else Corpus(), config, out, log)
    skipped: list[dict[str, str]] = []
    notes: list[str] = []
    kinds = _available_kinds(config, log, skipped)
    designs = _buildable_designs(config, log, skipped)
    n_tok = sum(len(config.vocab_for(k)) for k in kinds)
    log(f"study: {n_tok} tokenizer(s) of {len(kinds)} kind(s) × {len(designs)} design(s) × {len(config.seeds)} seed(s) "
        f"= {n_tok * len(designs) * len(config.seeds)} runs, budget {config.budget_bytes:,} text bytes each -> {out}")
    specs = _plan_runs(config, kinds, designs, corpus, out, log, skipped, notes)
    results = _run_all(specs, config, log, skipped)
    rows = [results[s.run_id][0] for s in specs if s.run_id in results]
    details = {s.run_id: results[s.run_id][1] for s in specs if s.run_id in results}
    result = StudyResult(out_dir=out, rows=rows, details=details, skipped=skipped, config=config,
                         corpus=corpus_info, seconds=time.perf_counter() - t_start, notes=notes)
    write_results(result)
    if write_report:
        result.report = write_html_report(result)
    result.seconds = time.perf_counter() - t_start
    return result


def _output_folder(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output {out} exists and is not a folder; pass -o with a new or existing folder", param="out_dir")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the output folder {out} ({e.strerror}); pass -o with a writable folder",
                          param="out_dir") from None
    return out


def _available_kinds(config: StudyConfig, log, skipped: list[dict[str, str]]) -> list[str]:
    """The configured tokenizer kinds this installation has; the others are skipped (with a close match)."""
    kinds = []
    for kind in config.tokenizers:
        if kind in KINDS:
            kinds.append(kind)
            continue
        close = difflib.get_close_matches(kind, sorted(KINDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        reason = f"tokenizer kind {kind!r} is not available in this installation (have: {', '.join(sorted(KINDS))}){hint}"
        log(f"SKIP {reason}")
        skipped.append({"tokenizer": kind, "reason": reason})
    return kinds


def _buildable_designs(config: StudyConfig, log, skipped: list[dict[str, str]]) -> list[str]:
    """The configured designs, each probed once with a tiny model; one that needs a missing dependency is skipped."""
    designs = []
    for d in config.designs:
        probe = ModelConfig(vocab_size=300, d_model=config.d_model, n_layers=1, n_heads=config.n_heads,
                            max_seq_len=config.seq_len, positional=config.positional, **design_overrides(d, config, 300))
        try:
            build_model(probe, seed=0)
        except DependencyError as e:
            reason = f"design {d!r} is not available in this installation ({e})"
            log(f"SKIP {reason}")
            skipped.append({"design": d, "reason": reason})
            continue
        designs.append(d)
    return designs


def _plan_runs(config: StudyConfig, kinds, designs, corpus, out: Path, log, skipped, notes) -> list[_RunSpec]:
    """One :class:`_RunSpec` per (tokenizer, design, seed): tokenizers trained and shards built once each."""
    corpus_sha = _sha([_file_sha(f) for f in corpus.files])
    specs: list[_RunSpec] = []
    for kind, V in ((k, v) for k in kinds for v in config.vocab_for(k)):
        try:
            tok, tok_dir = _tokenizer(kind, V, corpus, corpus_sha, out, log)
        except SKIP_ERRORS as e:
            reason = f"tokenizer {kind} V={V}: {type(e).__name__}: {e}"
            log(f"SKIP {reason}")
            skipped.append({"tokenizer": kind, "reason": reason})
            continue
        shards, shard_dir = _shards(tok, corpus, corpus_sha, config, out)
        bpt = shards["train"].bytes_per_token
        steps = steps_for_budget(budget_bytes=config.budget_bytes, batch_size=config.batch_size,
                                 seq_len=config.seq_len, bytes_per_token=bpt)
        eval_tokens = max(config.seq_len + 1, int(config.eval_bytes / shards["val"].bytes_per_token))
        log(f"tokenizer {kind} V={tok.vocab_size}: {bpt:.2f} bytes/token on the train shard -> {steps} steps of "
            f"{config.batch_size}×{config.seq_len} tokens")
        _note_lossy(tok, kind, log, notes)
        for design in designs:
            for seed in config.seeds:
                specs.append(_spec(config, kind, design, seed, tok, tok_dir, shard_dir, out, corpus_sha,
                                   steps=steps, bytes_per_token=bpt, eval_tokens=eval_tokens))
    return specs


def _note_lossy(tok, kind: str, log, notes: list[str]) -> None:
    if getattr(tok, "lossless", True):
        return
    warn = (f"tokenizer {kind} is lossy (decode(encode(x)) != x: it normalizes or drops characters), so it "
            f"does not model every byte and its bits per byte are optimistic")
    if warn not in notes:
        log(f"NOTE {warn}")
        notes.append(warn)


def _spec(config: StudyConfig, kind, design, seed, tok, tok_dir, shard_dir, out: Path, corpus_sha: str, *,
          steps: int, bytes_per_token: float, eval_tokens: int) -> _RunSpec:
    run_id = f"{kind}-{design}-V{tok.vocab_size}-s{seed}"
    mc = ModelConfig(vocab_size=tok.vocab_size, d_model=config.d_model, n_layers=config.n_layers,
                     n_heads=config.n_heads, max_seq_len=config.seq_len, positional=config.positional,
                     **design_overrides(design, config, tok.vocab_size))
    tc = TrainConfig(model=mc, seq_len=config.seq_len, batch_size=config.batch_size,
                     max_bytes=config.budget_bytes, lr=config.lr,
                     warmup_steps=min(config.warmup_steps, max(0, steps - 1)), seed=seed, device=config.device)
    key = _sha({"train": dataclasses.asdict(tc), "tok": tok.fingerprint, "corpus": corpus_sha,
                "eval_tokens": eval_tokens, "budget": config.budget_bytes})
    return _RunSpec(run_id=run_id, kind=kind, design=design, seed=seed, train=tc, study=config,
                    tokenizer_dir=tok_dir, shard_dir=shard_dir, run_dir=out / "runs" / run_id,
                    key=key, steps=steps, bytes_per_token=bytes_per_token, eval_tokens=eval_tokens)


def _run_all(specs: list[_RunSpec], config: StudyConfig, log, skipped) -> dict[str, tuple[dict, dict]]:
    """Rows and details by run id: cached runs read back, the others trained (in worker processes when
    ``config.workers`` allows). A run that fails for a declared reason is skipped; anything else stops here."""
    results: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    todo = []
    for i, spec in enumerate(specs, 1):
        cached = _load_cached_run(spec.run_dir, spec.key)
        if cached is not None:
            results[spec.run_id] = cached
            log(f"[{i}/{len(specs)}] {spec.run_id}: cached, bpb {cached[0]['bits_per_byte']:.4f}")
        else:
            todo.append(spec)
    if not todo:
        return results
    workers = min(config.workers or (os.cpu_count() or 1), len(todo))
    log(f"training {len(todo)} run(s) in {workers} process(es), {config.threads} torch thread(s) each")
    n_done = len(results)

    def done(spec: _RunSpec, run: Callable[[], tuple[dict[str, Any], dict[str, Any]]]) -> None:
        nonlocal n_done
        n_done += 1
        try:
            results[spec.run_id] = run()
        except SKIP_ERRORS as e:
            reason = f"run {spec.run_id} failed: {type(e).__name__}: {e}"
            log(f"[{n_done}/{len(specs)}] FAILED {reason}")
            skipped.append({"run": spec.run_id, "reason": reason})
            return
        except Exception as e:
            raise _naming_the_run(e, spec.run_id)
        row = results[spec.run_id][0]
        log(f"[{n_done}/{len(specs)}] {spec.run_id}: {spec.steps} steps, bpb {row['bits_per_byte']:.4f}, "
            f"{row['total_params']:,} params, {row['seconds']:.1f}s train")

    if workers <= 1:
        for spec in todo:
            log(f"{spec.run_id}: training {spec.steps} steps ...")
            done(spec, lambda spec=spec: _execute(spec))
        return results
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(_execute, spec): spec for spec in todo}
        try:
            for fut in as_completed(futures):
                done(futures[fut], fut.result)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # do not train the rest of a study that has failed
            raise
    return results


def _naming_the_run(e: Exception, run_id: str) -> Exception:
    """``e`` with the run named: a user error becomes a :class:`StudyRunError` (one line in the CLI),
    a bug keeps its type and traceback with a note."""
    if isinstance(e, TokembedError):
        err = StudyRunError(f"study run {run_id} failed: {type(e).__name__}: {e}", param=e.param)
        err.__cause__ = e
        return err
    if hasattr(e, "add_note"):  # Python >= 3.11
        e.add_note(f"in study run {run_id}")
    return e


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
    threads = torch.get_num_threads()
    torch.set_num_threads(spec.study.threads)
    try:
        tok = load_tokenizer(spec.tokenizer_dir)
        shards = load_shards(spec.shard_dir, tokenizer=tok)
        run = train_and_evaluate(spec.train, tokenizer=tok, shards=shards, out_dir=spec.run_dir, progress=False,
                                 eval_tokens=spec.eval_tokens)
    finally:
        torch.set_num_threads(threads)
    row, det = _row(spec.run_id, spec.kind, spec.design, spec.seed, tok, spec.study, spec.steps, spec.bytes_per_token,
                    run.train, run.eval)
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

