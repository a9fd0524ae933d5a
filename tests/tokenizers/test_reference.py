"""The pure-Python reference BPE vs the HF engine vs tiktoken: identical ids, on real text and with hypothesis."""

import random

import pytest
from _hf_data import disputed, real_text_file
from hypothesis import given
from hypothesis import strategies as st

from tokembed.corpus import Corpus
from tokembed.tokenizers import ByteBPETokenizer
from tokembed.tokenizers.sampling import bpe_dropout
from tokembed.tokenizers.reference import PATTERNS, ReferenceBPE, bytes_to_unicode, token_to_bytes
from tokembed.tokenizers.tiktoken_engine import PROBE_TEXT, TiktokenPath, byte_level_bpe

no_surrogates = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))
# text that exercises the regexes: letters, digits, contractions, punctuation, all kinds of whitespace
regexy = st.text(alphabet=st.sampled_from(list("aZé東1'sdtmlvre .,!?\n\r\t\u00a0\u2028\u3000\x0b\x1c🙂-_")), max_size=80)


@pytest.fixture(scope="module", params=["cl100k", "gpt2"])
def tok(request, tmp_path_factory):
    return ByteBPETokenizer.train(Corpus([str(real_text_file(tmp_path_factory))]), 1500, pattern=request.param, progress=False)


def _engine_ids(tok, text):
    return tok._plain.encode(text, add_special_tokens=False).ids


def test_known_answer_minbpe_style():
    # merges learned by hand: "a"+"b" -> 256, "ab"+"c" -> 257; leftmost-lowest merge first
    ref = ReferenceBPE.from_merges([(b"a", b"b"), (b"ab", b"c"), (b"a", b"a")], pattern=PATTERNS["gpt2"])
    assert ref.encode("aaab abc") == [258, 256, 32, 257]
    assert ref.pieces("I'll pay 100 dollars!!") == ["I", "'ll", " pay", " 100", " dollars", "!!"]


def test_byte_alphabet():
    table = bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256
    assert token_to_bytes("Ġthe") == b" the" and token_to_bytes("日") is None


def test_three_engines_agree_on_real_text(tok, tmp_path_factory):
    text = real_text_file(tmp_path_factory).read_text(encoding="utf-8")[:60_000] + PROBE_TEXT
    ref = tok.reference.encode(text)
    assert ref == _engine_ids(tok, text)  # reference == HF engine
    assert ref == tok.fast_path.encode(text)  # == tiktoken
    lines = text.splitlines(keepends=True)
    assert tok.encode_batch(lines) == [_engine_ids(tok, x) for x in lines]


@given(no_surrogates)
def test_three_engines_agree_on_any_text(tok, text):
    ids = _engine_ids(tok, text)
    assert tok.fast_path.encode(text) == ids  # texts with disputed code points go to the HF engine
    if not disputed(text):  # the reference uses Python's regex module and its own Unicode tables
        assert tok.reference.encode(text) == ids
        assert tok.fast_path.encoding.encode_ordinary(text) == ids  # tiktoken itself


def test_unicode_table_disagreement_is_routed_to_the_engine(tok):
    # U+16EBC is assigned after Unicode 14: a letter to newer tables, unassigned to Oniguruma's
    text = "\U00016ebcÀ abc"
    assert disputed(text)
    assert tok.encode(text) == _engine_ids(tok, text) == tok.encode_batch([text] * 600)[599]
    assert tok.decode(tok.encode(text)) == text


@given(regexy)
def test_three_engines_agree_on_whitespace_and_digits(tok, text):
    ids = _engine_ids(tok, text)
    assert tok.fast_path.encode(text) == ids
    assert tok.reference.encode(text) == ids
    assert tok.reference.decode(ids) == text


@given(st.floats(0.0, 0.9), st.integers(0, 2**31))
def test_dropout_reproducible_and_lossless(tok, p, seed):
    text = "Subword regularization makes models robust, e.g. 12345 naïve"
    ids = tok.encode(text, dropout=p, seed=seed)
    assert ids == tok.encode(text, dropout=p, seed=seed)
    assert tok.decode(ids) == text


@given(no_surrogates)
def test_sampling_path_without_dropout_is_the_reference(tok, text):
    """sampling.bpe_dropout at p=0 (heap, linked list) merges as the readable reference does."""
    merges = tok._bpe.merges
    ids = []
    for piece in tok.reference.pieces(text):
        start = [tok.reference.byte_ids[b] for b in piece.encode("utf-8")]
        ids += bpe_dropout(start, lambda a, b: (m, m) if (m := merges.get((a, b))) else None, 0.0, random.Random(0))
    assert ids == tok.reference.encode(text)


def test_fast_path_rejects_non_byte_level(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    eng = Tokenizer(models.BPE(vocab={"a": 0, "b": 1, "ab": 2}, merges=[("a", "b")]))
    eng.pre_tokenizer = pre_tokenizers.Whitespace()
    assert byte_level_bpe(eng) is None and TiktokenPath.for_engine(eng) is None
