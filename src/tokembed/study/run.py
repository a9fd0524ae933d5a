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
from collections.abc import Callable, Iterable, Iterator, Mapping
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
from ..training.evaluate import evaluate
from ..training.pipeline import prepare_tokenizer, train_and_evaluate
from ..training.shards import BLOCK_BYTES, build_shards, load_shards
from .config import StudyConfig, design_overrides, steps_for_budget
from .distributed import rank0_done, rank_context, run_over_ranks, wait_for_rank0
from .languages import budget_rows, language_counts, language_documents, language_shard, seen_tokens, split_languages
from .report import write_report as write_html_report
from .timing import PhaseClock, cpu_now


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
    timing: dict[str, Any] = field(default_factory=dict)  # wall/CPU seconds per phase (tokembed.study.timing)
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


def _shards(tok, corpus, corpus_sha: str, config: StudyConfig, out_dir: Path, docs: list[str] | None = None):
    """Shards of ``corpus`` (of ``docs``, its documents language by language, for a tagged corpus)."""
    folder = out_dir / "shards" / f"{tok.kind}-{_sha({'tok': tok.fingerprint, 'corpus': corpus_sha, 'val': config.val_fraction})[:12]}"
    if folder.is_dir():
        try:
            return load_shards(folder, tokenizer=tok), folder
        except TokembedError:
            pass  # stale or partial: rebuild below
    # a study-sized corpus is tokenized here: spawning tokenizing workers (each importing tokembed and
    # loading the tokenizer) costs more than it saves below a few blocks; the shards are the same either way
    small = sum(corpus.byte_sizes().values()) <= 4 * BLOCK_BYTES
    return build_shards(tok, corpus if docs is None else docs, folder, val_fraction=config.val_fraction, seed=0,
                        workers=1 if small else None), folder


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
    names the run. The runs of a tokenizer start in the worker processes as soon as it is trained,
    while this process trains the next one; where the time went is ``StudyResult.timing``
    (:mod:`tokembed.study.timing`).

    Args:
        config: the study configuration (default: ``StudyConfig()``, the default study).
        corpus: a :class:`~tokembed.corpus.Corpus` (default: the built-in corpus).
        out_dir: folder for tokenizers, shards, runs, results and ``report.html``.
        log: progress printer (default: ``print``).
        write_report: also write ``report.html`` (needs matplotlib).
    """
    t_start, cpu_start = time.perf_counter(), cpu_now(children=True)
    user_log = log or _log_default
    clock = PhaseClock()

    def log(msg: str) -> None:
        user_log(f"[{time.perf_counter() - t_start:5.0f}s] {msg}")

    config = config or StudyConfig()
    config.validate()
    out = _output_folder(out_dir)
    ctx = rank_context()  # dist: the ranks of a torchrun job (a world of 1 otherwise)
    wait_for_rank0(ctx)  # dist: the other ranks plan after rank 0 and find its tokenizers and shards
    with clock("corpus sample"):
        corpus, corpus_info = _prepare_corpus(corpus if corpus is not None else Corpus(), config, out, log)
    skipped: list[dict[str, str]] = []
    notes: list[str] = []
    kinds = _available_kinds(config, log, skipped)
    designs = _buildable_designs(config, log, skipped)
    n_tok = sum(len(config.vocab_for(k)) for k in kinds)
    n_runs = n_tok * len(designs) * len(config.seeds)
    log(f"study: {n_tok} tokenizer(s) of {len(kinds)} kind(s) × {len(designs)} design(s) × {len(config.seeds)} seed(s) "
        f"= {n_runs} runs, budget {config.budget_bytes:,} text bytes each -> {out}")
    plan = _plan_runs(config, kinds, designs, corpus, out, log, skipped, notes, clock)
    if ctx.active:  # dist: rank 0 prepares every tokenizer and shard first, then each rank trains its share
        specs = [spec for batch in plan for spec in batch]
        rank0_done(ctx)
        results = run_over_ranks(specs, lambda mine, cfg: _run_all([mine], len(mine), cfg, log, skipped, clock)[1],
                                 config=config, skipped=skipped, ctx=ctx, log=log)
        workers = ctx.world_size
    else:
        specs, results, workers = _run_all(plan, n_runs, config, log, skipped, clock)
    rows = [results[s.run_id][0] for s in specs if s.run_id in results]
    details = {s.run_id: results[s.run_id][1] for s in specs if s.run_id in results}
    result = StudyResult(out_dir=out, rows=rows, details=details, skipped=skipped, config=config,
                         corpus=corpus_info, seconds=time.perf_counter() - t_start, notes=notes)
    with clock("results + report"):
        result.timing = clock.summary(total_wall=time.perf_counter() - t_start,
                                      total_cpu=cpu_now(children=True) - cpu_start, workers=workers)
        if ctx.is_main:  # dist: rank 0 writes the results and the report
            write_results(result)
            if write_report:
                result.report = write_html_report(result)
        result.seconds = time.perf_counter() - t_start
    # the timing table covers the report too: results.json once more with the final totals
    result.timing = clock.summary(total_wall=time.perf_counter() - t_start,
                                  total_cpu=cpu_now(children=True) - cpu_start, workers=workers)
    if ctx.is_main:  # dist
        write_results(result)
    log(f"time: {_timing_line(result.timing)}")
    return result


def _timing_line(timing: Mapping[str, Any]) -> str:
    """One log line of a timing summary: the phases' CPU seconds and the share outside the training steps."""
    parts = ", ".join(f"{p['phase']} {p['cpu_s']:.1f}" for p in timing["phases"])
    share = timing.get("non_training_cpu_share")
    outside = f"; {100 * share:.1f}% of the CPU outside training steps" if share is not None else ""
    return f"{timing['total_wall_s']:.0f} s wall, {timing['total_cpu_s']:.1f} CPU s ({parts}){outside}"


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


def _plan_runs(config: StudyConfig, kinds, designs, corpus, out: Path, log, skipped, notes,
               clock: PhaseClock) -> Iterator[list[_RunSpec]]:
    """The :class:`_RunSpec` of each (tokenizer, design, seed), one tokenizer at a time: each tokenizer is
    trained and its shards built (once), then its runs are yielded so they can start at once."""
    corpus_sha = _sha([_file_sha(f) for f in corpus.files])
    tagged = language_documents(corpus)  # (documents, language of each) of a LANG=PATH corpus, else None
    split = None if tagged is None else split_languages(tagged[1], seed=0, val_fraction=config.val_fraction)
    for kind, V in ((k, v) for k in kinds for v in config.vocab_for(k)):
        try:
            with clock("tokenizer training"):
                tok, tok_dir = _tokenizer(kind, V, corpus, corpus_sha, out, log)
        except SKIP_ERRORS as e:
            reason = f"tokenizer {kind} V={V}: {type(e).__name__}: {e}"
            log(f"SKIP {reason}")
            skipped.append({"tokenizer": kind, "reason": reason})
            continue
        with clock("tokenize + shard"):
            shards, shard_dir = _shards(tok, corpus, corpus_sha, config, out, None if tagged is None else tagged[0])
        bpt = shards["train"].bytes_per_token
        steps = steps_for_budget(budget_bytes=config.budget_bytes, batch_size=config.batch_size,
                                 seq_len=config.seq_len, bytes_per_token=bpt)
        if len(shards["val"]) < 2:  # a one-document corpus: nothing can be held out
            raise EmptyCorpusError(f"the corpus holds {shards['train'].n_docs} document(s); the study holds out "
                                   "documents for validation, so pass more text (documents: blank-line separated blocks)")
        eval_tokens = max(config.seq_len + 1, int(config.eval_bytes / shards["val"].bytes_per_token))
        log(f"tokenizer {kind} V={tok.vocab_size}: {bpt:.2f} bytes/token on the train shard -> {steps} steps of "
            f"{config.batch_size}×{config.seq_len} tokens")
        _note_lossy(tok, kind, log, notes)
        langs = None if split is None else _language_plan(shards, split, config, kind, log)
        yield [_spec(config, kind, design, seed, tok, tok_dir, shard_dir, out, corpus_sha,
                     steps=steps, bytes_per_token=bpt, eval_tokens=eval_tokens, languages=langs)
               for design in designs for seed in config.seeds]


def _language_plan(shards, split: dict[str, list[str]], config: StudyConfig, kind: str, log) -> dict[str, Any]:
    """What a run of a tagged study needs to score and budget each language (:mod:`tokembed.study.languages`)."""
    train = language_counts(shards["train"], split["train"])
    val = language_counts(shards["val"], split["val"])
    eval_tokens = {lang: max(config.seq_len + 1, int(config.eval_bytes * c["tokens"] / max(c["bytes"], 1)))
                   for lang, c in val.items()}
    log(f"tokenizer {kind}: " + ", ".join(f"{lang} {c['bytes']:,} B = {c['tokens']:,} tokens" for lang, c in train.items())
        + " in the train shard")
    return {"train": split["train"], "val": split["val"], "train_counts": train, "eval_tokens": eval_tokens,
            "order": list(dict.fromkeys(split["train"] + split["val"]))}


def _note_lossy(tok, kind: str, log, notes: list[str]) -> None:
    if getattr(tok, "lossless", True):
        return
    warn = (f"tokenizer {kind} is lossy (decode(encode(x)) != x: it normalizes or drops characters), so it "
            f"does not model every byte and its bits per byte are optimistic")
    if warn not in notes:
        log(f"NOTE {warn}")
        notes.append(warn)


def _spec(config: StudyConfig, kind, design, seed, tok, tok_dir, shard_dir, out: Path, corpus_sha: str, *,
          steps: int, bytes_per_token: float, eval_tokens: int, languages: dict[str, Any] | None = None) -> _RunSpec:
    run_id = f"{kind}-{design}-V{tok.vocab_size}-s{seed}"
    mc = ModelConfig(vocab_size=tok.vocab_size, d_model=config.d_model, n_layers=config.n_layers,
                     n_heads=config.n_heads, max_seq_len=config.seq_len, positional=config.positional,
                     **design_overrides(design, config, tok.vocab_size))
    tc = TrainConfig(model=mc, seq_len=config.seq_len, batch_size=config.batch_size,
                     max_bytes=config.budget_bytes, lr=config.lr,
                     warmup_steps=min(config.warmup_steps, max(0, steps - 1)), seed=seed, device=config.device)
    train = dataclasses.asdict(tc)
    train.pop("parallel", None)  # how the ranks share a run does not change its result: keep older caches valid
    key = _sha({"train": train, "tok": tok.fingerprint, "corpus": corpus_sha,
                "eval_tokens": eval_tokens, "budget": config.budget_bytes})
    return _RunSpec(run_id=run_id, kind=kind, design=design, seed=seed, train=tc, study=config,
                    tokenizer_dir=tok_dir, shard_dir=shard_dir, run_dir=out / "runs" / run_id,
                    key=key, steps=steps, bytes_per_token=bytes_per_token, eval_tokens=eval_tokens, languages=languages)


def _run_all(plan: Iterable[list[_RunSpec]], n_runs: int, config: StudyConfig, log, skipped,
             clock: PhaseClock) -> tuple[list[_RunSpec], dict[str, tuple[dict, dict]], int]:
    """(every spec in grid order, rows and details by run id, worker processes used).

    Cached runs are read back; the others are trained in worker processes when ``config.workers``
    allows, each tokenizer's runs submitted as soon as :func:`_plan_runs` yields them, so this process
    trains the next tokenizer while the workers train. A run that fails for a declared reason is
    skipped; anything else stops here."""
    workers = min(config.workers or (os.cpu_count() or 1), max(1, n_runs))
    specs: list[_RunSpec] = []
    results: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    n_done = 0

    def done(spec: _RunSpec, run: Callable[[], tuple]) -> None:
        nonlocal n_done
        n_done += 1
        try:
            row, det, timings = run()
        except SKIP_ERRORS as e:
            reason = f"run {spec.run_id} failed: {type(e).__name__}: {e}"
            log(f"[{n_done}/{n_runs}] FAILED {reason}")
            skipped.append({"run": spec.run_id, "reason": reason})
            return
        except Exception as e:
            raise _naming_the_run(e, spec.run_id)
        results[spec.run_id] = (row, det)
        clock.merge(timings)
        log(f"[{n_done}/{n_runs}] {spec.run_id}: {spec.steps} steps, bpb {row['bits_per_byte']:.4f}, "
            f"{row['total_params']:,} params, {row['seconds']:.1f}s train")

    def fresh(batch: list[_RunSpec]) -> list[_RunSpec]:
        nonlocal n_done
        specs.extend(batch)
        todo = []
        for spec in batch:
            cached = _load_cached_run(spec.run_dir, spec.key)
            if cached is None:
                todo.append(spec)
                continue
            n_done += 1
            results[spec.run_id] = cached
            log(f"[{n_done}/{n_runs}] {spec.run_id}: cached, bpb {cached[0]['bits_per_byte']:.4f}")
        return todo

    if workers <= 1:
        for batch in plan:
            for spec in fresh(batch):
                log(f"{spec.run_id}: training {spec.steps} steps ...")
                done(spec, lambda spec=spec: _execute(spec))
        return specs, results, 1
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that holds torch threads
    pool: ProcessPoolExecutor | None = None
    futures: dict[Any, _RunSpec] = {}
    try:
        for batch in plan:
            for spec in fresh(batch):
                if pool is None:  # started on the first run to train: its workers import torch meanwhile
                    log(f"training in {workers} process(es), {config.threads} torch thread(s) each")
                    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_started,
                                               initargs=(time.time(),))
                futures[pool.submit(_execute, spec)] = spec
            for fut in [f for f in futures if f.done()]:  # report what finished while this tokenizer trained
                done(futures.pop(fut), fut.result)
        for fut in as_completed(list(futures)):
            done(futures.pop(fut), fut.result)
    except BaseException:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)  # do not train the rest of a study that has failed
        raise
    if pool is not None:
        pool.shutdown(wait=True)
    return specs, results, workers


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
    languages: dict[str, Any] | None = None  # a tagged study: document languages per split, budgets (_language_plan)


#: Set in a worker process by :func:`_worker_started`: (pool start, epoch s) until its first run takes it.
_WORKER_START: float | None = None


def _worker_started(pool_started: float) -> None:
    """Pool initializer: remember when the pool started, so the first run can report the worker's start-up.

    Imports ``torch._dynamo`` here, which every torch optimizer imports on first use (1-4 CPU s): a cost
    of the process, not of its first run. At exit the worker skips the interpreter's teardown of torch
    (~1 CPU s per process): its runs' files are written and its results sent by then."""
    global _WORKER_START
    import atexit

    import torch._dynamo  # noqa: F401  (third-party: not a tokembed import)

    atexit.register(_exit_now)  # registered last, so it runs first when the worker exits
    _WORKER_START = pool_started


def _exit_now() -> None:
    """End a pool worker at once (its last atexit step): flush what it printed, skip the module teardown."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _execute(spec: _RunSpec) -> tuple[dict[str, Any], dict[str, Any], dict[str, tuple[float, float]]]:
    """Train and evaluate one run (in this process or a worker) and save ``runs/<id>/result.json``.

    Returns the row, the details and the run's timings, ``phase -> (wall s, CPU s)``
    (:mod:`tokembed.study.timing`); a worker's first run also reports the worker's start-up."""
    global _WORKER_START
    t0, c0 = time.perf_counter(), time.process_time()
    timings: dict[str, tuple[float, float]] = {}
    if _WORKER_START is not None:  # CPU this process spent before its first run: spawn, imports
        timings["worker start"] = (max(0.0, time.time() - _WORKER_START), c0)
        _WORKER_START = None
    threads = torch.get_num_threads()
    torch.set_num_threads(spec.study.threads)
    try:
        tok = load_tokenizer(spec.tokenizer_dir)
        shards = load_shards(spec.shard_dir, tokenizer=tok)
        timings["load"] = (time.perf_counter() - t0, time.process_time() - c0)
        run = train_and_evaluate(spec.train, tokenizer=tok, shards=shards, out_dir=spec.run_dir, progress=False,
                                 eval_tokens=spec.eval_tokens, plots=False)
    finally:
        torch.set_num_threads(threads)
    t1, c1 = time.perf_counter(), time.process_time()
    row, det = _row(spec.run_id, spec.kind, spec.design, spec.seed, tok, spec.study, spec.steps, spec.bytes_per_token,
                    run.train, run.eval)
    _save_run(spec.run_dir, spec.key, row, det)
    train_wall, train_cpu = run.timings["train"]
    steps_cpu = min(run.train.cpu_seconds, train_cpu)
    timings["train steps"] = (run.train.seconds, steps_cpu)
    timings["setup + checkpoint"] = (train_wall - run.train.seconds + time.perf_counter() - t1,
                                     train_cpu - steps_cpu + time.process_time() - c1)
    if "eval" in run.timings:
        timings["eval"] = run.timings["eval"]
    if spec.languages is not None:
        t2, c2 = time.perf_counter(), time.process_time()
        det["languages"] = _language_scores(spec, run.train.model, tok, shards)
        _save_run(spec.run_dir, spec.key, row, det)
        wall, cpu = timings.get("eval", (0.0, 0.0))
        timings["eval"] = (wall + time.perf_counter() - t2, cpu + time.process_time() - c2)
    return row, det, timings


def _language_scores(spec: _RunSpec, model, tok, shards) -> dict[str, dict[str, Any]]:
    """Per language: bits per byte on its validation documents (None when it has fewer than 2 tokens there)
    and its training budget (:func:`tokembed.study.languages.budget_rows`)."""
    langs = spec.languages
    seen = seen_tokens(shards["train"], langs["train"], batch_size=spec.train.batch_size, seq_len=spec.train.seq_len,
                       steps=spec.steps)
    budget = budget_rows(langs["train_counts"], seen)
    device = next(model.parameters()).device
    out: dict[str, dict[str, Any]] = {}
    for lang in langs["order"]:
        sub = language_shard(shards["val"], langs["val"], lang)
        score: dict[str, Any] = {"bits_per_byte": None, "val_bytes": sub.n_bytes, "val_tokens": 0}
        if len(sub) >= 2:
            ev = evaluate(model, tok, sub, seq_len=spec.train.seq_len, batch_size=spec.train.batch_size,
                          max_tokens=langs["eval_tokens"].get(lang), device=device)
            score = {"bits_per_byte": float(ev.bits_per_byte), "val_bytes": int(ev.n_bytes), "val_tokens": int(ev.n_tokens)}
        out[lang] = {**score, **budget.get(lang, {})}
    return out


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
            "timing": result.timing,
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

