import pytest
from _spm_data import any_text, training_lines
from hypothesis import given

from tokembed.errors import VocabSizeError
from tokembed.tokenizers import BPETokenizer, load_tokenizer


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(training_lines(), 600)


def test_train_vocab_and_byte_fallback(bpe):
    assert bpe.kind == "bpe" and bpe.vocab_size == 600 and bpe.lossless
    assert bpe.options["model_type"] == "bpe" and bpe.options["byte_fallback"] is True
    # a character never seen in training falls back to its UTF-8 bytes
    assert bpe.tokens("𝔸") == ["<0xF0>", "<0x9D>", "<0x94>", "<0xB8>"]
    # merges learned from frequent words: "▁the" style pieces exist
    assert any(t.startswith("▁") and len(t) > 3 for t in bpe.vocab)


@given(any_text)
def test_round_trip(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


def test_whitespace_is_kept(bpe):
    # no dummy prefix, no collapsing of spaces, no normalisation (NFKC would turn "ﬁ" into "fi")
    for text in ["  lead", "trail  ", "a\u3000b", "ﬁne", "x\r\ny", "\t\t"]:
        assert bpe.decode(bpe.encode(text)) == text
    assert bpe.tokens(" x")[0] in ("▁x", "▁")


def test_meta_symbol_literal(bpe):
    ids = bpe.encode("a▁b")
    assert bpe.tokens("a▁b") == ["a", "<0xE2>", "<0x96>", "<0x81>", "b"]
    assert bpe.decode(ids) == "a▁b"


def test_deterministic_and_save_load(bpe, tmp_path):
    again = BPETokenizer.train(training_lines(), 600)
    assert again.fingerprint == bpe.fingerprint
    bpe.save(tmp_path / "b")
    back = load_tokenizer(tmp_path / "b")
    assert type(back) is BPETokenizer and back.encode("Pack my box") == bpe.encode("Pack my box")


def test_seed_or_threads_are_options(bpe):
    assert bpe.options["seed"] == 0 and bpe.options["num_threads"] == 4


def test_vocab_too_small_names_minimum():
    with pytest.raises(VocabSizeError, match=r"(\d+) tokens are needed.*256 byte tokens \+ 4 specials"):
        BPETokenizer.train(training_lines(), 50)
