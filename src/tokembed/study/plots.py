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

__all__ = ["pareto_plot", "reliability_plot", "curves_plot", "band_plot", "train_bpb_curve", "finite", "DESIGN_STYLE",
           "design_style", "place_labels"]


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



#: One colour and marker per design, the same in every figure; tied and tied_bias are far apart in both.
DESIGN_STYLE: dict[str, tuple[str, str]] = {
    "untied": ("#1f77b4", "o"),  # blue circle
    "tied": ("#d62728", "s"),  # red square
    "tied_bias": ("#2ca02c", "D"),  # green diamond
    "factorized": ("#9467bd", "^"),  # purple triangle
    "adaptive": ("#ff7f0e", "v"),  # orange down-triangle
}
_OTHER = ("#7f7f7f", "X")


def design_style(design: str) -> tuple[str, str]:
    """(colour, marker) of a design in every study figure.

    >>> design_style("tied") != design_style("tied_bias")
    True
    """
    return DESIGN_STYLE.get(design, _OTHER)


def _tokenizer_colors(names: Sequence[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["Dark2"]
    return {n: cmap(i % 8) for i, n in enumerate(names)}


def _short_labels(rows) -> dict[str, str]:
    """Run id -> the shortest label that tells the runs of the plot apart: "tokenizer/design",
    plus V= when a kind has several vocabulary sizes and s<seed> when there are several seeds.

    >>> _short_labels([{"id": "a", "tokenizer": "byte", "design": "tied", "vocab_size": 259, "seed": 0}])
    {'a': 'byte/tied'}
    """
    vs: dict[str, set] = defaultdict(set)
    for r in rows:
        vs[r["tokenizer"]].add(r.get("vocab_size"))
    seeds = {r.get("seed") for r in rows}
    out = {}
    for r in rows:
        label = f"{r['tokenizer']}/{r['design']}"
        if len(vs[r["tokenizer"]]) > 1:
            label += f" V={r.get('vocab_size')}"
        if len(seeds) > 1:
            label += f" s{r.get('seed')}"
        out[r["id"]] = label
    return out


#: Label offsets (points) tried in order around a point, with the text alignment that keeps the text off it.
_LABEL_SPOTS = [(6, 5, "left", "bottom"), (6, -5, "left", "top"), (-6, 5, "right", "bottom"), (-6, -5, "right", "top"),
                (8, 16, "left", "bottom"), (8, -16, "left", "top"), (-8, 16, "right", "bottom"), (-8, -16, "right", "top"),
                (0, 28, "center", "bottom"), (0, -28, "center", "top")]


def place_labels(ax, points: Sequence[tuple[float, float]], labels: Sequence[str], *, fontsize: float = 7) -> list:
    """Annotate ``points`` with ``labels`` so that no label overlaps another label or a marker, nor leaves
    the axes: each label takes the first free spot of :data:`_LABEL_SPOTS` (a leader line for the far ones).
    Returns the text artists."""
    fig = ax.figure
    fig.canvas.draw()  # final limits and transforms
    renderer = fig.canvas.get_renderer()
    from matplotlib.transforms import Bbox

    frame = ax.get_window_extent(renderer)
    markers = [Bbox.from_bounds(x - 6, y - 6, 12, 12) for x, y in (ax.transData.transform(p) for p in points)]
    taken: list = []
    texts = []
    for (x, y), label in zip(points, labels):
        chosen = fallback = None
        for dx, dy, ha, va in _LABEL_SPOTS:
            far = abs(dy) > 10
            t = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize, ha=ha,
                            va=va, zorder=5, arrowprops={"arrowstyle": "-", "lw": 0.6, "color": "0.4"} if far else None,
                            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
            box = t.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(o) for o in taken + markers):
                chosen = (t, box)
                break
            if fallback is None:  # the first spot, kept when no spot is free
                fallback = (t, box)
            else:
                t.remove()
        if chosen is None:
            chosen = fallback
        elif fallback is not None:
            fallback[0].remove()
        taken.append(chosen[1])
        texts.append(chosen[0])
    return texts


def pareto_plot(rows, front) -> str:
    """Bits per byte vs total parameters, one point per run: colour = tokenizer, marker = design,
    hollow = a lossy tokenizer, circled and labelled = Pareto-optimal."""
    fig, ax = R.new_figure(8.6, 5.0)
    toks = list(dict.fromkeys(r["tokenizer"] for r in rows))
    col = _tokenizer_colors(toks)
    lossy = {r["tokenizer"] for r in rows if r.get("lossless") is False}
    for r in rows:
        c = col[r["tokenizer"]]
        hollow = r["tokenizer"] in lossy
        ax.scatter(r["total_params"], r["bits_per_byte"], marker=design_style(r["design"])[1], s=42, zorder=3,
                   facecolors="none" if hollow else c, edgecolors=c, linewidths=1.4)
    fx = [r["total_params"] for r in front]
    fy = [r["bits_per_byte"] for r in front]
    ax.step(fx, fy, where="post", color="black", lw=1.2, alpha=0.6, zorder=2)
    ax.scatter(fx, fy, s=150, facecolors="none", edgecolors="black", lw=1.2, zorder=4)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(_si_formatter())
    ax.xaxis.set_minor_formatter(_si_formatter())
    ax.tick_params(axis="x", which="both", labelsize=7)
    ax.set_xlabel("total parameters (log scale)")
    ax.set_ylabel("validation bits per byte (lower is better)")
    ax.set_title("Bits per byte vs parameters: each point is a run", fontsize=10)
    ax.grid(alpha=0.3)
    ax.margins(x=0.12, y=0.12)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", color=col[t], label=f"{t} (lossy)" if t in lossy else t) for t in toks]
    handles += [Line2D([], [], ls="", marker=design_style(d)[1], color="0.35", label=d)
                for d in dict.fromkeys(r["design"] for r in rows)]
    handles.append(Line2D([], [], color="black", alpha=0.6, marker="o", mfc="none", ms=9, label="Pareto frontier"))
    if lossy:
        handles.append(Line2D([], [], ls="", marker="o", mfc="none", color="0.35",
                              label="hollow: lossy tokenizer\n(bits per byte optimistic)"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="colour: tokenizer\n"
              "marker: design", title_fontsize=7, frameon=False)
    fig.tight_layout()
    labels = _short_labels(rows)
    place_labels(ax, list(zip(fx, fy)), [labels[r["id"]] for r in front])
    return R.figure_img(fig, alt="Pareto plot of bits per byte vs parameters",
                        caption="Each point is a run (colour: tokenizer, marker: design; hollow: a lossy tokenizer). "
                                "Circled points are Pareto-optimal: no other run has both fewer parameters and lower "
                                "bits per byte.", tight=False)


def _panel(rows) -> dict[str, str]:
    """Run id -> plot panel: the tokenizer, or "tokenizer V=..." when the study has several V of that kind."""
    vs: dict[str, set] = defaultdict(set)
    for r in rows:
        vs[r["tokenizer"]].add(r.get("vocab_size"))
    return {r["id"]: r["tokenizer"] if len(vs[r["tokenizer"]]) == 1 else f"{r['tokenizer']} V={r.get('vocab_size')}"
            for r in rows}


def _figure_legend(fig, designs: Sequence[str], *, line: bool = True) -> None:
    """One legend for the whole figure, below the panels (never over data): a design's colour and marker."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=design_style(d)[0], marker=design_style(d)[1], ms=4, ls="-" if line else "",
                      label=d) for d in designs]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=7, frameon=False,
               title="design", title_fontsize=7)


def _finish(fig, title: str, *, bottom: float) -> None:
    """Title on top, room for the figure legend at the bottom."""
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, bottom, 1, 0.95))


def reliability_plot(rows, details) -> str | None:
    """Reliability diagrams, tied vs untied per tokenizer: accuracy vs confidence in 15 bins, with the
    number of predictions in each bin as grey bars (right axis)."""
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
    fig, _ = R.new_figure(min(3.6 * n, 17), 3.8)
    fig.clf()
    axes = fig.subplots(1, n, squeeze=False)[0]
    for k, (ax, (t, shown)) in enumerate(zip(axes, pairs)):
        bars = ax.twinx()  # counts behind the curves
        ax.set_zorder(bars.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.plot([0, 1], [0, 1], color="gray", ls=":", lw=1)
        width = 1 / 15
        for j, r in enumerate(shown):
            rel = details[r["id"]]["reliability"]
            colour, marker = design_style(r["design"])
            pts = [(c_, a_) for c_, a_, n_ in zip(rel.get("confidence", []), rel.get("accuracy", []), rel.get("count", []))
                   if finite(c_) and finite(a_) and n_]
            counts = rel.get("count", [])
            lefts = [i * width + j * width / len(shown) for i in range(len(counts))]
            bars.bar(lefts, counts, width=width / len(shown), align="edge", color=colour, alpha=0.25)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, ms=3.5, color=colour,
                        label=f"{r['design']}: ECE {r['ece']:.3f}")
        top = max((c for r in shown for c in details[r["id"]]["reliability"].get("count", []) if finite(c)), default=1)
        bars.set_ylim(0, 3 * max(top, 1))  # the bars keep to the bottom third, under the curves
        bars.tick_params(labelsize=6)
        if k == n - 1:
            bars.set_ylabel("predictions per bin (bars)", fontsize=7)
        ax.set_title(t, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence of the top-1 prediction", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6.5, loc="lower right", frameon=False)  # ECE per panel: high confidence is rare here
    axes[0].set_ylabel("accuracy (dotted: perfect calibration)", fontsize=7)
    _figure_legend(fig, [d for d in ("untied", "tied") if any(r["design"] == d for _, sh in pairs for r in sh)])
    _finish(fig, "Calibration of next-token predictions, tied vs untied (15 equal-width bins)", bottom=0.12)
    return R.figure_img(fig, alt="Reliability diagrams, tied vs untied",
                        caption="Top-1 next-token accuracy vs confidence in 15 equal-width bins (empty bins left out); "
                                "the dotted diagonal is perfect calibration; the bars are the number of predictions in "
                                "each bin (right axis).", tight=False)


def curves_plot(rows, details) -> str | None:
    """Training loss in bits per byte vs text bytes seen, one panel per tokenizer, one colour per design."""
    panel = _panel(rows)
    toks = list(dict.fromkeys(panel[r["id"]] for r in rows))
    designs = list(dict.fromkeys(r["design"] for r in rows))
    n = len(toks)
    fig, _ = R.new_figure(min(3.3 * n, 16.5), 3.9)
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
                ax.plot(xs, ys, color=design_style(r["design"])[0], lw=1.2, alpha=0.85)
        ax.set_title(t, fontsize=9)
        ax.set_xlabel("text bytes seen", fontsize=8)
        ax.xaxis.set_major_formatter(_si_formatter())
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    if not drawn:
        import matplotlib.pyplot as plt

        plt.close(fig)
        return None
    axes[0].set_ylabel("training loss (bits per byte)", fontsize=8)
    _figure_legend(fig, designs, line=True)
    _finish(fig, "Training curves: loss in bits per byte vs text bytes seen (every seed)", bottom=0.13)
    return R.figure_img(fig, alt="Training curves: loss vs bytes seen",
                        caption="Training loss converted to bits per byte (loss / ln 2 / bytes per token) against text "
                                "bytes seen, so every tokenizer shares the axes.", tight=False)


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
    fig, _ = R.new_figure(min(3.3 * len(toks), 16.5), 2.8 * len(kinds) + 0.8)
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
                colour, marker = design_style(r["design"])
                ax.plot([pos[n] for n in labels], vals, marker=marker, ms=3, color=colour)
            ax.set_xticks(range(len(names)), names, fontsize=6, rotation=30)
            if i == 0:
                ax.set_title(t, fontsize=9)
            if j == 0:
                ax.set_ylabel(k, fontsize=8)
            if i == len(kinds) - 1:
                ax.set_xlabel("training count of the token (band)", fontsize=7)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    _figure_legend(fig, designs)
    _finish(fig, "Per token-frequency band (rarest left): embedding norm, its gradient, validation loss",
            bottom=0.07 if len(kinds) > 1 else 0.15)
    return R.figure_img(fig, alt="Frequency-band plots",
                        caption="Per token-frequency band (rarest first): mean embedding-row norm and mean "
                                "embedding-gradient norm over training, and validation loss per band. Bands are "
                                "decades of training count (0 = never seen, 1-9, 10-99, ...).", tight=False)


# -- page ------------------------------------------------------------------------
