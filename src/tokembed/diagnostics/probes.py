"""Linear probes: can a logistic regression read a token property off its embedding row?

Each probe trains scikit-learn's ``LogisticRegression`` on a random split of the labelled
tokens and reports held-out accuracy against two baselines: the **majority** class, and a
**control task** (Hewitt & Liang 2019) where the same labels are shuffled over the tokens —
a probe that also fits the control task is memorising, not reading. **Selectivity** =
accuracy − control accuracy. Labels come from the token strings
(:func:`tokembed.diagnostics.token_classes.string_labels`) or from a ``token,label`` CSV.

Shapes: N labelled rows, D width.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import ConfigError

__all__ = ["run_probe", "read_label_csv", "MAX_PROBE_ROWS", "MIN_CLASS_SIZE"]

#: probes train on at most this many tokens (a random sample) to stay fast on large vocabularies
MAX_PROBE_ROWS = 4000
#: classes with fewer labelled tokens than this are dropped (they cannot appear in both splits)
MIN_CLASS_SIZE = 5


def read_label_csv(path: str | os.PathLike, vocab) -> tuple[dict[int, str], dict]:
    """``token,label`` rows (a header line ``token,label`` is skipped) -> {row id: label}, plus stats.

    Tokens missing from the vocabulary are counted and listed, never fatal.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: label file not found; pass a CSV with lines 'token,label'")
    out: dict[int, str] = {}
    missing: list[str] = []
    with open(path, newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row or (lineno == 1 and [c.strip().lower() for c in row[:2]] == ["token", "label"]):
                continue
            if len(row) < 2:
                raise ConfigError(
                    f"{path}:{lineno}: expected 'token,label', got {row!r}; quote tokens that hold commas"
                )
            tok, label = row[0], row[1].strip()
            i = vocab.get(tok)
            if i is None:
                missing.append(tok)
            else:
                out[i] = label
    if not out:
        raise ConfigError(
            f"{path}: none of its {len(missing)} tokens is in the vocabulary (e.g. {missing[:3]}); "
            "write the tokens as the vocabulary spells them (e.g. '##ing', 'Ġthe')"
        )
    return out, {"labelled": len(out), "missing": len(missing), "missing_examples": missing[:10]}


def _fit_score(Xtr, ytr, Xte, yte, seed) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, random_state=seed))
    import warnings

    from threadpoolctl import threadpool_limits

    # one BLAS thread: these are small problems, and on a busy machine thread hand-offs cost 30x (measured)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter is expected on hard tasks
        clf.fit(Xtr, ytr)
    with threadpool_limits(1):
        return float((clf.predict(Xte) == yte).mean())


def run_probe(
    X: np.ndarray, labels, *, name: str, max_rows: int = MAX_PROBE_ROWS, test_size: float = 0.3, seed: int = 0
) -> dict:
    """Train/test one probe. ``labels`` is (V,) with None for unlabelled rows (or a {row: label} dict)."""
    V = X.shape[0]
    if isinstance(labels, dict):
        lab = np.full(V, None, dtype=object)
        for i, v in labels.items():
            lab[i] = v
    else:
        lab = np.asarray(labels, dtype=object)
    ok = np.array([v is not None for v in lab]) & np.isfinite(X).all(axis=1)
    idx = np.flatnonzero(ok)
    counts = Counter(lab[idx].tolist())
    keep_classes = {c for c, n in counts.items() if n >= MIN_CLASS_SIZE}
    idx = np.array([i for i in idx if lab[i] in keep_classes], dtype=np.int64)
    result = {"probe": name, "classes": len(keep_classes), "labelled": int(idx.size)}
    if len(keep_classes) < 2:
        result["skipped"] = f"needs two classes with ≥ {MIN_CLASS_SIZE} tokens each; has {dict(counts)}"
        return result
    rng = np.random.default_rng(seed)
    if idx.size > max_rows:
        idx = np.sort(rng.choice(idx, max_rows, replace=False))
    y = np.array([str(v) for v in lab[idx]])
    perm = rng.permutation(idx.size)
    n_test = max(1, int(round(test_size * idx.size)))
    te, tr = perm[:n_test], perm[n_test:]
    if len(set(y[tr])) < 2:
        result["skipped"] = "the training split holds one class only"
        return result
    Xs = np.asarray(X[idx], dtype=np.float32)
    acc = _fit_score(Xs[tr], y[tr], Xs[te], y[te], seed)
    majority_label = Counter(y[tr].tolist()).most_common(1)[0][0]
    majority = float((y[te] == majority_label).mean())
    y_ctrl = y[rng.permutation(y.size)]  # control task: same label distribution, shuffled over tokens
    ctrl = _fit_score(Xs[tr], y_ctrl[tr], Xs[te], y_ctrl[te], seed) if len(set(y_ctrl[tr])) > 1 else float("nan")
    result.update(
        {
            "train": int(tr.size),
            "test": int(te.size),
            "accuracy": acc,
            "majority_baseline": majority,
            "control_accuracy": ctrl,
            "selectivity": acc - ctrl,
            "gain_over_majority": acc - majority,
        }
    )
    return result
