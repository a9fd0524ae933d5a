"""encode_with_offsets for the non-HF kinds: ids equal encode, spans monotone and covering the text."""

import pytest
from _spm_data import any_text, training_lines
from hypothesis import given
from hypothesis import strategies as st

from tokembed.errors import ConfigError, SpecialTokenError, TokenizerError
from tokembed.tokenizers import (
    BPETokenizer,
    ByteBPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    MorphTokenizer,
    UnigramTokenizer,
    WordPieceTokenizer,
)
from tokembed.tokenizers.base import Tokenizer, char_spans_from_byte_lengths

KINDS = ["byte", "char", "bpe", "unigram", "morph"]
#: HF-engine kinds: their own encode_with_offsets (hf_engine.py); checked here with the same property.
HF_KINDS = ["bytebpe", "wordpiece"]


@pytest.fixture(scope="module")
def toks(tmp_path_factory):
    lines = training_lines()
    corpus = tmp_path_factory.mktemp("offsets") / "lines.txt"
    corpus.write_text("\n".join(lines), encoding="utf-8")
    return {
        "bytebpe": ByteBPETokenizer.train([str(corpus)], 400),
        "wordpiece": WordPieceTokenizer.train([str(corpus)], 400),
        "byte": ByteTokenizer(),
        "char": CharTokenizer.train(lines),
        "bpe": BPETokenizer.train(lines, 600),
        "unigram": UnigramTokenizer.train(lines, 360),
        "morph": MorphTokenizer.train(lines, 340, segmenter_options={"max_types": 200}),
    }


def check_offsets(tok, text, ids, offsets, **kwargs):
    assert ids == tok.encode(text, **kwargs)
    assert len(offsets) == len(ids)
    prev = (0, 0)
    for s, e in offsets:
        assert 0 <= s <= e <= len(text)
        assert s >= prev[0] and e >= prev[1], (prev, (s, e))
        prev = (s, e)
    if tok.lossless:  # no gaps: each span starts where the text covered so far ends, or before
        covered = 0
        for s, e in offsets:
            if e > s:
                assert s <= covered, (covered, (s, e))
                covered = max(covered, e)
        assert covered == len(text)
    if tok.lossless and tok.kind not in HF_KINDS:
        # Tokens never split a character here, so distinct spans tile the text exactly. (A byte-level
        # BPE token may end inside a character: HF then gives two tokens overlapping spans.)
        pieces, last = [], None
        for span in offsets:
            if span != last:
                pieces.append(text[span[0] : span[1]])
            last = span
        assert "".join(pieces) == text


# Text that often holds the specials, the literal "▁", spaces and characters outside the alphabets.
tricky_text = st.lists(
    st.one_of(any_text, st.sampled_from(["<s>", "</s>", "<pad>", "▁", " ", "  ", "🙂", "東京", "\x00", "happiness"])),
    max_size=6,
).map("".join)


@pytest.mark.parametrize("kind", KINDS + HF_KINDS)
@given(text=st.one_of(any_text, tricky_text))
def test_offsets_property(toks, kind, text):
    tok = toks[kind]
    ids, offsets = tok.encode_with_offsets(text)
    check_offsets(tok, text, ids, offsets)
    ids, offsets = tok.encode_with_offsets(text, allowed_special="all")
    check_offsets(tok, text, ids, offsets, allowed_special="all")
    specials = set(tok.special_tokens.values()) - {tok.special_tokens.get("unk")}  # <unk> stands for text
    for i, (s, e) in zip(ids, offsets):
        if tok.vocab.token(i) in specials:
            assert text[s:e] == tok.vocab.token(i)


@pytest.mark.parametrize("kind", KINDS)
@given(text=tricky_text)
def test_engine_offsets_equal_generic_reference(toks, kind, text):
    """The engines' own offsets equal the slow generic one built from each token's bytes."""
    tok = toks[kind]
    assert tok._ordinary_offsets(text) == Tokenizer._ordinary_offsets(tok, text)


def test_byte_known_answer():
    tok = ByteTokenizer()
    assert tok.encode_with_offsets("aé🙂") == ([97, 195, 169, 240, 159, 153, 130], [(0, 1), (1, 2), (1, 2)] + [(2, 3)] * 4)
    assert tok.encode_with_offsets("") == ([], [])


@pytest.mark.parametrize("kind", ["char", "bpe", "unigram", "morph"])
def test_spm_known_spans(toks, kind):
    tok = toks[kind]
    text = "a🙂 ▁x</s>"
    ids, offsets = tok.encode_with_offsets(text, allowed_special={"</s>"})
    check_offsets(tok, text, ids, offsets, allowed_special={"</s>"})
    tokens = [tok.vocab.token(i) for i in ids]
    # the emoji is outside the alphabet: its 4 byte-fallback tokens all get its span
    assert [o for t, o in zip(tokens, offsets) if t in ("<0xF0>", "<0x9F>", "<0x99>", "<0x82>")] == [(1, 2)] * 4
    # the literal "▁" is its 3 byte tokens, each with its span
    assert [o for t, o in zip(tokens, offsets) if t in ("<0xE2>", "<0x96>", "<0x81>")] == [(3, 4)] * 3
    assert tokens[-1] == "</s>" and offsets[-1] == (5, 9)


def test_errors(toks):
    tok = toks["unigram"]
    with pytest.raises(ConfigError, match="sampling"):
        tok.encode_with_offsets("abc", alpha=0.1, seed=1)
    with pytest.raises(SpecialTokenError, match="allowed_special"):
        tok.encode_with_offsets("a</s>", disallowed_special="raise")
    with pytest.raises(TokenizerError, match="lone surrogate"):
        tok.encode_with_offsets("a\ud800")
    with pytest.raises(TokenizerError, match="takes a str"):
        tok.encode_with_offsets(b"abc")
    with pytest.raises(TokenizerError, match="UTF-8 bytes"):
        char_spans_from_byte_lengths("é", [1])
