"""One definition of frequency bands (tokembed.metrics): training, eval, inspect and the compression
report name the same band for the same count."""

import numpy as np

from tokembed.compress.apply import _bands as compression_report_bands
from tokembed.diagnostics.frequency import frequency_summary
from tokembed.diagnostics.neighbors import normalize_rows
from tokembed.metrics import band_names, frequency_bands
from tokembed.model import ModelConfig, build_model
from tokembed.tokenizers import ByteTokenizer
from tokembed.training.evaluate import evaluate

COUNTS = np.array([0] * 3 + [4] * 200 + [40] * 40 + [400] * 10 + [4000] * 5 + [40000])  # V = 259


def test_every_consumer_names_the_bands_of_metrics():
    band_of, bands = frequency_bands(COUNTS)
    want = ["0", "1-9", "10-99", "100-999", "1000-9999", "10000-99999"]
    assert [b["name"] for b in bands] == want
    assert sorted(set(band_names(COUNTS)), key=want.index) == want
    _, report = compression_report_bands(COUNTS, len(COUNTS))
    assert [b["name"] for b in report] == want
    X = np.random.default_rng(0).standard_normal((len(COUNTS), 4)).astype(np.float32)
    fs = frequency_summary(COUNTS, np.linalg.norm(X, axis=1), normalize_rows(X), [str(i) for i in range(len(COUNTS))], k=2)
    assert [b["band"] for b in fs["bands"]] == want
    model = build_model(ModelConfig(vocab_size=259, d_model=8, n_layers=1, n_heads=2, max_seq_len=16), seed=0)
    ev = evaluate(model, ByteTokenizer(), ["hello world\n", "again"], seq_len=16, token_counts=COUNTS)
    assert [b["name"] for b in ev.band_loss] == want
