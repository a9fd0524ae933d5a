"""bytebpe: training, save/load, determinism, lossless round trips, special tokens, bad input."""

import random

import pytest
from _hf_data import real_text_file
from hypothesis import given
from hypothesis import strategies as st

from tokembed.corpus import Corpus
from tokembed.errors import ConfigError, EmptyCorpusError, SpecialTokenError, VocabSizeError
from tokembed.tokenizers import ByteBPETokenizer, load_tokenizer, train_tokenizer

no_surrogates = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return ByteBPETokenizer.train(Corpus([str(real_text_file(tmp_path_factory))]), 1000, progress=False)


def test_vocab_layout_and_fast_path(tok):
    assert tok.vocab_size == 1000 and tok.kind == "bytebpe"
    assert tok.vocab.tokens[:3] == ["<pad>", "<s>", "</s>"]
    assert tok.special_tokens == {"pad": "<pad>", "bos": "<s>", "eos": "</s>"}
    assert tok.fast_path is not None and tok.lossless
    text = "The quick brown fox, isn't it? 12345"
    assert tok.encode(text) == tok.engine.encode(text).ids  # tiktoken path == HF engine


@given(no_surrogates)
def test_round_trip_lossless(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 <= i < tok.vocab_size for i in ids)


def test_real_text_round_trip_and_compression(tok, tmp_path_factory):
    text = real_text_file(tmp_path_factory).read_text(encoding="utf-8")[:50_000]
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(text.encode()) / len(ids) > 2.0  # merges learned something (bytes per token)


def test_lone_surrogates_become_replacement_char(tok):
    assert tok.decode(tok.encode("a\ud800b")) == "a\ufffdb"


def test_save_load_same_fingerprint_and_ids(tok, tmp_path):
    tok.save(tmp_path / "t")
    back = load_tokenizer(tmp_path / "t")
    assert type(back) is ByteBPETokenizer
    assert back.fingerprint == tok.fingerprint and back.special_tokens == tok.special_tokens
    assert back.encode("héllo wörld") == tok.encode("héllo wörld")


def test_deterministic_training(small_corpus):
    a = train_tokenizer("bytebpe", [str(small_corpus)], 400, progress=False)
    b = train_tokenizer("bytebpe", [str(small_corpus)], 400, progress=False)
    assert a.fingerprint == b.fingerprint
    c = train_tokenizer("bytebpe", [str(small_corpus)], 400, pattern="gpt2", progress=False)
    assert c.options["pattern"] == "gpt2"
    assert c.reference.pieces("12345") == ["12345"] and a.reference.pieces("12345") == ["123", "45"]


def test_vocab_size_too_small_names_minimum(small_corpus):
    with pytest.raises(VocabSizeError, match=">= 259"):
        train_tokenizer("bytebpe", [str(small_corpus)], 258, progress=False)
    tok = train_tokenizer("bytebpe", [str(small_corpus)], 259, progress=False)
    assert tok.vocab_size == 259 and tok.decode(tok.encode("ok ✓")) == "ok ✓"


def test_empty_corpus(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(EmptyCorpusError):
        train_tokenizer("bytebpe", [str(tmp_path / "empty.txt")], 300, progress=False)


def test_bad_pattern(small_corpus):
    with pytest.raises(ConfigError, match="does not compile"):
        train_tokenizer("bytebpe", [str(small_corpus)], 300, pattern="(unclosed", progress=False)


def test_special_token_string_is_plain_text_unless_allowed(tok):
    plain = tok.encode("a<s>b")
    assert tok.vocab["<s>"] not in plain and tok.decode(plain) == "a<s>b"
    assert tok.encode("a<s>b", allowed_special={"<s>"}) == tok.encode("a") + [1] + tok.encode("b")
    with pytest.raises(SpecialTokenError, match="allowed_special"):
        tok.encode("a<s>b", disallowed_special="raise")
    assert tok.encode_batch(["a<s>b"]) == [plain]


def test_encode_batch_equals_encode(tok, tmp_path_factory):
    random.seed(0)
    lines = real_text_file(tmp_path_factory).read_text(encoding="utf-8").splitlines()[:3000]
    assert tok.encode_batch(lines) == [tok.encode(x) for x in lines]  # 3000 lines: the 2-block threaded path


def test_long_line_and_repeats_bounded(tok):
    rng = random.Random(0)
    line = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzäß") for _ in range(1_000_000))
    ids = tok.encode(line)
    assert tok.decode(ids) == line
    rep = "x" * 100_000
    assert tok.decode(tok.encode(rep)) == rep and tok.encode(rep) == tok.engine.encode(rep).ids


def test_bpe_dropout_seeded(tok):
    text = "internationalization of tokenizers is unbelievable"
    base = tok.encode(text)
    assert tok.encode(text, dropout=0.0) == base
    a = tok.encode(text, dropout=0.3, seed=7)
    assert a == tok.encode(text, dropout=0.3, seed=7)  # reproducible per seed
    assert tok.decode(a) == text  # still lossless
    samples = {tuple(tok.encode(text, dropout=0.3, seed=s)) for s in range(20)}
    assert len(samples) > 1 and all(len(s) >= len(base) for s in samples)
    with pytest.raises(ConfigError):
        tok.encode(text, dropout=1.5)
    assert tok.encode("a<s>b", allowed_special="all", dropout=0.5, seed=1)[1] == 1


def test_nul_bytes_and_control_characters(tok):
    text = "a\x00b\x01\x7f\u2028c\r\n"
    assert tok.decode(tok.encode(text)) == text


def test_tampered_engine_file_is_detected(tok, tmp_path):
    import json

    from tokembed.errors import TokenizerFileError

    tok.save(tmp_path / "t")
    f = tmp_path / "t" / "tokenizer.json"
    doc = json.loads(f.read_text(encoding="utf-8"))
    vocab = doc["model"]["vocab"]
    a, b = sorted(vocab, key=vocab.get)[3:5]
    vocab[a], vocab[b] = vocab[b], vocab[a]  # swap two byte ids: same tokens, different table
    f.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(TokenizerFileError, match="fingerprint"):
        load_tokenizer(tmp_path / "t")
    doc["pre_tokenizer"] = {"type": "Whitespace"}  # no longer byte-level
    f.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(TokenizerFileError, match=r"tokenizer.json: not a plain byte-level BPE"):
        load_tokenizer(tmp_path / "t")


def test_invalid_utf8_in_corpus(tmp_path):
    from tokembed.errors import DecodeError

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\nbad \xff byte\n" * 5)
    with pytest.raises(DecodeError, match=r"bad.txt:2: invalid UTF-8 at byte offset 14"):
        train_tokenizer("bytebpe", [str(bad)], 300, progress=False)
    tok = train_tokenizer("bytebpe", Corpus([str(bad)], errors="replace"), 300, progress=False)
    assert tok.decode(tok.encode("bad \ufffd byte")) == "bad \ufffd byte"
