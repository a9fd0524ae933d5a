"""The figures of ``tokembed inspect``: PCA / t-SNE / UMAP scatters, the Projector export, and the
distributions (row norms, spectrum, norm vs frequency, neighbour coherence, under-trained indicator).

Unlike :mod:`tokembed.diagnostics.inspect` (which computes the summary and writes the page) this
module only draws, from the shared inspection context; :mod:`~tokembed.diagnostics.projection`
holds the projection methods themselves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import report as R
from ..metrics import band_name, band_names, frequency_decades
from .projection import TSNE_MAX_POINTS, export_projector, scatter, tsne_2d, umap_2d
from .token_classes import CLASSES

__all__ = ["projection_figures", "distribution_figures"]

_METHOD_NAMES = {"tsne": "t-SNE", "umap": "UMAP"}


def _pc_axes(var_share: np.ndarray) -> dict[str, str]:
    """Axis labels of a PCA scatter: the component and its share of the variance."""
    return {"xlabel": f"PC 1 ({var_share[0]:.1%} of variance)", "ylabel": f"PC 2 ({var_share[1]:.1%} of variance)"}


def _label_rows(tokens, chosen, counts, classes, n=12) -> list[int]:
    ids = [i for i in (tokens.get(t) for t in chosen) if i is not None]
    if ids:
        return ids
    cand = np.flatnonzero(classes == "word-initial")
    if counts is not None:
        cand = cand[np.argsort(-counts[cand], kind="stable")]
        return cand[:n].tolist()
    return cand[np.linspace(0, cand.size - 1, min(n, cand.size)).astype(int)].tolist() if cand.size else []


def projection_figures(ctx) -> dict[str, Any]:
    """PCA scatters (by token class, by frequency band), optional t-SNE/UMAP, the Projector export;
    sets ``ctx.label_ids`` (the tokens named in the plots and the neighbour examples)."""
    cfg, X, unit, tokens, classes, counts, rng = ctx.cfg, ctx.X, ctx.unit, ctx.tokens, ctx.classes, ctx.counts, ctx.rng
    V = X.shape[0]
    ok = np.flatnonzero(unit[1])
    pts = ok if ok.size <= cfg.plot_points else np.sort(rng.choice(ok, cfg.plot_points, replace=False))
    ctx.label_ids = label_ids = _label_rows(ctx.source.vocab, cfg.label_tokens, counts, classes)
    pts = np.union1d(pts, [i for i in label_ids if unit[1][i]]).astype(np.int64)
    pos = {int(i): j for j, i in enumerate(pts)}
    lab = {pos[i]: tokens[i] for i in label_ids if i in pos}
    coords = ctx.spec.project(X[pts], 2)
    var_share = ctx.spec.variances / max(ctx.spec.variances.sum(), 1e-30)
    ctx.fig(
        "pca_classes",
        scatter(coords, classes[pts], title=f"{ctx.name}: PCA of the rows, by token class", labels=lab, order=CLASSES,
                **_pc_axes(var_share)),
        f"first two principal components ({var_share[0]:.1%} and {var_share[1]:.1%} of the variance); {pts.size:,} of {V:,} rows",
    )
    groups_band = None
    if counts is not None:
        groups_band = np.array(band_names(counts), dtype=object)
        order = [band_name(int(d)) for d in np.unique(frequency_decades(counts))]
        ctx.fig("pca_frequency", scatter(coords, groups_band[pts], title=f"{ctx.name}: PCA of the rows, by corpus count band",
                                         labels=lab, order=order, **_pc_axes(var_share)),
                "count bands on the corpus, tokenized with the source's own tokenizer")
    proj: dict[str, Any] = {"pca_variance_share": var_share[:10].tolist(), "plotted_points": int(pts.size)}
    for method, fn, want in (("tsne", tsne_2d, cfg.tsne), ("umap", umap_2d, cfg.umap)):
        if want:
            proj[method] = _nonlinear_figure(ctx, method, fn, ok)
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
        export_projector(ctx.out / "projector", X, rows, meta)
        proj["projector_rows"] = int(len(rows))
    return proj


def _nonlinear_figure(ctx, method: str, fn, ok: np.ndarray) -> dict[str, int]:
    """A t-SNE or UMAP scatter of a sample of rows, by token class."""
    unit, tokens, label_ids = ctx.unit, ctx.tokens, ctx.label_ids
    sm = ok if ok.size <= TSNE_MAX_POINTS else np.sort(ctx.rng.choice(ok, TSNE_MAX_POINTS, replace=False))
    sm = np.union1d(sm, [i for i in label_ids if unit[1][i]]).astype(np.int64)
    c2 = fn(ctx.X[sm], seed=ctx.cfg.seed)
    p2 = {int(i): j for j, i in enumerate(sm)}
    ctx.fig(
        f"{method}_classes",
        scatter(c2, ctx.classes[sm], title=f"{ctx.name}: {_METHOD_NAMES[method]} of {sm.size:,} rows, by token class",
                labels={p2[i]: tokens[i] for i in label_ids if i in p2}, order=CLASSES,
                xlabel=f"{_METHOD_NAMES[method]} 1 (no unit)", ylabel=f"{_METHOD_NAMES[method]} 2 (no unit)"),
        f"{method.upper()} of {sm.size:,} sampled rows (cosine metric)",
    )
    return {"points": int(sm.size)}


def distribution_figures(ctx) -> None:
    """Row-norm histogram, cumulative spectrum, and (with counts) norm vs frequency and neighbour
    coherence per band; the under-trained indicator histogram."""
    norms, D = ctx.norms, ctx.X.shape[1]
    var_share = ctx.spec.variances / max(ctx.spec.variances.sum(), 1e-30)
    geo = ctx.summary["geometry"]
    f, ax = R.new_figure()
    ax.hist(norms[np.isfinite(norms)], bins=80, color="#1f77b4")
    ax.set_xlabel("L2 norm of row")
    ax.set_ylabel("tokens")
    ax.set_title(f"{ctx.name}: row norms of the input embedding ({ctx.X.shape[0]:,} rows)")
    ctx.fig("norms", f, "distribution of row norms")
    f, ax = R.new_figure()
    ax.plot(np.arange(1, D + 1), np.cumsum(var_share), color="#d62728")
    ax.set_xlabel("principal components")
    ax.set_ylabel("cumulative variance share")
    ax.set_ylim(0, 1.01)
    ax.set_title(f"{ctx.name}: variance spectrum (IsoScore {geo['isoscore']:.3f}, "
                 f"effective rank {geo['effective_rank']:.1f} of {D})")
    ctx.fig("spectrum", f, f"IsoScore {geo['isoscore']:.3f}; effective rank {geo['effective_rank']:.1f} of {D}")
    if ctx.counts is not None:
        _frequency_figures(ctx)
    ut = ctx.summary["undertrained"]
    if ut["main_indicator"]:
        vals = ut["_indicators"][ut["main_indicator"]]
        f, ax = R.new_figure()
        ax.hist(vals[np.isfinite(vals)], bins=100, color="#9467bd", log=True)
        if ut["candidate_threshold"] is not None:
            thr = ut["candidate_threshold"] if ut["main_indicator"] != "input_norm" else -ut["candidate_threshold"]
            ax.axvline(thr, color="k", ls="--")
        ax.set_xlabel(ut["main_indicator"])
        ax.set_ylabel("tokens (log scale)")
        ax.set_title(f"{ctx.name}: under-trained token indicator"
                     + ("; dashed: candidate threshold" if ut["candidate_threshold"] is not None else ""))
        ctx.fig("undertrained", f, "indicator distribution; dashed: candidate threshold")


def _frequency_figures(ctx) -> None:
    counts, norms, k = ctx.counts, ctx.norms, ctx.cfg.k
    fsum = ctx.summary["frequency"]
    seen = np.flatnonzero((counts > 0) & np.isfinite(norms))
    sm = seen if seen.size <= 20000 else ctx.rng.choice(seen, 20000, replace=False)
    f, ax = R.new_figure()
    ax.scatter(np.log10(counts[sm]), norms[sm], s=3, alpha=0.4, linewidths=0)
    ax.set_xlabel("log10 count on corpus")
    ax.set_ylabel("row norm")
    ax.set_title(f"{ctx.name}: row norm vs corpus frequency (r = {fsum['norm_logfreq_correlation']:.3f})")
    ctx.fig("norm_vs_frequency", f, f"Pearson r(log count, norm) = {fsum['norm_logfreq_correlation']:.3f}; "
            f"{fsum['never_seen']:,} tokens never seen")
    bands = [b for b in fsum["bands"] if b["sampled"]]
    names = [b["band"] for b in bands]
    f, ax = R.new_figure()
    ax.plot(names, [b[f"mean_top{k}_cosine"] for b in bands], marker="o", label=f"mean top-{k} cosine")
    ax.plot(names, [b["same_band_neighbours"] for b in bands], marker="s", label="neighbours in same band")
    ax.plot(names, [b["same_band_chance"] for b in bands], ls=":", color="#ff7f0e", label="same band by chance")
    ax.set_xlabel("frequency band (count on corpus)")
    ax.set_ylabel("share / cosine")
    ax.set_title(f"{ctx.name}: neighbour coherence per frequency band")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    f.set_size_inches(8.2, 4.0)
    ctx.fig("coherence_vs_frequency", f, "neighbour coherence per frequency band (sampled tokens)")
