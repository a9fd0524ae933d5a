"""Loading sentencepiece .model files, special tokens, and bad input for the sentencepiece kinds."""

import io
import os
import random

import pytest
import sentencepiece as spm
from _spm_data import training_lines

from tokembed.errors import EmptyCorpusError, SpecialTokenError, TokenizerError, TokenizerFileError
from tokembed.tokenizers import BPETokenizer, CharTokenizer, SentencePieceTokenizer, UnigramTokenizer, load_tokenizer
from tokembed.tokenizers import _spm_proto as proto


def raw_model(**kw) -> bytes:
    """A model trained by the raw engine with its defaults (NFKC, dummy prefix), as people have them."""
    out = io.BytesIO()
    args = dict(model_type="unigram", vocab_size=120, character_coverage=1.0, minloglevel=2, num_threads=1, user_defined_symbols=["<mask>"])
    args.update(kw)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(training_lines() + ["a <b> c"]), model_writer=out, **args)
    return out.getvalue()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("spm") / "m.model"
    p.write_bytes(raw_model())
    return p


@pytest.fixture(scope="module")
def uni():
    return UnigramTokenizer.train(training_lines(), 360, special_tokens={"bos": "<s>", "eos": "</s>", "mask": "<mask>"})


def test_from_model_file_same_ids_as_engine(model_file):
    tok = SentencePieceTokenizer.from_model_file(model_file)
    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    text = "The quick brown fox,  judge my vow."
    assert tok.encode(text) == sp.encode(text)
    assert tok.encode_batch([text, "Pack"]) == sp.encode([text, "Pack"])
    assert tok.decode(sp.encode(text)) == sp.decode(sp.encode(text))
    assert tok.vocab_size == sp.get_piece_size() and tok.kind == "sentencepiece"
    assert not tok.lossless  # NFKC + dummy prefix + whitespace collapsing
    assert tok.options["model_type"] == "unigram"
    assert tok.special_tokens == {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "user_0": "<mask>"}


def test_user_defined_symbol_is_plain_text_unless_allowed(model_file):
    tok = SentencePieceTokenizer.from_model_file(model_file)
    mask = tok.vocab["<mask>"]
    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    assert mask in sp.encode("x<mask>y")  # the engine itself matches user-defined symbols in text
    plain = tok.encode("x<mask>y")
    assert mask not in plain and tok.decode(plain) == "x<mask>y"
    assert mask in tok.encode("x<mask>y", allowed_special={"<mask>"})
    with pytest.raises(SpecialTokenError, match="allowed_special"):
        tok.encode("x<mask>y", disallowed_special="raise")
    # opting out: the engine's behaviour
    eng = SentencePieceTokenizer.from_model_file(model_file, user_defined_as_special=False)
    assert "<mask>" not in eng.special_tokens.values() and eng.encode("x<mask>y") == sp.encode("x<mask>y")


def test_special_token_strings_in_text_are_plain(uni):
    text = "a<s>b</s><mask><unk>"
    ids = uni.encode(text)
    assert not set(ids) & {uni.vocab[s] for s in uni.special_tokens.values()}
    assert uni.decode(ids) == text
    allowed = uni.encode(text, allowed_special="all")
    assert allowed.count(uni.vocab["<mask>"]) == 1 and uni.vocab["<s>"] in allowed
    assert uni.decode(allowed) == text  # specials decode to their strings
    assert uni.tokens("<mask>", allowed_special={"<mask>"}) == ["<mask>"]


def test_save_folder_of_loaded_model(model_file, tmp_path):
    tok = SentencePieceTokenizer.from_model_file(model_file)
    tok.save(tmp_path / "s")
    back = load_tokenizer(tmp_path / "s")
    assert back.fingerprint == tok.fingerprint and back.encode("x<mask>y") == tok.encode("x<mask>y")


def test_proto_reader_matches_engine(model_file):
    blob = model_file.read_bytes()
    info = proto.parse_model(blob)
    sp = spm.SentencePieceProcessor(model_proto=blob)
    assert [p for p, _, _ in info.pieces] == [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    assert [s for _, s, _ in info.pieces] == pytest.approx([sp.get_score(i) for i in range(sp.get_piece_size())])
    assert info.model_type == "unigram" and info.add_dummy_prefix and info.normalizer_name == "nmt_nfkc"
    assert proto.retype_pieces(blob, {}) == blob


@pytest.mark.parametrize(
    "blob",
    [b"", b"\x00" * 64, bytes(random.Random(0).randrange(256) for _ in range(4096)), b"\x0a\xff\xff\xff\xff\x0f"],
    ids=["empty", "zeros", "random", "huge-length"],
)
def test_malformed_model_files_are_typed(tmp_path, blob):
    p = tmp_path / "bad.model"
    p.write_bytes(blob)
    with pytest.raises(TokenizerFileError, match="bad.model"):
        SentencePieceTokenizer.from_model_file(p)


def test_mutated_model_files_never_crash(model_file):
    """Random byte edits of a real model: each either loads and round-trips or is a TokenizerFileError."""
    good = model_file.read_bytes()
    rng = random.Random(3)
    loaded = 0
    for _ in range(300):
        blob = bytearray(good)
        for _ in range(rng.randint(1, 6)):
            blob[rng.randrange(len(blob))] = rng.randrange(256)
        try:
            tok = SentencePieceTokenizer(bytes(blob[: rng.randint(len(blob) // 2, len(blob))]))
        except TokenizerFileError:
            continue
        loaded += 1
        tok.decode(tok.encode("judge my vow ▁ x"))
    assert loaded < 300


def test_special_token_config_errors():
    from tokembed.errors import ConfigError

    with pytest.raises(ConfigError, match="2\\+ characters"):
        UnigramTokenizer.train(training_lines(), 360, special_tokens={"bos": "a"})
    with pytest.raises(ConfigError, match="two roles"):
        UnigramTokenizer.train(training_lines(), 360, special_tokens={"bos": "<s>", "eos": "<s>"})


def test_truncated_and_missing_model_file(model_file, tmp_path):
    blob = model_file.read_bytes()
    for cut in (1, len(blob) // 3, len(blob) - 1):
        p = tmp_path / f"cut{cut}.model"
        p.write_bytes(blob[:cut])
        with pytest.raises(TokenizerFileError, match=f"cut{cut}.model"):
            SentencePieceTokenizer.from_model_file(p)
    with pytest.raises(TokenizerFileError, match="nope.model"):
        SentencePieceTokenizer.from_model_file(tmp_path / "nope.model")


def test_tampered_engine_file_in_folder(uni, tmp_path):
    uni.save(tmp_path / "u")
    (tmp_path / "u" / "spm.model").write_bytes(b"garbage")
    with pytest.raises(TokenizerFileError, match="spm.model"):
        load_tokenizer(tmp_path / "u")


def test_empty_corpus(tmp_path):
    with pytest.raises(EmptyCorpusError):
        UnigramTokenizer.train([], 300)
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n  \n")
    from tokembed.tokenizers import train_tokenizer

    for kind in ("unigram", "bpe", "char"):
        with pytest.raises(EmptyCorpusError):
            train_tokenizer(kind, [str(blank)], 300)


def test_million_char_line_without_spaces():
    """Cut into chunks of max_sentence_length bytes for training (sentencepiece would skip the line); no crash.

    Unigram training on such text is slow (no repeats: about 90 s for 1M random letters, see
    docs/tokenizers-spm.md), so it trains on a 20,000-char slice here; encoding is on the whole line.
    """
    rng = random.Random(1)
    line = "".join(rng.choice("abcdefghij") for _ in range(1_000_000))
    bpe = BPETokenizer.train([line], 300)
    char = CharTokenizer.train([line])
    uni = UnigramTokenizer.train([line[:20_000]], 300)
    for tok in (bpe, char, uni):
        ids = tok.encode(line)
        assert tok.decode(ids) == line and len(ids) <= len(line)
    assert char.vocab_size == 4 + 256 + 10
    assert len(bpe.encode(line)) < 0.8 * len(line)  # merges were learned from the chunks


def test_repeats_of_one_character():
    text = "a" * 100_000
    tok = UnigramTokenizer.train([text, "b"], 263)
    ids = tok.encode(text)
    assert tok.decode(ids) == text and len(ids) < 100_000 // 4
    char = CharTokenizer.train([text])
    assert char.encode("aaa") == [char.vocab["a"]] * 3


def test_nul_bytes_and_controls():
    lines = ["ab\x00cd\x00", "\x00\x01\x02 x"] * 20 + training_lines(1)
    tok = BPETokenizer.train(lines, 330)
    for text in ["\x00", "a\x00b", "\x00" * 10, "\x1b[0m\x7f"]:
        assert tok.decode(tok.encode(text)) == text


def test_lone_surrogate_is_typed(uni):
    with pytest.raises(TokenizerError, match="lone surrogate"):
        uni.encode("ab\ud800c")


def test_corpus_error_surfaces_from_inside_training():
    def lines():
        yield "some text"
        raise EmptyCorpusError("boom from the corpus")

    with pytest.raises(EmptyCorpusError, match="boom from the corpus"):
        UnigramTokenizer.train(lines(), 300)


def test_training_writes_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    UnigramTokenizer.train(training_lines(), 360)
    assert os.listdir(tmp_path) == []


def test_engine_agreement_wrapper_vs_raw(uni):
    """The wrapper adds nothing to the engine's ids for text without '▁' (the benchmark's premise)."""
    sp = spm.SentencePieceProcessor(model_proto=uni._proto)
    texts = training_lines(3) + ["  spaced  out  ", "東京 Grüße"]
    assert uni.encode_batch(texts) == sp.encode(texts)


# -- the slow, readable references agree with the engine ---------------------------------------
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tokembed.tokenizers.spm_reference import reference_encode  # noqa: E402

_ALPHABET = "".join(sorted(set("".join(training_lines(1))))) + "Ω🙂\t"  # seen chars + unknown ones


@pytest.fixture(scope="module")
def trained_kinds():
    lines = training_lines()
    return [
        UnigramTokenizer.train(lines, 380),
        BPETokenizer.train(lines, 600),
        CharTokenizer.train(lines),
        CharTokenizer.train(lines, byte_fallback=False),
    ]


def test_reference_agrees_on_training_lines(trained_kinds):
    texts = training_lines(3) + ["   spaced   ", "a▁b ▁", "東京🙂🙂", ""]
    for tok in trained_kinds:
        for t in texts:
            assert reference_encode(tok, t) == tok.encode(t), (tok.kind, t)


@given(st.text(alphabet=_ALPHABET, max_size=60))
def test_reference_agrees_on_random_text(trained_kinds, text):
    for tok in trained_kinds:
        assert reference_encode(tok, text) == tok.encode(text)
