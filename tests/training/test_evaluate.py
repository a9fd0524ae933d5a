import math

import numpy as np
import pytest
import torch

from tokembed.training.shards import build_shards
from tokembed.errors import EmptyCorpusError, FingerprintMismatchError
from tokembed.training.evaluate import evaluate
from tokembed.training.plots import plot_reliability
from tokembed.metrics import expected_calibration_error
from tokembed.model import ModelConfig, build_model
from tokembed.tokenizers import ByteTokenizer

from _torch_threads import single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")

EOS = 258
DOCS = ["ab\n", "c"]  # 4 UTF-8 bytes
TOKENS = [EOS, 97, 98, 10, EOS, 99, EOS]  # leading eos, doc 1, eos, doc 2, eos


@pytest.fixture(scope="module")
def model():
    return build_model(ModelConfig(vocab_size=259, d_model=16, n_layers=1, n_heads=2, max_seq_len=16), seed=5).eval()


def window_nats(model, window):
    """By hand: -log p(w[t+1] | w[..t]) for every position of one window."""
    x = torch.tensor([window[:-1]])
    logp = torch.log_softmax(model(x).logits[0].double(), dim=-1)
    return [-logp[t, window[t + 1]].item() for t in range(len(window) - 1)]


def test_bits_per_byte_matches_a_hand_computation(model):
    r = evaluate(model, ByteTokenizer(), DOCS, seq_len=16)
    nats = window_nats(model, TOKENS)  # one window holds all 6 predictions
    assert r.n_tokens == 6 and r.n_bytes == 4
    assert r.loss == pytest.approx(sum(nats) / 6, rel=1e-5)
    assert r.perplexity == pytest.approx(math.exp(sum(nats) / 6), rel=1e-5)
    assert r.bits_per_byte == pytest.approx(sum(nats) / math.log(2) / 4, rel=1e-5)  # Σ nats / ln 2 / bytes


def test_windows_do_not_carry_context(model):
    r = evaluate(model, ByteTokenizer(), DOCS, seq_len=4)
    nats = window_nats(model, TOKENS[0:5]) + window_nats(model, TOKENS[4:7])  # predictions 1..4, then 5..6
    assert r.n_tokens == 6
    assert r.loss == pytest.approx(sum(nats) / 6, rel=1e-5)


def test_max_tokens_keeps_whole_documents(model):
    r = evaluate(model, ByteTokenizer(), DOCS, seq_len=16, max_tokens=5)
    assert (r.n_tokens, r.n_bytes) == (4, 3)  # [eos] a b \n [eos] -> 4 predictions, 3 bytes
    assert r.loss == pytest.approx(sum(window_nats(model, TOKENS[:5])) / 4, rel=1e-5)
    r = evaluate(model, ByteTokenizer(), DOCS, seq_len=16, max_tokens=3)  # a hard cap, even inside the first document
    assert (r.n_tokens, r.n_bytes) == (2, 2)  # [eos] a b -> 2 predictions, the bytes of "ab"


def test_ece_band_loss_and_sizes(model):
    r = evaluate(model, ByteTokenizer(), DOCS, seq_len=16)
    logits = model(torch.tensor([TOKENS[:-1]])).logits[0]
    p = logits.softmax(-1)
    conf, pred = p.max(-1)
    correct = (pred == torch.tensor(TOKENS[1:])).numpy()
    assert r.ece == pytest.approx(expected_calibration_error(conf.detach().numpy(), correct), abs=1e-6)
    assert sum(r.reliability["count"]) == 6 and len(r.reliability["count"]) == 15
    assert sum(b["n_tokens"] for b in r.band_loss) == 6
    weighted = sum(b["loss"] * b["n_tokens"] for b in r.band_loss if b["n_tokens"]) / 6
    assert weighted == pytest.approx(r.loss, rel=1e-6)
    assert r.params == model.num_parameters() and r.embedding_bytes == (259 * 16 * 2 + 259) * 4


def test_shard_and_corpus_agree_and_fingerprints_are_checked(model, tmp_path):
    shards = build_shards(ByteTokenizer(), DOCS, tmp_path / "s", val_fraction=0.0)
    a = evaluate(model, ByteTokenizer(), shards["train"], seq_len=16)
    b = evaluate(model, ByteTokenizer(), DOCS, seq_len=16)
    assert a.loss == pytest.approx(b.loss) and a.n_bytes == b.n_bytes == 4
    other = ByteTokenizer(special_tokens={"pad": "[PAD]", "eos": "[EOS]"})
    with pytest.raises(FingerprintMismatchError):
        evaluate(model, other, shards["train"])
    with pytest.raises(EmptyCorpusError, match="0 documents"):
        evaluate(model, ByteTokenizer(), shards["val"])


def test_reliability_diagram_is_a_png(model, tmp_path):
    r = evaluate(model, ByteTokenizer(), DOCS, seq_len=16)
    path = plot_reliability(r, tmp_path / "rel.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
