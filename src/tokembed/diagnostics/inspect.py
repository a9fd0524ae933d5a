"""``inspect``: run every diagnostic on one source and write ``report.html``, ``summary.json`` and plots.

This module only orchestrates: each measure lives in its own sibling module (geometry,
frequency, undertrained, probes, projection, neighbors, contextual). The matrix is
normalised once and shared, so peak memory is about twice the matrix plus O(D²).

Output folder::

    report.html            self-contained (figures inlined as base64 PNG)
    summary.json           every number of the report, machine-readable
    plots/*.png            the same figures as files
    projector/             vectors.tsv, metadata.tsv, projector_config.pbtxt (TensorBoard)
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import report as R
from ..artifacts import atomic_dir, atomic_write_text, write_json
from ..metrics import corpus_token_counts
from ..sources import EmbeddingSource
from .frequency import frequency_summary
from .geometry import geometry_summary, spectrum
from .neighbors import normalize_rows, topk_cosine
from .probes import read_label_csv, run_probe
from .token_classes import detect_convention, string_labels, token_classes
from .inspect_figures import distribution_figures, projection_figures
from .undertrained import undertrained_summary

__all__ = ["InspectConfig", "inspect", "headline", "blas_threads"]


@dataclass
class InspectConfig:
    """Options of :func:`inspect` (all keyword-only in the CLI)."""

    corpus: Any = None  # a tokembed Corpus to count tokens on (needs the source's tokenizer), or None
    labels: str | None = None  # path of a 'token,label' CSV for a user probe
    tsne: bool = False  # t-SNE of a sample (slow: ~10 s for 3k points)
    umap: bool = False  # UMAP of a sample (needs umap-learn)
    k: int = 10  # neighbours for coherence and example tables
    plot_points: int = 20000  # points drawn in the PCA scatter (random sample)
    projector_rows: int = 5000  # rows exported for the Embedding Projector (0 = none)
    probe_rows: int = 4000  # tokens per probe (random sample)
    max_corpus_bytes: int | None = 50_000_000  # stop counting after this many bytes of corpus
    label_tokens: list[str] = field(default_factory=list)  # tokens to label in the scatter plots
    verify: bool = False  # run the causal LM repeat test on under-trained candidates (checkpoints)
    contextual: bool = True  # per-layer contextual geometry when the source can run (checkpoints)
    seed: int = 0
    progress: bool = True
    threads: int | None = None  # BLAS threads; None = all cores, or 1 when the machine is busy (see blas_threads)


def _clean(obj):
    """JSON-ready copy: drop private ``_`` keys, numpy scalars to Python, NaN/Inf to None."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if not (isinstance(k, str) and k.startswith("_"))}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def blas_threads(threads: int | None = None) -> int:
    """BLAS threads to use: ``threads`` if given; else 1 when the 1-minute load average is at least the
    core count, else every core. On an oversubscribed machine, multi-threaded BLAS spends its time in
    hand-offs: a 32k × 768 covariance took 4–16 s with 2 threads and 1.1 s with 1 (measured here)."""
    if threads:
        return int(threads)
    n = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0] >= n
    except OSError:  # not on every platform
        busy = False
    return 1 if busy else n


def inspect(source: EmbeddingSource, out_dir: str | os.PathLike, config: InspectConfig | None = None) -> dict:
    """Run the diagnostics, write the report folder, return the summary (as in summary.json).

    The folder is written as one unit (:func:`tokembed.artifacts.atomic_dir`): a kill leaves the
    previous report whole, never new plots next to an old ``summary.json``."""
    from threadpoolctl import threadpool_limits

    cfg = config or InspectConfig()
    n = blas_threads(cfg.threads)
    with threadpool_limits(n), atomic_dir(out_dir) as tmp:
        summary = _inspect(source, tmp, cfg)
    return summary


def _inspect(source: EmbeddingSource, out_dir: str | os.PathLike, cfg: InspectConfig) -> dict:
    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    clock = _Steps(cfg.progress, ["geometry", "frequency", "undertrained", "probes", "projection", "neighbours",
                                  "contextual", "report"])
    ctx = _Context(source, cfg, out)
    summary = ctx.summary
    _geometry(ctx)
    clock("geometry")
    _frequency(ctx)
    clock("frequency")
    summary["undertrained"] = undertrained_summary(source, counts=ctx.counts, verify=cfg.verify, progress=cfg.progress,
                                                   input_first_pc=ctx.spec.components[:, 0], input_norms=ctx.norms)
    clock("undertrained")
    summary["probes"] = _probes(ctx)
    clock("probes")
    summary["projection"] = projection_figures(ctx)
    distribution_figures(ctx)
    clock("projection")
    summary["neighbours"] = _example_neighbours(ctx)
    clock("neighbours")
    if cfg.contextual and source.model_loader is not None:
        from ..contextual import contextual_summary

        summary["contextual"] = contextual_summary(source, corpus=cfg.corpus, seed=cfg.seed, progress=cfg.progress)
    clock("contextual")
    summary["headline"] = headline(summary)
    summary["timings_s"] = clock.timings
    summary["config"] = {k: v for k, v in asdict(cfg).items() if k != "corpus"}
    V, D = ctx.X.shape
    page = R.html_page(f"tokembed inspect: {source.path.name}", _sections(summary, ctx.figs),
                       subtitle=f"{source.kind} source, {V:,} × {D}, fingerprint {source.fingerprint[:12]}")
    atomic_write_text(out / "report.html", page)
    clock("report")
    summary["timings_s"] = clock.timings
    clean = _clean(summary)
    write_json(out / "summary.json", clean)
    clock.close()
    return clean


class _Steps:
    """Wall time per step (``timings``) and the progress bar."""

    def __init__(self, progress: bool, steps: list[str]):
        self.timings: dict[str, float] = {}
        self.last = time.perf_counter()
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(steps), desc="inspect", unit="step", leave=False)

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self.last, 3)
        self.last = now
        if self.bar is not None:
            self.bar.set_postfix_str(name)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Context:
    """What every step of one inspection shares: the source, the matrix normalised once, the counts, the figures."""

    def __init__(self, source: EmbeddingSource, cfg: InspectConfig, out: Path):
        self.source, self.cfg, self.out = source, cfg, out
        self.X = source.input  # (V, D)
        self.tokens = source.vocab.tokens
        self.special = source.vocab.special_ids
        self.convention = detect_convention(self.tokens)
        self.classes = token_classes(self.tokens, special_ids=self.special, convention=self.convention)
        self.summary: dict[str, Any] = {"source": source.describe(), "convention": self.convention}
        self.figs: dict[str, str] = {}
        self.unit = normalize_rows(self.X)  # (unit rows (V, D), valid (V,))
        self.spec = spectrum(self.X, self.unit[1])
        self.norms: np.ndarray | None = None
        self.counts: np.ndarray | None = None
        self.rng = np.random.default_rng(cfg.seed)
        self.label_ids: list[int] = []
        self.name = source.path.name  # figure titles name the source, so a PNG reads without the page

    def fig(self, name: str, f, caption: str) -> None:
        self.figs[name] = R.figure_img(f, alt=name, caption=caption, path=self.out / "plots" / f"{name}.png")


def _geometry(ctx: _Context) -> None:
    geo = geometry_summary(ctx.X, spec=ctx.spec, unit=ctx.unit, tokens=ctx.tokens, seed=ctx.cfg.seed)
    ctx.summary["geometry"] = geo
    ctx.norms = geo["_norms"]
    src = ctx.source
    if src.output is not None and not src.tied:
        ctx.summary["geometry_head"] = geometry_summary(src.output, tokens=ctx.tokens, seed=ctx.cfg.seed)


def _frequency(ctx: _Context) -> None:
    """Token counts on the corpus (:func:`tokembed.metrics.corpus_token_counts`) and the per-band summary."""
    cfg, src = ctx.cfg, ctx.source
    if cfg.corpus is None:
        return
    if src.tokenizer is None:
        ctx.summary["frequency"] = {"skipped": "the source has no tokenizer that tokembed can run; counts need its own tokenizer"}
        return
    ctx.counts, read = corpus_token_counts(src.tokenizer, cfg.corpus.texts(), vocab_size=ctx.X.shape[0],
                                           max_bytes=cfg.max_corpus_bytes, progress=cfg.progress)
    fs = frequency_summary(ctx.counts, ctx.norms, ctx.unit, ctx.tokens, special_ids=ctx.special, k=cfg.k, seed=cfg.seed)
    fs["corpus"] = read
    ctx.summary["frequency"] = fs


def _probes(ctx: _Context) -> list[dict[str, Any]]:
    cfg = ctx.cfg
    probes = [run_probe(ctx.X, lab, name=name, max_rows=cfg.probe_rows, seed=cfg.seed)
              for name, lab in string_labels(ctx.tokens, special_ids=ctx.special, convention=ctx.convention).items()]
    if cfg.labels:
        user, stats = read_label_csv(cfg.labels, ctx.source.vocab)
        r = run_probe(ctx.X, user, name=f"user:{Path(cfg.labels).name}", max_rows=cfg.probe_rows, seed=cfg.seed)
        r.update({"csv_" + k: v for k, v in stats.items()})
        probes.append(r)
    return probes


def _example_neighbours(ctx: _Context) -> list[dict[str, Any]]:
    unit, tokens = ctx.unit, ctx.tokens
    ex_ids = [i for i in ctx.label_ids if unit[1][i]][:12]
    if not ex_ids:
        return []
    nid, nsim = topk_cosine(unit[0], unit[0][ex_ids], k=ctx.cfg.k, exclude=[[i] for i in ex_ids], normalized=True,
                            valid=unit[1])
    return [{"token": tokens[i], "neighbours": [tokens[j] for j in row_i if j >= 0],
             "cosines": [float(s) for s in row_s if np.isfinite(s)]} for i, row_i, row_s in zip(ex_ids, nid, nsim)]


def headline(s: dict) -> list[str]:
    """The few lines the console prints: shape, head, geometry warnings, candidates, probes."""
    src, g = s["source"], s["geometry"]
    lines = [
        f"{src['kind']} source{' (' + src['family'] + ')' if src['family'] else ''}: {src['vocab_size']:,} tokens × {src['dim']} dims; "
        + (
            "tied input/output embedding"
            if src["tied"]
            else ("untied LM head" if src["has_output_head"] else "no LM head")
        ),
        f"anisotropy {g['anisotropy']:.3f}, effective rank {g['effective_rank']:.1f}/{g['dim']}, "
        f"top-1 PC {g['variance_share_top1']:.1%} of variance, IsoScore {g['isoscore']:.3f}, "
        f"{g['near_duplicate_pairs']} near-duplicate pairs, {g['nonfinite_rows']} NaN/Inf rows",
    ]
    lines += [f"WARNING: {w}" for w in g["warnings"]]
    for w in s.get("geometry_head", {}).get("warnings", []):
        lines.append(f"WARNING (LM head): {w}")
    fq = s.get("frequency")
    if fq and "bands" in fq:
        lines.append(
            f"corpus: {fq['corpus']['tokens']:,} tokens; {fq['never_seen']:,} vocabulary tokens never seen "
            f"({fq['never_seen_share']:.1%}); r(log count, norm) = {fq['norm_logfreq_correlation']:.3f}"
        )
    ut = s["undertrained"]
    if ut["candidates"]:
        top = ", ".join(repr(c["token"]) for c in ut["candidates"][:8])
        lines.append(
            f"under-trained candidates ({ut['main_indicator']}, reference set {ut['reference_size']} tokens): {top}"
        )
    ps = [p for p in s["probes"] if "accuracy" in p]
    if ps:
        lines.append(
            "probes (accuracy / majority / selectivity): "
            + "; ".join(
                f"{p['probe']} {p['accuracy']:.2f}/{p['majority_baseline']:.2f}/{p['selectivity']:+.2f}" for p in ps
            )
        )
    return lines


def _fmt_row(d: dict) -> dict:
    return {k: (v if not isinstance(v, list) else " ".join(map(str, v))) for k, v in d.items()}


def _sections(s: dict, figs: dict[str, str]) -> list[str]:
    """The report sections: headline and geometry here, the rest in :func:`_sections_rest`."""
    g = s["geometry"]
    out = [R.section("Headline", "".join(R.paragraph(h) for h in s["headline"]))]
    out.append(
        R.section(
            "Source",
            R.table([_fmt_row({k: v for k, v in s["source"].items() if k != "special_tokens"})]),
            R.paragraph("special tokens: " + ", ".join(f"{k}={v}" for k, v in s["source"]["special_tokens"].items())),
        )
    )
    geo_rows = [
        {
            "measure": "anisotropy (mean cosine of random pairs)",
            "value": g["anisotropy"],
            "warn if": f"> {g['thresholds']['anisotropy_max']}",
        },
        {
            "measure": "effective rank / D",
            "value": g["effective_rank_ratio"],
            "warn if": f"< {g['thresholds']['effective_rank_ratio_min']}",
        },
        {
            "measure": "variance share of PC 1",
            "value": g["variance_share_top1"],
            "warn if": f"> {g['thresholds']['top1_variance_share_max']}",
        },
        {"measure": "variance share of PCs 1-10", "value": g["variance_share_top10"], "warn if": ""},
        {"measure": "IsoScore", "value": g["isoscore"], "warn if": f"< {g['thresholds']['isoscore_min']}"},
        {
            "measure": f"near-duplicate pairs (cos ≥ {g['thresholds']['duplicate_cosine']}, {g['near_duplicate_method']})",
            "value": g["near_duplicate_pairs"],
            "warn if": "> 0",
        },
        {"measure": "NaN/Inf rows", "value": g["nonfinite_rows"], "warn if": "> 0"},
        {"measure": "zero rows", "value": g["zero_rows"], "warn if": "> 0"},
        {"measure": "mean row norm", "value": g["norm"]["mean"], "warn if": ""},
    ]
    parts = [R.warning_box(w) for w in g["warnings"]] + [R.table(geo_rows)]
    if g["near_duplicate_clusters"]:
        parts.append(
            R.table(
                [
                    {"cluster": i + 1, "tokens": " ".join(map(repr, c))}
                    for i, c in enumerate(g["near_duplicate_clusters"])
                ]
            )
        )
    parts += [figs.get("spectrum", ""), figs.get("norms", "")]
    if "geometry_head" in s:
        gh = s["geometry_head"]
        parts.append(
            R.paragraph(
                f"LM head (untied): anisotropy {gh['anisotropy']:.3f}, effective rank {gh['effective_rank']:.1f}, "
                f"IsoScore {gh['isoscore']:.3f}"
            )
        )
        parts += [R.warning_box("LM head: " + w) for w in gh["warnings"]]
    out.append(R.section("Collapse and geometry", *parts))
    return out + _sections_rest(s, figs)


def _sections_rest(s: dict, figs: dict[str, str]) -> list[str]:
    """Frequency, under-trained tokens, probes, projections, neighbours, contextual geometry and timings."""
    out: list[str] = []
    fq = s.get("frequency")
    if fq:
        if "bands" in fq:
            out.append(
                R.section(
                    "Frequency vs quality",
                    R.table(fq["bands"]),
                    figs.get("norm_vs_frequency", ""),
                    figs.get("coherence_vs_frequency", ""),
                    R.paragraph(
                        f"{fq['never_seen']:,} tokens never seen on the corpus, e.g. "
                        + " ".join(repr(t) for t in fq["never_seen_examples"][:30])
                    ),
                )
            )
        else:
            out.append(R.section("Frequency vs quality", R.paragraph(fq["skipped"])))
    ut = s["undertrained"]
    ut_parts = [
        R.paragraph(
            f"Indicators: {', '.join(ut['indicators']) or 'none'}; reference set of unused tokens: {ut['reference_size']} "
            f"(unreachable by the tokenizer: {ut['reference_info']['unreachable']}, zero count: {ut['reference_info']['zero_count']}), "
            f"e.g. {' '.join(map(repr, ut['reference_examples'][:10]))}. Candidates: top {ut['candidate_percentile']}% "
            f"= {ut['n_candidates']} tokens."
        )
    ]
    ut_parts += [R.warning_box(n) for n in ut["notes"]]
    ut_parts += [R.table(ut["candidates"]), figs.get("undertrained", "")]
    if ut.get("verification"):
        ut_parts.append(R.table(ut["verification"]))
    out.append(R.section("Under-trained tokens (Fishing for Magikarp)", *ut_parts))
    out.append(
        R.section(
            "Linear probes",
            R.paragraph(
                "Logistic regression on a held-out split; control = same labels shuffled over tokens; selectivity = accuracy − control."
            ),
            R.table([_fmt_row(p) for p in s["probes"]]),
        )
    )
    proj_parts = [figs.get(k, "") for k in ("pca_classes", "pca_frequency", "tsne_classes", "umap_classes")]
    if s["projection"].get("projector_rows"):
        proj_parts.append(
            R.paragraph(
                f"Embedding Projector export: projector/ ({s['projection']['projector_rows']:,} rows); "
                "open with tensorboard --logdir <out>/projector or projector.tensorflow.org"
            )
        )
    out.append(R.section("Projections", *proj_parts))
    if s["neighbours"]:
        out.append(
            R.section(
                "Nearest neighbours (cosine)",
                R.table(
                    [
                        {"token": e["token"], "neighbours": " ".join(repr(t) for t in e["neighbours"])}
                        for e in s["neighbours"]
                    ]
                ),
            )
        )
    if s.get("contextual"):
        c = s["contextual"]
        out.append(
            R.section(
                "Contextual geometry (Ethayarajh 2019)",
                R.table(c.get("layers", [])),
                *[R.paragraph(n) for n in c.get("notes", [])],
            )
        )
    out.append(R.section("Timings", R.table([{"step": k, "seconds": v} for k, v in s["timings_s"].items()])))
    return out
