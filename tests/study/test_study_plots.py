"""The study's figures stand on their own: titles, axis labels, legends off the data, labels that do not
overlap, one style per design, bin counts on reliability diagrams, lossy tokenizers marked (issue 12)."""

from __future__ import annotations

import itertools

import pytest

matplotlib = pytest.importorskip("matplotlib")

from tokembed import report as R  # noqa: E402
from tokembed.study import plots  # noqa: E402
from tokembed.study.plots import DESIGN_STYLE, design_style, place_labels  # noqa: E402
from tokembed.study.report import pareto_front  # noqa: E402


@pytest.fixture
def figures(monkeypatch):
    """Capture the matplotlib figure each plot function hands to figure_img (rendered, not closed)."""
    got = []

    def capture(fig, *, alt, caption="", path=None, tight=True):
        fig.canvas.draw()
        got.append(fig)
        return f"<img alt='{alt}'>"

    monkeypatch.setattr(plots.R, "figure_img", capture)
    yield got
    import matplotlib.pyplot as plt

    for f in got:
        plt.close(f)


def _rows():
    rows = []
    for tok, lossless in (("byte", True), ("bytebpe", True), ("wordpiece", False)):
        for k, design in enumerate(DESIGN_STYLE):
            rows.append({"id": f"{tok}-{design}-V512-s0", "tokenizer": tok, "design": design, "vocab_size": 512,
                         "seed": 0, "total_params": 30_000 + 4_000 * k + (k % 2) * 50, "ece": 0.02,
                         "bits_per_byte": 4.0 - 0.06 * k + (0.2 if tok == "byte" else 0.0) - 0.004 * len(tok),
                         "bytes_per_token": 1.0 if tok == "byte" else 2.0, "lossless": lossless})
    return rows


def _details(rows):
    rel = {"count": [0, 40, 300, 900, 400, 90, 20, 5, 0, 0, 0, 0, 0, 0, 0],
           "confidence": [None] + [0.03 + 0.066 * i for i in range(1, 8)] + [None] * 7,
           "accuracy": [None] + [0.02 + 0.07 * i for i in range(1, 8)] + [None] * 7}
    hist = [{"bytes": 1000 * i, "loss": 3.0 - 0.01 * i} for i in range(1, 20)]
    bands = {"bands": [{"name": "0"}, {"name": "1-9"}], "mean_norm": [0.1, 0.2], "mean_grad_norm": [0.01, 0.02]}
    return {r["id"]: {"reliability": rel, "history": hist, "band_stats": bands,
                      "band_loss": [{"name": "1-9", "loss": 5.0}]} for r in rows}


def _overlap(a, b) -> bool:
    return a.overlaps(b)


def test_tied_and_tied_bias_never_share_a_colour_or_a_marker():
    colours = [c for c, _ in DESIGN_STYLE.values()]
    markers = [m for _, m in DESIGN_STYLE.values()]
    assert len(set(colours)) == len(colours) and len(set(markers)) == len(markers)
    assert design_style("tied")[0] != design_style("tied_bias")[0]


def test_pareto_labels_do_not_overlap_each_other_or_the_markers(figures):
    rows = _rows()
    front = pareto_front(rows)
    plots.pareto_plot(rows, front)
    fig = figures[0]
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    texts = [t for t in ax.texts]
    assert len(texts) == len(front) >= 3
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert not any(_overlap(a, b) for a, b in itertools.combinations(boxes, 2))
    frame = ax.get_window_extent(renderer)
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 for b in boxes)  # inside the axes


def test_place_labels_spreads_a_crowd_of_points(figures):
    fig, ax = R.new_figure(5, 4)
    pts = [(1.0, 1.0), (1.02, 1.01), (1.04, 0.99), (1.01, 1.03), (2.0, 2.0), (0.0, 0.0)]
    ax.scatter(*zip(*pts))
    texts = place_labels(ax, pts, [f"run number {i}" for i in range(len(pts))])
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert len(ax.texts) == len(pts)  # every label drawn once, the rejected spots removed
    assert sum(_overlap(a, b) for a, b in itertools.combinations(boxes, 2)) == 0
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_every_figure_has_a_title_axis_labels_and_a_legend_off_the_data(figures):
    rows = _rows()
    details = _details(rows)
    plots.pareto_plot(rows, pareto_front(rows))
    plots.reliability_plot(rows, details)
    plots.curves_plot(rows, details)
    plots.band_plot(rows, details)
    assert len(figures) == 4
    pareto, rel, curves, bands = figures
    assert pareto.axes[0].get_title() and pareto.axes[0].get_xlabel() and pareto.axes[0].get_ylabel()
    for fig in (rel, curves, bands):
        assert fig._suptitle is not None and fig._suptitle.get_text()
        assert fig.legends, "one figure-level legend, below the panels"
        renderer = fig.canvas.get_renderer()
        legend = fig.legends[0].get_window_extent(renderer)
        for ax in fig.axes:
            assert not legend.overlaps(ax.get_window_extent(renderer)), "the legend covers a panel"
        main = [ax for ax in fig.axes if ax.get_xlabel()]
        assert main, "x axes are labelled"
        assert any(ax.get_ylabel() for ax in fig.axes)


def test_pareto_marks_lossy_tokenizers(figures):
    rows = _rows()
    plots.pareto_plot(rows, pareto_front(rows))
    ax = figures[0].axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "wordpiece (lossy)" in legend and "byte" in legend and any("hollow" in t for t in legend)
    hollow = [c for c in ax.collections if len(c.get_facecolors()) == 0]  # facecolors="none"
    assert len(hollow) >= len([r for r in rows if not r["lossless"]])


def test_reliability_diagrams_show_the_count_of_every_bin(figures):
    rows = _rows()
    details = _details(rows)
    plots.reliability_plot(rows, details)
    fig = figures[0]
    counts = details[rows[0]["id"]]["reliability"]["count"]
    bar_axes = [ax for ax in fig.axes if ax.patches]
    assert bar_axes, "no bars drawn"
    heights = sorted(round(p.get_height()) for p in bar_axes[0].patches)
    assert heights == sorted(counts * 2)  # untied and tied, 15 bins each
