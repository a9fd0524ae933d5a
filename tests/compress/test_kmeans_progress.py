"""k-means shows progress on long runs (issue 12: `compress --method pq` on MiniLM was silent for 126 s),
only on a terminal unless asked, and the bar never changes the result."""

import torch

from tokembed.compress import kmeans as km


def _points():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 300, 4, generator=g)  # (M, N, d)


def test_bar_when_asked_and_same_result(monkeypatch, capsys):
    X = _points()
    C0, a0 = km.kmeans(X, 8, iters=5, seed=1, progress=False)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(km, "PROGRESS_DELAY_S", 0.0)
    C1, a1 = km.kmeans(X, 8, iters=5, seed=1, progress=True)
    err = capsys.readouterr().err
    assert "k-means (K=8, M=2)" in err
    assert torch.equal(C0, C1) and torch.equal(a0, a1)


def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(km, "PROGRESS_DELAY_S", 0.0)
    km.kmeans(_points(), 8, iters=3, seed=1)  # progress=None: pytest's captured stderr is no terminal
    assert capsys.readouterr().err == ""
