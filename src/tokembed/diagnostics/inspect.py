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
from ..artifacts import write_json
from ..metrics import band_name, band_names, corpus_token_counts, frequency_decades
from .frequency import frequency_summary
from .geometry import geometry_summary, spectrum
from .neighbors import normalize_rows, topk_cosine
from .probes import read_label_csv, run_probe
from .projection import TSNE_MAX_POINTS, export_projector, scatter, tsne_2d, umap_2d
from ..sources import EmbeddingSource
from .token_classes import CLASSES, detect_convention, string_labels, token_classes
from .undertrained import undertrained_summary
from ..artifacts import atomic_write_text

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


def _label_rows(tokens, chosen, counts, classes, n=12) -> list[int]:
    ids = [i for i in (tokens.get(t) for t in chosen) if i is not None]
    if ids:
        return ids
    cand = np.flatnonzero(classes == "word-initial")
    if counts is not None:
        cand = cand[np.argsort(-counts[cand], kind="stable")]
        return cand[:n].tolist()
    return cand[np.linspace(0, cand.size - 1, min(n, cand.size)).astype(int)].tolist() if cand.size else []


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
    """Run the diagnostics, write the report folder, return the summary (as in summary.json)."""
    from threadpoolctl import threadpool_limits

    cfg = config or InspectConfig()
    n = blas_threads(cfg.threads)
    with threadpool_limits(n):
        summary = _inspect(source, out_dir, cfg)
    return summary


def _inspect(source: EmbeddingSource, out_dir: str | os.PathLike, cfg: InspectConfig) -> dict:
    out = Path(out_dir)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    steps = ["geometry", "frequency", "undertrained", "probes", "projection", "neighbours", "contextual", "report"]
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(steps), desc="inspect", unit="step", leave=False)

    last = [t0]

    def step(name):
        now = time.perf_counter()
        timings[name] = round(now - last[0], 3)
        last[0] = now
        if bar is not None:
            bar.set_postfix_str(name)
            bar.update(1)

    X = source.input
    V, D = X.shape
    tokens = source.vocab.tokens
    special = source.vocab.special_ids
    conv = detect_convention(tokens)
    classes = token_classes(tokens, special_ids=special, convention=conv)
    sections: list[str] = []
    summary: dict[str, Any] = {"source": source.describe(), "convention": conv}
    figs: dict[str, str] = {}

    def fig(name, f, caption):
        figs[name] = R.figure_img(f, alt=name, caption=caption, path=plots / f"{name}.png")

    # -- geometry -------------------------------------------------------------------------
    unit = normalize_rows(X)
    spec = spectrum(X, unit[1])
    geo = geometry_summary(X, spec=spec, unit=unit, tokens=tokens, seed=cfg.seed)
    summary["geometry"] = geo
    norms = geo["_norms"]
    if source.output is not None and not source.tied:
        summary["geometry_head"] = geometry_summary(source.output, tokens=tokens, seed=cfg.seed)
    step("geometry")

    # -- frequency ------------------------------------------------------------------------
    counts = None
    if cfg.corpus is not None:
        if source.tokenizer is None:
            summary["frequency"] = {
                "skipped": "the source has no tokenizer that tokembed can run; counts need its own tokenizer"
            }
        else:
            counts, read = corpus_token_counts(
                source.tokenizer, cfg.corpus.texts(), vocab_size=V, max_bytes=cfg.max_corpus_bytes, progress=cfg.progress
            )
            fs = frequency_summary(counts, norms, unit, tokens, special_ids=special, k=cfg.k, seed=cfg.seed)
            fs["corpus"] = read
            summary["frequency"] = fs
    step("frequency")

    # -- under-trained tokens -------------------------------------------------------------------
    ut = undertrained_summary(
        source,
        counts=counts,
        verify=cfg.verify,
        progress=cfg.progress,
        input_first_pc=spec.components[:, 0],
        input_norms=norms,
    )
    summary["undertrained"] = ut
    step("undertrained")

    # -- probes ---------------------------------------------------------------------------------
    probes = []
    for name, lab in string_labels(tokens, special_ids=special, convention=conv).items():
        probes.append(run_probe(X, lab, name=name, max_rows=cfg.probe_rows, seed=cfg.seed))
    if cfg.labels:
        user, stats = read_label_csv(cfg.labels, source.vocab)
        r = run_probe(X, user, name=f"user:{Path(cfg.labels).name}", max_rows=cfg.probe_rows, seed=cfg.seed)
        r.update({"csv_" + k: v for k, v in stats.items()})
        probes.append(r)
    summary["probes"] = probes
    step("probes")

    # -- projections ----------------------------------------------------------------------------
    rng = np.random.default_rng(cfg.seed)
    ok = np.flatnonzero(unit[1])
    pts = ok if ok.size <= cfg.plot_points else np.sort(rng.choice(ok, cfg.plot_points, replace=False))
    label_ids = _label_rows(source.vocab, cfg.label_tokens, counts, classes)
    pts = np.union1d(pts, [i for i in label_ids if unit[1][i]]).astype(np.int64)
    pos = {int(i): j for j, i in enumerate(pts)}
    lab = {pos[i]: tokens[i] for i in label_ids if i in pos}
    coords = spec.project(X[pts], 2)
    var_share = spec.variances / max(spec.variances.sum(), 1e-30)
    fig(
        "pca_classes",
        scatter(coords, classes[pts], title="PCA, by token class", labels=lab, order=CLASSES),
        f"first two principal components ({var_share[0]:.1%} and {var_share[1]:.1%} of the variance); {pts.size:,} of {V:,} rows",
    )
    groups_band = None
    if counts is not None:
        groups_band = np.array(band_names(counts), dtype=object)
        fig(
            "pca_frequency",
            scatter(
                coords,
                groups_band[pts],
                title="PCA, by corpus frequency band",
                labels=lab,
                order=[band_name(int(d)) for d in np.unique(frequency_decades(counts))],
            ),
            "count bands on the corpus, tokenized with the source's own tokenizer",
        )
    proj = {"pca_variance_share": var_share[:10].tolist(), "plotted_points": int(pts.size)}
    for method, fn, want in (("tsne", tsne_2d, cfg.tsne), ("umap", umap_2d, cfg.umap)):
        if not want:
            continue
        sm = ok if ok.size <= TSNE_MAX_POINTS else np.sort(rng.choice(ok, TSNE_MAX_POINTS, replace=False))
        sm = np.union1d(sm, [i for i in label_ids if unit[1][i]]).astype(np.int64)
        c2 = fn(X[sm], seed=cfg.seed)
        p2 = {int(i): j for j, i in enumerate(sm)}
        fig(
            f"{method}_classes",
            scatter(
                c2,
                classes[sm],
                title=f"{method.upper()}, by token class",
                labels={p2[i]: tokens[i] for i in label_ids if i in p2},
                order=CLASSES,
            ),
            f"{method.upper()} of {sm.size:,} sampled rows (cosine metric)",
        )
        proj[method] = {"points": int(sm.size)}
    if cfg.projector_rows:
        rows = ok
        if rows.size > cfg.projector_rows:
            rows = (
                rows[np.argsort(-counts[rows], kind="stable")][: cfg.projector_rows]
                if counts is not None
                else np.sort(rng.choice(rows, cfg.projector_rows, replace=False))
            )
        meta = {"token": tokens, "class": classes}
        if counts is not None:
            meta["count"] = counts
            meta["band"] = groups_band
        export_projector(out / "projector", X, rows, meta)
        proj["projector_rows"] = int(len(rows))
    summary["projection"] = proj
    # norm histogram and spectrum
    f, ax = R.new_figure()
    ax.hist(norms[np.isfinite(norms)], bins=80, color="#1f77b4")
    ax.set_xlabel("L2 norm of row")
    ax.set_ylabel("tokens")
    fig("norms", f, "distribution of row norms")
    f, ax = R.new_figure()
    ax.plot(np.arange(1, D + 1), np.cumsum(var_share), color="#d62728")
    ax.set_xlabel("principal components")
    ax.set_ylabel("cumulative variance share")
    ax.set_ylim(0, 1.01)
    fig("spectrum", f, f"IsoScore {geo['isoscore']:.3f}; effective rank {geo['effective_rank']:.1f} of {D}")
    if counts is not None:
        fsum = summary["frequency"]
        seen = np.flatnonzero((counts > 0) & np.isfinite(norms))
        sm = seen if seen.size <= 20000 else rng.choice(seen, 20000, replace=False)
        f, ax = R.new_figure()
        ax.scatter(np.log10(counts[sm]), norms[sm], s=3, alpha=0.4, linewidths=0)
        ax.set_xlabel("log10 count on corpus")
        ax.set_ylabel("row norm")
        fig(
            "norm_vs_frequency",
            f,
            f"Pearson r(log count, norm) = {fsum['norm_logfreq_correlation']:.3f}; "
            f"{fsum['never_seen']:,} tokens never seen",
        )
        bands = [b for b in fsum["bands"] if b["sampled"]]
        f, ax = R.new_figure()
        ax.plot(
            [b["band"] for b in bands],
            [b[f"mean_top{cfg.k}_cosine"] for b in bands],
            marker="o",
            label=f"mean top-{cfg.k} cosine",
        )
        ax.plot(
            [b["band"] for b in bands],
            [b["same_band_neighbours"] for b in bands],
            marker="s",
            label="neighbours in same band",
        )
        ax.plot(
            [b["band"] for b in bands], [b["same_band_chance"] for b in bands], ls=":", color="#ff7f0e", label="same band by chance"
        )
        ax.set_xlabel("frequency band (count on corpus)")
        ax.legend()
        fig("coherence_vs_frequency", f, "neighbour coherence per frequency band (sampled tokens)")
    ind = ut["_indicators"]
    if ut["main_indicator"]:
        vals = ind[ut["main_indicator"]]
        f, ax = R.new_figure()
        ax.hist(vals[np.isfinite(vals)], bins=100, color="#9467bd", log=True)
        if ut["candidate_threshold"] is not None:
            thr = ut["candidate_threshold"] if ut["main_indicator"] != "input_norm" else -ut["candidate_threshold"]
            ax.axvline(thr, color="k", ls="--")
        ax.set_xlabel(ut["main_indicator"])
        ax.set_ylabel("tokens (log)")
        fig("undertrained", f, "indicator distribution; dashed: candidate threshold")
    step("projection")

    # -- example neighbours ----------------------------------------------------------------------
    ex_ids = [i for i in label_ids if unit[1][i]][:12]
    examples = []
    if ex_ids:
        nid, nsim = topk_cosine(
            unit[0], unit[0][ex_ids], k=cfg.k, exclude=[[i] for i in ex_ids], normalized=True, valid=unit[1]
        )
        for i, row_i, row_s in zip(ex_ids, nid, nsim):
            examples.append(
                {
                    "token": tokens[i],
                    "neighbours": [tokens[j] for j in row_i if j >= 0],
                    "cosines": [float(s) for s in row_s if np.isfinite(s)],
                }
            )
    summary["neighbours"] = examples
    step("neighbours")

    # -- contextual -------------------------------------------------------------------------------
    if cfg.contextual and source.model_loader is not None:
        from ..contextual import contextual_summary

        summary["contextual"] = contextual_summary(source, corpus=cfg.corpus, seed=cfg.seed, progress=cfg.progress)
    step("contextual")

    # -- report ------------------------------------------------------------------------------------
    summary["headline"] = headline(summary)
    summary["timings_s"] = timings
    summary["config"] = {k: v for k, v in asdict(cfg).items() if k != "corpus"}
    sections = _sections(summary, figs)
    page = R.html_page(
        f"tokembed inspect: {source.path.name}",
        sections,
        subtitle=f"{source.kind} source, {V:,} × {D}, fingerprint {source.fingerprint[:12]}",
    )

    atomic_write_text(out / "report.html", page)
    step("report")
    summary["timings_s"] = timings
    clean = _clean(summary)
    write_json(out / "summary.json", clean)
    if bar is not None:
        bar.close()
    return clean


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
