"""Under-trained tokens: the indicator against its definition, automatic reference sets, ranking."""

import numpy as np
import pytest
from conftest import VOCAB, build_wordpiece_tokenizer

from tokembed.sources import EmbeddingSource
from tokembed.diagnostics.undertrained import (
    head_cosine_indicator,
    head_cosine_indicator_reference,
    reachability,
    reference_set,
    undertrained_summary,
)
from tokembed.tokenizers import ByteTokenizer
from tokembed.tokenizers.hf_engine import HFTokenizer
from tokembed.vocab import Vocab


@pytest.fixture(scope="module")
def wp():
    return HFTokenizer(build_wordpiece_tokenizer(), add_special_tokens=False)


def test_indicator_equals_reference_definition():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((60, 7)).astype(np.float32) + np.linspace(0, 3, 7, dtype=np.float32)
    ref = [3, 8, 20]
    got = head_cosine_indicator(W, np.array(ref))
    want = head_cosine_indicator_reference(W, ref)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_reachability_of_a_wordpiece_vocabulary(wp):
    cats = reachability(wp)
    assert all(cats[VOCAB.index(f"[unused{i}]")] == "unreachable" for i in range(5))  # BERT's unused slots
    assert all(cats[VOCAB.index(t)] == "special" for t in ("[PAD]", "[UNK]", "[CLS]"))
    assert cats[VOCAB.index("fox")] == "ok" and cats[VOCAB.index("a")] == "ok"
    assert cats[VOCAB.index("##ing")] == "ok"  # a continuation piece, reached after a prefix
    assert cats[VOCAB.index("##ly")] == "ok"


def test_byte_tokenizer_partial_utf8_bytes_are_never_reference():
    tok = ByteTokenizer()
    cats = reachability(tok)
    assert cats[ord("a")] == "ok" and cats[0x80] == "partial-utf8" and cats[256] == "special"
    ref, info = reference_set(tok, V=tok.vocab_size, special_ids=tok.vocab.special_ids)
    assert ref.size == 0 and info["categories"]["partial-utf8"] == 128


def test_reference_set_adds_zero_count_tokens_only_while_few(wp):
    V = len(VOCAB)
    counts = np.ones(V, dtype=np.int64)
    counts[VOCAB.index("lazy")] = 0
    ref, info = reference_set(wp, counts=counts, V=V, special_ids=wp.vocab.special_ids)
    assert VOCAB.index("lazy") in ref and VOCAB.index("[unused0]") in ref and VOCAB.index("[PAD]") not in ref
    counts[:] = 0  # a corpus that saw nothing: "unseen" cannot mean "unused"
    ref, info = reference_set(wp, counts=counts, V=V, special_ids=wp.vocab.special_ids)
    assert VOCAB.index("lazy") not in ref and "too small" in info["note"]


def test_planted_untrained_rows_rank_first(wp):
    """Rows of never-trained tokens share the initial direction; trained rows moved away from it."""
    rng = np.random.default_rng(0)
    V, D = len(VOCAB), 16
    init = rng.standard_normal(D).astype(np.float32)
    W = rng.standard_normal((V, D)).astype(np.float32) * 2  # "trained"
    untrained = [VOCAB.index(f"[unused{i}]") for i in range(5)] + [VOCAB.index("##q"), VOCAB.index("lazy")]
    W[untrained] = init + 0.05 * rng.standard_normal((len(untrained), D)).astype(np.float32)
    E = rng.standard_normal((V, D)).astype(np.float32) * 2
    E[untrained] *= 0.01  # untied input rows of unused tokens keep a small norm
    src = EmbeddingSource(
        path=__import__("pathlib").Path("x"), kind="matrix", vocab=wp.vocab, input=E, output=W, tokenizer=wp
    )
    s = undertrained_summary(src, top=10, progress=False)
    assert s["main_indicator"] == "head_cosine_to_unused" and s["indicators"] == ["head_cosine_to_unused", "input_norm"]
    top7 = {c["id"] for c in s["candidates"][:7]}
    assert top7 == set(untrained)  # '##q' and 'lazy' are found without being in the reference set
    lazy = next(c for c in s["candidates"] if c["token"] == "lazy")
    assert not lazy["in_reference_set"] and lazy["input_norm"] < 0.5


def test_without_tokenizer_or_corpus_input_norm_ranks():
    rng = np.random.default_rng(1)
    E = rng.standard_normal((30, 4)).astype(np.float32)
    E[7] *= 1e-3
    E[9] = np.nan
    src = EmbeddingSource(
        path=__import__("pathlib").Path("x"), kind="matrix", vocab=Vocab([f"t{i}" for i in range(30)]), input=E
    )
    s = undertrained_summary(src, progress=False)
    assert s["main_indicator"] == "input_norm" and s["candidates"][0]["token"] == "t7"
    assert "t9" not in [c["token"] for c in s["candidates"]] and "no reference set" in s["notes"][0]
