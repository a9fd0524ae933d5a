"""Probes against majority and control baselines, label CSVs, token classes, corpus counts and bands."""

import numpy as np
import pytest

from tokembed.corpus import Corpus
from tokembed.diagnostics.frequency import frequency_summary
from tokembed.metrics import band_names, corpus_token_counts
from tokembed.diagnostics.neighbors import normalize_rows
from tokembed.diagnostics.probes import read_label_csv, run_probe
from tokembed.diagnostics.token_classes import detect_convention, string_labels, token_class, token_classes
from tokembed.errors import ConfigError
from tokembed.tokenizers import ByteTokenizer
from tokembed.vocab import Vocab


def test_probe_reads_a_linearly_encoded_label_and_is_selective():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1000)
    X = rng.standard_normal((1000, 8)).astype(np.float32)
    X[:, 0] += 3 * y
    r = run_probe(X, y.astype(object), name="planted")
    assert r["accuracy"] > 0.9 and r["selectivity"] > 0.3 and r["accuracy"] > r["majority_baseline"] + 0.3
    assert r["train"] + r["test"] == 1000


def test_probe_on_noise_is_no_better_than_majority():
    rng = np.random.default_rng(1)
    y = (rng.random(1000) < 0.7).astype(object)
    r = run_probe(rng.standard_normal((1000, 8)).astype(np.float32), y, name="noise")
    assert r["accuracy"] <= r["majority_baseline"] + 0.05


def test_probe_skips_with_one_class_and_ignores_unlabelled_and_nan():
    X = np.random.default_rng(2).standard_normal((50, 3)).astype(np.float32)
    X[0] = np.nan
    r = run_probe(X, np.array([True] * 50, dtype=object), name="one")
    assert "skipped" in r
    lab = np.array([None] * 50, dtype=object)
    lab[1:21] = "a"
    lab[21:41] = "b"
    r = run_probe(X, lab, name="two")
    assert r["labelled"] == 40


def test_read_label_csv(tmp_path):
    v = Vocab(["the", "dog", "##s", "run"])
    p = tmp_path / "pos.csv"
    p.write_text('token,label\nthe,DET\ndog,NOUN\n"##s",SUFFIX\nzebra,NOUN\n', encoding="utf-8")
    labels, stats = read_label_csv(p, v)
    assert (
        labels == {0: "DET", 1: "NOUN", 2: "SUFFIX"}
        and stats["missing"] == 1
        and stats["missing_examples"] == ["zebra"]
    )
    p.write_text("zebra,NOUN\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="none of its 1 tokens is in the vocabulary"):
        read_label_csv(p, v)
    p.write_text("justonefield\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pos.csv:1: expected 'token,label'"):
        read_label_csv(p, v)


def test_token_classes_per_convention():
    assert detect_convention(["Ġthe", "Ġa", "b"]) == "bytelevel" and detect_convention(["▁x", "y"]) == "sentencepiece"
    assert detect_convention(["king", "queen"]) == "words"
    assert token_class("the", convention="bytelevel") == "continuation"
    assert token_class("▁The", convention="sentencepiece") == "word-initial"
    assert token_class("Ġ2024", convention="bytelevel") == "digit"
    assert token_classes(["[CLS]", "##ed", "."], special_ids=[0], convention="wordpiece").tolist() == [
        "special",
        "continuation",
        "punctuation",
    ]
    lab = string_labels(["[CLS]", "The", "##ed", "extraordinary"], special_ids=[0], convention="wordpiece")
    assert lab["length"].tolist() == [None, "2-3", "2-3", "7+"] and lab["word-initial"].tolist() == [
        None,
        True,
        False,
        True,
    ]


def test_token_counts_with_the_byte_tokenizer(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("abca\n\nbb\n", encoding="utf-8")
    counts, read = corpus_token_counts(ByteTokenizer(), Corpus([str(p)]).texts(), vocab_size=259, batch=1)
    assert counts[ord("a")] == 2 and counts[ord("b")] == 3 and counts[ord("c")] == 1 and counts.sum() == 6
    assert read == {"lines": 2, "bytes": 6, "tokens": 6}  # non-blank lines, without their newlines
    counts, read = corpus_token_counts(ByteTokenizer(), Corpus([str(p)]).texts(), vocab_size=259, max_bytes=5)
    assert read["lines"] == 1 and counts.sum() == 4


def test_frequency_summary_bands_and_unseen():
    rng = np.random.default_rng(0)
    V = 60
    counts = np.array([0] * 10 + [5] * 20 + [50] * 20 + [5000] * 10)
    X = rng.standard_normal((V, 6)).astype(np.float32) * (1 + np.log1p(counts))[:, None]
    fs = frequency_summary(
        counts, np.linalg.norm(X, axis=1), normalize_rows(X), [f"t{i}" for i in range(V)], special_ids=[0], k=3
    )
    assert [b["band"] for b in fs["bands"]] == ["0", "1-9", "10-99", "1000-9999"]
    assert [b["tokens"] for b in fs["bands"]] == [10, 20, 20, 10]
    assert [b["same_band_chance"] for b in fs["bands"]] == [10 / 60, 20 / 60, 20 / 60, 10 / 60]
    assert fs["never_seen"] == 9 and fs["never_seen_examples"][0] == "t1"  # special t0 left out
    assert fs["norm_logfreq_correlation"] > 0.5
    assert band_names(np.array([0, 9, 10, 10000])) == ["0", "1-9", "10-99", "10000-99999"]  # the bands of training


def test_umap_without_the_package_names_the_extra():
    import importlib.util

    if importlib.util.find_spec("umap") is not None:
        pytest.skip("umap-learn is installed")
    from tokembed.diagnostics.projection import umap_2d
    from tokembed.errors import DependencyError

    with pytest.raises(DependencyError, match=r"tokembed\[umap\]"):
        umap_2d(np.zeros((10, 3), dtype=np.float32))
