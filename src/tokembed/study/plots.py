"""The figures of ``report.html``: Pareto plot, reliability diagrams, training curves, frequency bands.

Unlike :mod:`tokembed.study.report` (the recommendations and the page) this module only draws,
each figure as an inline PNG (:func:`tokembed.report.figure_img`); matplotlib is imported when a
figure is drawn.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from .. import report as R

__all__ = ["pareto_plot", "reliability_plot", "curves_plot", "band_plot", "train_bpb_curve", "finite"]


def finite(x: Any) -> bool:
    """True for a finite int or float (a value a plot or a claim can use).

    >>> finite(1.5), finite(float("nan")), finite(None)
    (True, False, False)
    """
    return isinstance(x, (int, float)) and math.isfinite(x)


def train_bpb_curve(history: Sequence[Mapping[str, Any]], bytes_per_token: float) -> tuple[list[float], list[float]]:
    """(bytes seen, training loss in bits per byte) from a run's history: ``loss / ln 2 / bytes_per_token``.

    >>> train_bpb_curve([{"bytes": 100, "loss": math.log(2) * 4}], 4.0)
    ([100.0], [1.0])
    """
    xs, ys = [], []
    for h in history:
        if finite(h.get("loss")) and finite(h.get("bytes")):
            xs.append(float(h["bytes"]))
            ys.append(float(h["loss"]) / math.log(2) / bytes_per_token)
    return xs, ys



_MARKERS = {"untied": "o", "tied": "s", "tied_bias": "D", "factorized": "^", "adaptive": "v"}


def _colors(names: Sequence[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {n: cmap(i % 10) for i, n in enumerate(names)}


def pareto_plot(rows, front) -> str:
    fig, ax = R.new_figure(7.5, 4.6)
    toks = list(dict.fromkeys(r["tokenizer"] for r in rows))
    col = _colors(toks)
    for r in rows:
        ax.scatter(r["total_params"], r["bits_per_byte"], color=col[r["tokenizer"]], marker=_MARKERS.get(r["design"], "x"),
                   s=40, zorder=3)
    fx = [r["total_params"] for r in front]
    fy = [r["bits_per_byte"] for r in front]
    ax.step(fx, fy, where="post", color="black", lw=1.2, alpha=0.6, zorder=2, label="Pareto frontier")
    ax.scatter(fx, fy, s=140, facecolors="none", edgecolors="black", lw=1.4, zorder=4)
    for r in front:
        ax.annotate(r["id"], (r["total_params"], r["bits_per_byte"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", color=col[t], label=t) for t in toks]
    handles += [Line2D([], [], ls="", marker=_MARKERS.get(d, "x"), color="gray", label=d)
                for d in dict.fromkeys(r["design"] for r in rows)]
    handles.append(Line2D([], [], color="black", alpha=0.6, label="Pareto frontier"))
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(_si_formatter())
    ax.xaxis.set_minor_formatter(_si_formatter())
    ax.tick_params(axis="x", which="both", labelsize=7)
    ax.set_xlabel("total parameters (log scale)")
    ax.set_ylabel("validation bits per byte (lower is better)")
    ax.grid(alpha=0.3)
    return R.figure_img(fig, alt="Pareto plot of bits per byte vs parameters",
                        caption="Each point is a run; circled points are Pareto-optimal (labelled with their row id).")


def _panel(rows) -> dict[str, str]:
    """Run id -> plot panel: the tokenizer, or "tokenizer V=..." when the study has several V of that kind."""
    vs: dict[str, set] = defaultdict(set)
    for r in rows:
        vs[r["tokenizer"]].add(r.get("vocab_size"))
    return {r["id"]: r["tokenizer"] if len(vs[r["tokenizer"]]) == 1 else f"{r['tokenizer']} V={r.get('vocab_size')}"
            for r in rows}


def reliability_plot(rows, details) -> str | None:
    panel = _panel(rows)
    toks = list(dict.fromkeys(panel[r["id"]] for r in rows))
    pairs = []
    for t in toks:
        by_design = {r["design"]: r for r in rows if panel[r["id"]] == t and r.get("seed") == rows[0].get("seed")}
        shown = [by_design[d] for d in ("untied", "tied") if d in by_design and details.get(by_design[d]["id"], {}).get("reliability")]
        if shown:
            pairs.append((t, shown))
    if not pairs:
        return None
    n = len(pairs)
    fig, axes = R.new_figure(min(3.0 * n, 15), 3.3)
    fig.clf()
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (t, shown) in zip(axes, pairs):
        ax.plot([0, 1], [0, 1], color="gray", ls=":", lw=1)
        for r, c in zip(shown, ("tab:blue", "tab:orange")):
            rel = details[r["id"]]["reliability"]
            pts = [(c_, a_) for c_, a_, n_ in zip(rel.get("confidence", []), rel.get("accuracy", []), rel.get("count", []))
                   if finite(c_) and finite(a_) and n_]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, color=c,
                        label=f"{r['design']} (ECE {r['ece']:.3f})")
        ax.set_title(t, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence", fontsize=8)
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("accuracy", fontsize=8)
    return R.figure_img(fig, alt="Reliability diagrams, tied vs untied",
                        caption="Top-1 next-token accuracy vs confidence in 15 equal-width bins (empty bins left out); "
                                "the dotted diagonal is perfect calibration.")


def curves_plot(rows, details) -> str | None:
    panel = _panel(rows)
    toks = list(dict.fromkeys(panel[r["id"]] for r in rows))
    designs = list(dict.fromkeys(r["design"] for r in rows))
    col = _colors(designs)
    n = len(toks)
    fig, _ = R.new_figure(min(3.2 * n, 16), 3.4)
    fig.clf()
    axes = fig.subplots(1, n, squeeze=False, sharey=True)[0]
    drawn = False
    for ax, t in zip(axes, toks):
        for r in rows:
            if panel[r["id"]] != t:
                continue
            xs, ys = train_bpb_curve(details.get(r["id"], {}).get("history", []), r["bytes_per_token"])
            if xs:
                drawn = True
                ax.plot(xs, ys, color=col[r["design"]], lw=1.2, alpha=0.85,
                        label=r["design"] if r.get("seed") == rows[0].get("seed") else None)
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("text bytes seen", fontsize=8)
        ax.xaxis.set_major_formatter(_si_formatter())
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    if not drawn:
        import matplotlib.pyplot as plt

        plt.close(fig)
        return None
    axes[0].set_ylabel("train loss (bits per byte)", fontsize=8)
    axes[-1].legend(fontsize=7)
    return R.figure_img(fig, alt="Training curves: loss vs bytes seen",
                        caption="Training loss converted to bits per byte (loss / ln 2 / bytes per token) against text "
                                "bytes seen, so every tokenizer shares the axes.")


def _si_formatter():
    from matplotlib.ticker import EngFormatter

    return EngFormatter(sep="")


def _band_series(det: Mapping[str, Any]) -> dict[str, list[tuple[str, float]]]:
    """{"embedding norm"|"embedding grad norm"|"validation loss": [(band label, value)]} of one run.

    From ``TrainResult.band_stats`` (``bands`` with ``name``; ``mean_norm``/``mean_grad_norm``: the mean over
    logged steps per band) and ``EvalResult.band_loss`` (per band: ``name``, ``loss``).
    """
    out: dict[str, list[tuple[str, float]]] = {}
    bs = det.get("band_stats") or {}
    bands = bs.get("bands") or []
    names = [str(b.get("name", i)) if isinstance(b, Mapping) else str(i) for i, b in enumerate(bands)]
    for key, label in (("mean_norm", "embedding norm"), ("mean_grad_norm", "embedding grad norm")):
        vals = bs.get(key) or []
        pts = [(n, float(v)) for n, v in zip(names, vals) if finite(v)]
        if pts:
            out[label] = pts
    pts = [(str(b.get("name", i)), float(b["loss"])) for i, b in enumerate(det.get("band_loss") or [])
           if isinstance(b, Mapping) and finite(b.get("loss"))]
    if pts:
        out["validation loss (nats/token)"] = pts
    return out


def _band_order(name: str) -> float:
    """Sort key of a band name ('0', '1-9', '10-99', ...): its lower count bound."""
    try:
        return float(name.split("-")[0])
    except ValueError:
        return math.inf


def band_plot(rows, details) -> str | None:
    series = {r["id"]: _band_series(details.get(r["id"], {})) for r in rows}
    kinds = [k for k in ("embedding norm", "embedding grad norm", "validation loss (nats/token)")
             if any(k in s for s in series.values())]
    if not kinds:
        return None
    panel = _panel(rows)
    toks = list(dict.fromkeys(panel[r["id"]] for r in rows))
    designs = list(dict.fromkeys(r["design"] for r in rows))
    col = _colors(designs)
    fig, _ = R.new_figure(min(3.2 * len(toks), 16), 2.8 * len(kinds))
    fig.clf()
    axes = fig.subplots(len(kinds), len(toks), squeeze=False)
    for j, t in enumerate(toks):
        for i, k in enumerate(kinds):
            ax = axes[i][j]
            mine = [r for r in rows if panel[r["id"]] == t and r.get("seed") == rows[0].get("seed") and k in series[r["id"]]]
            names = sorted({n for r in mine for n, _ in series[r["id"]][k]}, key=_band_order)  # one x axis per panel
            pos = {n: i for i, n in enumerate(names)}
            for r in mine:
                labels, vals = zip(*series[r["id"]][k])
                ax.plot([pos[n] for n in labels], vals, marker="o", ms=3, color=col[r["design"]], label=r["design"])
            ax.set_xticks(range(len(names)), names, fontsize=6, rotation=30)
            if i == 0:
                ax.set_title(t, fontsize=9)
            if j == 0:
                ax.set_ylabel(k, fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=6)
    return R.figure_img(fig, alt="Frequency-band plots",
                        caption="Per token-frequency band (rarest first): mean embedding-row norm and mean "
                                "embedding-gradient norm over training, and validation loss per band. Bands are "
                                "decades of training count (0 = never seen, 1-9, 10-99, ...).")


# -- page ------------------------------------------------------------------------
