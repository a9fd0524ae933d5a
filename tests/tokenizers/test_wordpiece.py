"""wordpiece: BERT-style training, options, save/load, determinism, documented lossiness, bad input."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokembed.corpus import Corpus
from tokembed.errors import EmptyCorpusError, SpecialTokenError, VocabSizeError
from tokembed.tokenizers import WordPieceTokenizer, load_tokenizer, train_tokenizer


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # the session's default-corpus cache (see conftest)
        mp.setenv("TOKEMBED_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        return WordPieceTokenizer.train(Corpus([]), 2000, progress=False)


def test_bert_style_pieces(tok):
    assert tok.special_tokens == {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "unk": "[UNK]"}
    toks = tok.tokens("Tokenization works")
    assert toks[0] == "token" and toks[1].startswith("##")  # lowercased, ## continuation
    assert tok.encode("東") == [tok.vocab["[UNK]"]] or tok.decode(tok.encode("東")) == "東"
    assert tok.decode(tok.encode("Hello, World!")) == "hello, world!"  # lowercase: lossy by design
    assert not tok.lossless


@given(st.text(alphabet="abcdefghij klmnop", max_size=60))
def test_round_trip_on_normalized_text(tok, text):
    # the documented lossless subset: lowercase letters from the training alphabet, single spaces
    norm = " ".join(text.split())
    assert tok.decode(tok.encode(norm)) == norm


def test_cased_and_accents_options(small_corpus):
    cased = train_tokenizer("wordpiece", [str(small_corpus)], 400, lowercase=False, progress=False)
    assert cased.decode(cased.encode("Käse Straße")) == "Käse Straße"
    assert cased.options["lowercase"] is False
    stripped = train_tokenizer("wordpiece", [str(small_corpus)], 400, lowercase=False, strip_accents=True, progress=False)
    assert stripped.decode(stripped.encode("Käse")) == "Kase"


def test_unknown_character_is_unk(small_corpus):
    tok = train_tokenizer("wordpiece", [str(small_corpus)], 400, progress=False)
    assert tok.encode("ж") == [tok.vocab["[UNK]"]]


def test_save_load_and_determinism(small_corpus, tmp_path):
    a = train_tokenizer("wordpiece", [str(small_corpus)], 400, progress=False)
    b = train_tokenizer("wordpiece", [str(small_corpus)], 400, progress=False)
    assert a.fingerprint == b.fingerprint
    a.save(tmp_path / "wp")
    back = load_tokenizer(tmp_path / "wp")
    assert type(back) is WordPieceTokenizer and back.fingerprint == a.fingerprint
    assert back.encode("the lazy dog") == a.encode("the lazy dog")


def test_vocab_size_too_small_names_minimum(small_corpus):
    with pytest.raises(VocabSizeError, match=r"pass --vocab-size >= (\d+)") as e:
        train_tokenizer("wordpiece", [str(small_corpus)], 20, progress=False)
    minimum = int(e.value.args[0].split(">= ")[1].split(",")[0])
    assert train_tokenizer("wordpiece", [str(small_corpus)], minimum, progress=False).vocab_size == minimum
    with pytest.raises(VocabSizeError):
        train_tokenizer("wordpiece", [str(small_corpus)], 3, progress=False)


def test_empty_corpus(tmp_path):
    (tmp_path / "e.txt").write_text("")
    with pytest.raises(EmptyCorpusError):
        train_tokenizer("wordpiece", [str(tmp_path / "e.txt")], 300, progress=False)


def test_special_tokens_plain_unless_allowed(tok):
    unk = tok.vocab["[UNK]"]
    assert unk not in tok.encode("a [UNK] b")  # "[", "unk", "]" as plain text
    assert tok.encode("a [UNK] b", allowed_special={"[UNK]"}) == tok.encode("a ") + [unk] + tok.encode(" b")
    with pytest.raises(SpecialTokenError):
        tok.encode("a [UNK] b", disallowed_special="raise")


def test_long_line_and_repeats(tok):
    line = "ab" * 500_000  # one 1,000,000-character word: longer than max_input_chars_per_word -> [UNK]
    assert tok.encode(line) == [tok.vocab["[UNK]"]]
    assert len(tok.encode("e " * 100_000)) == 100_000
