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


@pytest.mark.parametrize("lowercase, strip_accents", [(True, None), (False, None), (False, False)])
def test_continuation_alphabet_covers_the_exact_one(tmp_path, lowercase, strip_accents):
    """The fast pre-pass vs the slow exact one (normalize + pre-tokenize every line): never a character fewer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    from tokembed.tokenizers.wordpiece import _continuation_alphabet

    p = tmp_path / "mixed.txt"
    p.write_text(
        "東京とソウル は 大きい 都市 です。中文字符测试，混合text的句子。\n"
        "Käse, Straße und Grüße — naïve café; Ünïcödé ✓ 🙂 (parenthesised) \"quoted\" it's\n"
        "Привет, мир! مرحبا بالعالم ελληνικά 한국어 텍스트 tab\tseparated\u3000words a\x01b\n",
        encoding="utf-8",
    )
    eng = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    eng.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=strip_accents)
    eng.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    corpus = Corpus([str(p)])
    fast = set(_continuation_alphabet(eng, corpus, alpha=0.3, seed=0))
    exact = set()
    for text in corpus.texts():
        for word, _ in eng.pre_tokenizer.pre_tokenize_str(eng.normalizer.normalize_str(text)):
            exact.update("##" + c for c in word[1:])
    assert exact <= fast and len(fast - exact) <= 5
