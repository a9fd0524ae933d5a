"""The study report on synthetic rows: recommendations computed from the numbers, a self-contained page,
and (with Chromium) a real render with no console errors and every image loaded.

The rows here are made up on purpose so the expected recommendations are known exactly;
tests/test_study.py runs a real (tiny) study end to end.
"""

import json
import math
import re
from pathlib import Path

import pytest
from _chromium import CHROMIUM, NO_CHROMIUM, chromium_check

from tokembed.study import RESULT_COLUMNS, StudyConfig, StudyResult, write_results
from tokembed.study.plots import train_bpb_curve
from tokembed.study.report import build_report, noise_estimate, pareto_front, recommendations, write_report

BANDS = ["0", "1-9", "10-99", "100-999"]


def _row(tok, design, V, bpb, total, seed=0, bpt=1.0):
    row = dict.fromkeys(RESULT_COLUMNS, 0)
    steps = math.ceil(4096 / (4 * 16 * bpt))
    row.update(
        id=f"{tok}-{design}-V{V}-s{seed}", tokenizer=tok, design=design, vocab_size=V, d_model=16, seed=seed,
        embedding_params=V * 16, head_params=0, non_embedding_params=1000, total_params=total, bits_per_byte=bpb,
        perplexity=2 ** (bpb * bpt), ece=0.05, val_loss=bpb * bpt * math.log(2), train_tokens_per_s=1000.0,
        train_bytes_per_s=1000.0 * bpt, seconds=1.0, steps=steps, tokens_seen=steps * 64,
        bytes_seen=round(steps * 64 * bpt), budget_bytes=4096, bytes_per_token=bpt,
    )
    return row


def _details(row):
    conf = [(i + 0.5) / 15 for i in range(15)]
    hist = [{"step": s, "tokens": s * 64, "bytes": s * 64 * row["bytes_per_token"], "loss": 3.0 / s} for s in range(1, 5)]
    return {
        "history": hist,
        "reliability": {"count": [10] * 15, "confidence": conf, "accuracy": [c * 0.9 for c in conf]},
        "band_stats": {"bands": [{"name": b} for b in BANDS], "mean_norm": [1.0, 1.5, 2.0, 2.5],
                       "mean_grad_norm": [0.1, 0.2, None, 0.4]},
        "band_loss": [{"name": b, "loss": 2.0 + i} for i, b in enumerate(BANDS)],
    }


def _result(tmp_path, rows, seeds=(0,)):
    cfg = StudyConfig.from_name("tiny", tokenizers=sorted({r["tokenizer"] for r in rows}), seeds=list(seeds))
    res = StudyResult(out_dir=tmp_path, rows=rows, details={r["id"]: _details(r) for r in rows},
                      skipped=[{"tokenizer": "morph", "reason": "tokenizer kind 'morph' is not available"}],
                      config=cfg, corpus={"bytes": 10_000, "sampled": False}, seconds=3.0)
    write_results(res)
    res.report = write_report(res)
    return res


GRID = [
    _row("byte", "untied", 259, 2.10, 9000),
    _row("byte", "tied", 259, 2.00, 5000),
    _row("bpe", "untied", 512, 1.90, 20000, bpt=3.0),
    _row("bpe", "tied", 512, 1.95, 12000, bpt=3.0),
]


def test_pareto_front_known_answer():
    assert [r["id"] for r in pareto_front(GRID)] == ["byte-tied-V259-s0", "bpe-tied-V512-s0", "bpe-untied-V512-s0"]


def test_noise_is_pooled_seed_std():
    rows = [_row("byte", "tied", 259, v, 5000, seed=s) for s, v in enumerate([1.0, 1.1, 1.2])]
    rows += [_row("byte", "untied", 259, v, 9000, seed=s) for s, v in enumerate([2.0, 2.0, 2.0])]
    # pooled variance = (0.02 + 0) / (2 + 2)
    assert noise_estimate(rows) == pytest.approx(math.sqrt(0.02 / 4))
    assert noise_estimate(GRID) is None


def test_recommendations_are_computed_and_cite_existing_rows():
    recs = {r["title"]: r for r in recommendations(GRID)}
    ids = {r["id"] for r in GRID}
    for r in recs.values():
        assert set(r["ids"]) <= ids
    best = recs["Lowest bits per byte"]
    assert best["ids"][0] == "bpe-untied-V512-s0" and "1.9000" in best["html"]
    tying = recs["Tying input and output embeddings"]
    # byte: 2.10 -> 2.00 (lower), bpe: 1.90 -> 1.95 (higher): mixed, mean -0.025
    assert "in 1 of 2 paired runs (2 tokenizers)" in tying["html"] and "-0.0250" in tying["html"]
    assert "single seed" in recs["Noise"]["html"]
    # Change the numbers and the words follow.
    flipped = [dict(r, bits_per_byte=3.0) if r["design"] == "tied" else r for r in GRID]
    assert "<b>raised</b>" in {r["title"]: r for r in recommendations(flipped)}["Tying input and output embeddings"]["html"]


def test_a_lossy_best_run_gets_a_caveat_and_the_best_lossless_run():
    rows = [dict(r, lossless=r["tokenizer"] != "bpe") for r in GRID]
    best = {r["title"]: r for r in recommendations(rows)}["Lowest bits per byte"]
    assert "lossy" in best["html"] and best["ids"][-1] == "byte-tied-V259-s0"
    assert "lossy" not in {r["title"]: r for r in recommendations(GRID)}["Lowest bits per byte"]["html"]


def test_several_vocab_sizes_get_a_vocabulary_recommendation():
    rows = GRID + [_row("bpe", "untied", 2048, 1.80, 40000, bpt=3.5), _row("bpe", "tied", 2048, 1.85, 24000, bpt=3.5)]
    rec = {r["title"]: r for r in recommendations(rows)}["Vocabulary size (bpe)"]
    assert "V=2,048 gives the lowest bits per byte, 0.1000 bpb ahead of V=512" in rec["html"]
    assert rec["ids"] == ["bpe-untied-V2048-s0", "bpe-untied-V512-s0"]


def test_within_noise_is_said_when_seeds_show_it():
    rows = []
    for s, (u, t) in enumerate([(2.00, 2.01), (2.02, 1.99), (1.98, 2.00)]):
        rows += [_row("byte", "untied", 259, u, 9000, seed=s), _row("byte", "tied", 259, t, 5000, seed=s)]
    recs = {r["title"]: r for r in recommendations(rows, seeds=[0, 1, 2])}
    assert "no difference beyond noise" in recs["Tying input and output embeddings"]["html"]
    assert "pooled σ" in recs["Noise"]["html"]


def test_a_consistent_shift_beats_noise_on_the_mean_of_pairs():
    # σ = 0.06 within each config; every pair differs by +0.12 < 2·√2·σ = 0.17, but the mean of
    # 3 pairs is judged against 2σ·√(2/3) = 0.098.
    rows = []
    for s, u in enumerate([2.00, 2.06, 1.94]):
        rows += [_row("byte", "untied", 259, u, 9000, seed=s), _row("byte", "tied", 259, u + 0.12, 5000, seed=s)]
    tying = {r["title"]: r for r in recommendations(rows, seeds=[0, 1, 2])}["Tying input and output embeddings"]
    assert "<b>raised</b> bits per byte in every one of 3 paired runs" in tying["html"]
    assert "larger than noise (2σ·√(1/3+1/3) = 0.0980 bpb)" in tying["html"]


def test_train_curve_is_in_bits_per_byte():
    xs, ys = train_bpb_curve([{"bytes": 30, "loss": 3 * math.log(2)}, {"bytes": 60, "loss": float("nan")}], 3.0)
    assert xs == [30.0] and ys == [pytest.approx(1.0)]


def test_report_is_self_contained_and_links_resolve(tmp_path):
    res = _result(tmp_path, GRID)
    page = Path(res.report).read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "report must not load anything remote"
    anchors = set(re.findall(r'id="(run-[^"]+)"', page))
    assert anchors == {f"run-{r['id']}" for r in GRID}
    links = set(re.findall(r'href="#(run-[^"]+)"', page))
    assert links and links <= anchors
    assert page.count("data:image/png;base64,") >= 4  # pareto, reliability, curves, bands
    assert "Recommendations" in page and page.index("Recommendations") > page.index("Frequency bands")
    assert "morph" in page  # the skipped kind is reported, not hidden
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["columns"] == RESULT_COLUMNS and len(data["rows"]) == 4
    header = (tmp_path / "results.csv").read_text().splitlines()[0]
    assert header.split(",") == RESULT_COLUMNS


def test_report_with_no_rows_says_so(tmp_path):
    page = build_report(StudyResult(out_dir=tmp_path, rows=[], details={}, skipped=[], config=StudyConfig.from_name("tiny"),
                                    corpus={}, seconds=0.0))
    assert "nothing to recommend" in page


# -- headless Chromium -------------------------------------------------------------------

@pytest.mark.chromium
@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_probe_catches_broken_pages(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><head></head><body><img alt=x src='missing.png'><script>nope()</script></body></html>")
    found = chromium_check(bad, tmp_path)
    assert found["broken"] == ["x"] and any("nope" in e for e in found["errors"])


@pytest.mark.chromium
@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_report_renders_in_chromium(tmp_path):
    res = _result(tmp_path / "study", GRID)
    found = chromium_check(Path(res.report), tmp_path)
    assert found["errors"] == [] and found["console"] == []
    assert found["images"] >= 4 and found["broken"] == []
    assert found["remote"] == 0 and found["text"] > 500


def test_results_table_uses_fixed_decimals(tmp_path):
    rows = [_row("byte", "untied", 259, 4.38, 9000), _row("byte", "tied", 259, 4.148, 5000)]
    rows[0]["ece"], rows[1]["ece"] = 0.009641, 0.02507
    page = _result(tmp_path, rows).report.read_text()
    cells = re.findall(r'<tr id="run-byte-(?:un)?tied-V259-s0"[^>]*>(.*?)</tr>', page)
    assert len(cells) == 2
    assert "<td>4.3800</td>" in cells[0] and "<td>0.0096</td>" in cells[0]
    assert "<td>4.1480</td>" in cells[1] and "<td>0.0251</td>" in cells[1]
