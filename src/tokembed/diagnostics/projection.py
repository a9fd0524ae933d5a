"""2-D projections of an embedding matrix and the TensorBoard Embedding Projector export.

PCA always (from the streamed covariance of :mod:`tokembed.diagnostics.geometry`, so the
whole table is projected without a second copy); t-SNE (scikit-learn) and UMAP (optional
``umap-learn``) on a random sample, because both are super-linear in the number of points.
Scatter plots colour points by token class or frequency band and label chosen tokens.
The projector export writes ``vectors.tsv``, ``metadata.tsv`` and ``projector_config.pbtxt``
that ``tensorboard --logdir DIR`` (or projector.tensorflow.org, "Load") reads.

Shapes: N projected points, D width.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import require
from ..artifacts import atomic_write_text
from ..report import new_figure

__all__ = ["tsne_2d", "umap_2d", "scatter", "export_projector", "TSNE_MAX_POINTS"]

#: t-SNE/UMAP run on at most this many sampled rows (t-SNE is O(N log N) per iteration with a large constant)
TSNE_MAX_POINTS = 3000
_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def tsne_2d(X: np.ndarray, *, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """(N, 2) t-SNE of the rows (scikit-learn, PCA init, cosine metric)."""
    from sklearn.manifold import TSNE

    n = X.shape[0]
    return TSNE(
        n_components=2,
        init="pca",
        metric="cosine",
        perplexity=min(perplexity, max(2.0, (n - 1) / 3)),
        random_state=seed,
    ).fit_transform(np.asarray(X, dtype=np.float32))


def umap_2d(X: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """(N, 2) UMAP of the rows (needs the optional ``umap-learn``)."""
    umap = require("umap", extra="umap", feature="UMAP projections")
    return umap.UMAP(n_components=2, metric="cosine", random_state=seed).fit_transform(np.asarray(X, dtype=np.float32))


def scatter(
    coords: np.ndarray,
    groups: Sequence[str],
    *,
    title: str,
    labels: Mapping[int, str] | None = None,
    order: Sequence[str] | None = None,
    xlabel: str = "",
    ylabel: str = "",
):
    """A matplotlib figure: points coloured by group, ``labels`` = {point index: text} written next to
    points without overlapping each other (a label with no free place is left out, its point stays
    marked). The legend (group: count) sits right of the axes, so it never covers data."""
    fig, ax = new_figure(8.2, 5.5)
    groups = np.asarray(groups, dtype=object)
    names = [g for g in (order or sorted(set(groups.tolist()), key=str)) if np.any(groups == g)]
    for c, g in enumerate(names):
        m = groups == g
        ax.scatter(
            coords[m, 0],
            coords[m, 1],
            s=4,
            alpha=0.5,
            color=_PALETTE[c % len(_PALETTE)],
            label=f"{g} ({int(m.sum())})",
            linewidths=0,
        )
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(markerscale=3, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
              title="group (points)", title_fontsize=8)
    if labels:
        idx = list(labels)
        ax.scatter(coords[idx, 0], coords[idx, 1], s=14, color="black")
        place_labels(ax, coords, labels)
    return fig


#: Offsets (points) tried in turn for a label: right-up, right-down, left-up, left-down, then further out.
_LABEL_OFFSETS = [(3, 3), (3, -11), (-3, 3), (-3, -11), (3, 12), (3, -20), (-3, 12), (-3, -20)]


def place_labels(ax, coords: np.ndarray, labels: Mapping[int, str], *, fontsize: int = 8) -> int:
    """Write ``labels`` next to their points, each at the first offset where it overlaps no label
    already placed (greedy, in display space); returns how many were left out for lack of room."""
    fig = ax.figure
    fig.canvas.draw()  # fixes the data limits and the renderer
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    skipped = 0
    for i, text in labels.items():
        for dx, dy in _LABEL_OFFSETS:
            ha = "left" if dx >= 0 else "right"
            t = ax.annotate(text, coords[i], fontsize=fontsize, xytext=(dx, dy), textcoords="offset points", ha=ha,
                            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7})
            box = t.get_window_extent(renderer)
            if not any(box.overlaps(b) for b in placed):
                placed.append(box)
                break
            t.remove()
        else:
            skipped += 1
    return skipped


def _tsv_cell(s: str) -> str:
    """Projector TSV cells cannot hold tabs or newlines; empty cells confuse it too."""
    s = s.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return s if s.strip() else repr(s)


def export_projector(
    out_dir: str | os.PathLike,
    X: np.ndarray,
    rows: Sequence[int],
    metadata: Mapping[str, Sequence],
    *,
    tensor_name: str = "embeddings",
) -> Path:
    """Write the TensorBoard Embedding Projector files for ``rows`` of ``X``.

    ``metadata`` maps column name -> (V,) values (the first column should be the token).
    Returns the folder. Files: ``vectors.tsv`` (one row of D floats per point),
    ``metadata.tsv`` (header + one line per point), ``projector_config.pbtxt``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = np.asarray(rows, dtype=np.int64)
    V = np.nan_to_num(np.asarray(X[rows], dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    import io

    buf = io.StringIO()
    np.savetxt(buf, V, fmt="%.6g", delimiter="\t")  # (N, D) one row per point
    atomic_write_text(out / "vectors.tsv", buf.getvalue())
    cols = list(metadata)
    meta = ["\t".join(cols)]
    for i in rows.tolist():
        meta.append("\t".join(_tsv_cell(str(metadata[c][i])) for c in cols))
    atomic_write_text(out / "metadata.tsv", "\n".join(meta) + "\n")
    atomic_write_text(
        out / "projector_config.pbtxt",
        "embeddings {\n"
        f'  tensor_name: "{tensor_name}"\n'
        f"  tensor_shape: {rows.size}\n  tensor_shape: {V.shape[1]}\n"
        '  tensor_path: "vectors.tsv"\n'
        '  metadata_path: "metadata.tsv"\n'
        "}\n",
    )
    return out
