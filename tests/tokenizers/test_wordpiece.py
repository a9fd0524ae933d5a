"""wordpiece: BERT-style training, options, save/load, determinism, documented lossiness, bad input."""

import pytest
from _hf_data import real_text_file
from hypothesis import given
from hypothesis import strategies as st

from tokembed.corpus import Corpus
from tokembed.errors import EmptyCorpusError, SpecialTokenError, VocabSizeError
from tokembed.tokenizers import WordPieceTokenizer, load_tokenizer, train_tokenizer


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return WordPieceTokenizer.train(Corpus([str(real_text_file(tmp_path_factory))]), 2000, progress=False)


def test_bert_style_pieces(tok):
    assert tok.special_tokens == {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "unk": "[UNK]"}
    toks = tok.tokens("Tokenization")
    assert len(toks) > 1 and all(t.startswith("##") for t in toks[1:])  # ## continuations
    assert toks[0] + "".join(t[2:] for t in toks[1:]) == "tokenization"  # lowercased
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
    with pytest.raises(VocabSizeError, match=r"pass vocab_size >= (\d+)") as e:  # the library names its parameter
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


def _bert_engine(lowercase=True, strip_accents=None):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    eng = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    eng.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=strip_accents)
    eng.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return eng


MIXED = (
    "東京とソウル は 大きい 都市 です。中文字符测试，混合text的句子。\n"
    "Käse, Straße und Grüße — naïve café; Ünïcödé ✓ 🙂 (parenthesised) \"quoted\" it's İstanbul\n"
    "Привет, мир! مرحبا بالعالم ελληνικά 한국어 텍스트 tab\tseparated\u3000words a\x01b \x01z\r\n"
    + "° " * 100 + "x°\n"  # frequent at word starts, once inside: the vectorised branch
)


@pytest.mark.parametrize("lowercase, strip_accents", [(True, None), (False, None), (False, False)])
@pytest.mark.parametrize("block_bytes", [1 << 20, 5])
def test_continuation_alphabet_covers_the_exact_one(tmp_path, lowercase, strip_accents, block_bytes):
    """The fast pre-pass vs the slow exact one (normalize + pre-tokenize every line): never a character fewer.

    ``block_bytes=5`` cuts words and multi-byte characters at block edges.
    """
    import gzip

    from tokembed.tokenizers.wordpiece import _continuation_alphabet, _continuation_alphabet_reference

    (tmp_path / "a.txt").write_text(MIXED, encoding="utf-8")
    with gzip.open(tmp_path / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write("zebra Quagga\n")
    eng = _bert_engine(lowercase, strip_accents)
    corpus = Corpus([str(tmp_path)])
    fast = set(_continuation_alphabet(eng, corpus, block_bytes=block_bytes))
    exact = set(_continuation_alphabet_reference(eng, corpus, alpha=0.3, seed=0))
    assert exact <= fast and len(fast - exact) <= 5
    assert {"##°", "##b"} <= exact  # inside once; after a removed control character
    assert ("##Q" in fast) is False  # "Q" only starts a word (lowercased or not)


@given(st.text(alphabet="ab Aé\u0301İ.,\t\r\x01東ß", max_size=40), st.integers(1, 9))
def test_continuation_alphabet_never_misses_a_character(tmp_path_factory, text, block_bytes):
    from tokembed.tokenizers.wordpiece import _continuation_alphabet, _continuation_alphabet_reference

    p = tmp_path_factory.getbasetemp() / "wp-prop.txt"
    p.write_text(text + "\nq\n", encoding="utf-8", newline="")
    for lowercase in (True, False):
        eng = _bert_engine(lowercase)
        fast = set(_continuation_alphabet(eng, Corpus([str(p)]), block_bytes=block_bytes))
        assert set(_continuation_alphabet_reference(eng, Corpus([str(p)]), alpha=0.3, seed=0)) <= fast


def test_training_is_deterministic_on_a_larger_corpus(tmp_path):
    """HF numbers "##c" in hash order (random per trainer): without the fixed alphabet, ties break differently."""
    words = [a + b + c for a in "bcdfg" for b in "aeiou" for c in "klmnprst"]
    lines = [" ".join(words[(i * 7 + j) % len(words)] for j in range(12)) for i in range(300)]
    (tmp_path / "c.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    fps = {train_tokenizer("wordpiece", [str(tmp_path / "c.txt")], 300, progress=False).fingerprint for _ in range(3)}
    assert len(fps) == 1


@given(st.text())
def test_distinct_chars_is_set(text):
    from tokembed.tokenizers.wordpiece import _distinct_chars

    assert _distinct_chars(text) == set(text)
