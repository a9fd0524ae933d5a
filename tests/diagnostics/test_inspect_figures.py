"""Each figure of ``tokembed inspect`` reads without the HTML around it (issue 12, "Figures"):
a title naming the source, both axis labels, a legend that covers no data, labels that do not overlap."""

import importlib

import pytest

from tokembed.corpus import Corpus
from tokembed.diagnostics import InspectConfig, inspect
from tokembed.sources import load_embeddings

import numpy as np

from conftest import VOCAB, WORDS


@pytest.fixture
def figures(hf_models, tmp_path, monkeypatch):
    corpus_file = tmp_path / "corpus.txt"
    rng = np.random.default_rng(0)
    corpus_file.write_text("".join(" ".join(rng.choice(WORDS, 6)) + " 42.\n\n" for _ in range(200)))
    report = importlib.import_module("tokembed.report")
    original = report.figure_img
    seen = {}

    def record(fig, *, alt, **kw):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        leg = ax.get_legend()
        seen[alt] = {
            "title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
            "axes_box": ax.get_window_extent(renderer),
            "legend_box": leg.get_window_extent(renderer) if leg is not None else None,
            "label_boxes": [t.get_window_extent(renderer) for t in ax.texts],
        }
        return original(fig, alt=alt, **kw)

    monkeypatch.setattr(report, "figure_img", record)
    folder, _ = hf_models["bert"]
    cfg = InspectConfig(corpus=Corpus([str(corpus_file)]), progress=False, projector_rows=0,
                        tsne=importlib.util.find_spec("sklearn") is not None,
                        label_tokens=VOCAB[10:60])  # 50 labels on a small plot: they would collide
    inspect(load_embeddings(folder), tmp_path / "rep", cfg)
    return folder.name, seen


def test_every_figure_has_a_title_naming_the_source_and_axis_labels(figures):
    name, seen = figures
    assert {"pca_classes", "norms", "spectrum"} <= set(seen)
    for alt, f in seen.items():
        assert name in f["title"], (alt, f["title"])
        assert f["xlabel"] and f["ylabel"], (alt, f["xlabel"], f["ylabel"])


def test_legends_sit_outside_the_data(figures):
    _, seen = figures
    with_legend = [alt for alt, f in seen.items() if f["legend_box"] is not None]
    assert "pca_classes" in with_legend
    for alt in with_legend:
        assert not seen[alt]["legend_box"].overlaps(seen[alt]["axes_box"]), alt


def test_point_labels_do_not_overlap(figures):
    _, seen = figures
    for alt in ("pca_classes", "tsne_classes"):
        if alt not in seen:
            continue
        boxes = seen[alt]["label_boxes"]
        assert len(boxes) >= 5, alt
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert not a.overlaps(b), (alt, a, b)
