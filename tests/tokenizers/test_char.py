import pytest
from _spm_data import any_text, training_lines
from hypothesis import given

from tokembed.errors import VocabSizeError
from tokembed.tokenizers import CharTokenizer, load_tokenizer

# 98.5% "a", then rarer "b" and "q": character_coverage decides which stay in the alphabet
SKEWED = ["a" * 985 + "b" * 10 + "q" * 5] * 3


@pytest.fixture(scope="module")
def char():
    return CharTokenizer.train(training_lines())


def test_alphabet_is_characters_seen(char):
    seen = set("".join(training_lines()).replace(" ", "▁"))
    pieces = {t for t in char.vocab if not (t.startswith("<") and t.endswith(">") and len(t) > 1)}
    assert pieces <= seen | {"<", ">"}
    assert char.vocab_size == 4 + 256 + len(pieces)
    assert all(len(t) == 1 for t in pieces)


@given(any_text)
def test_round_trip_byte_fallback(char, text):
    assert char.decode(char.encode(text)) == text


def test_one_token_per_known_char(char):
    assert len(char.encode("quick brown")) == len("quick brown")


def test_coverage_and_unk_mode():
    full = CharTokenizer.train(SKEWED, character_coverage=1.0, byte_fallback=False, special_tokens={})
    assert {"a", "b", "q"} <= set(full.vocab)
    low = CharTokenizer.train(SKEWED, character_coverage=0.98, byte_fallback=False, special_tokens={})
    assert "a" in low.vocab and "b" not in low.vocab and "q" not in low.vocab
    assert not low.lossless and low.special_tokens == {"unk": "<unk>"}
    ids = low.encode("aq")
    assert ids == [low.vocab["a"], low.vocab["<unk>"]] and low.decode(ids) == "a<unk>"
    fb = CharTokenizer.train(SKEWED, character_coverage=0.98)
    assert fb.tokens("aq") == ["a", "<0x71>"] and fb.decode(fb.encode("aq")) == "aq"


def test_vocab_size_is_upper_bound(char):
    with pytest.raises(VocabSizeError, match=f"pass vocab_size >= {char.vocab_size}"):
        CharTokenizer.train(training_lines(), char.vocab_size - 1)
    assert CharTokenizer.train(training_lines(), char.vocab_size).fingerprint == char.fingerprint


def test_save_load(char, tmp_path):
    char.save(tmp_path / "c")
    back = load_tokenizer(tmp_path / "c")
    assert back.fingerprint == char.fingerprint and back.encode("judge") == char.encode("judge")


def test_coverage_bounds():
    from tokembed.errors import ConfigError

    with pytest.raises(ConfigError, match=r"outside \[0.98, 1\]"):
        CharTokenizer.train(SKEWED, character_coverage=0.5)
