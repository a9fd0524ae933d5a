"""BPE add of a token of more than two old pieces: intermediates are existing tokens where one composes,
new ones are reported, and every text without the new tokens and their intermediates segments as before."""

from __future__ import annotations

import pytest
from _vocab_models import HELD_OUT, SENTENCES
from hypothesis import given, settings
from hypothesis import strategies as st

from tokembed.errors import TokenizerError
from tokembed.vocab.add import _bpe_word, add_tokens
from tokembed.vocab.map import VocabMap


def _toy_bpe():
    """Letters, merges d+e (rank 0), c+d, cd+e: 'cde' is a token, but 'bcde' segments as b | c | de."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    from tokembed.tokenizers import HFTokenizer

    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"[UNK]": 0, **{c: i + 1 for i, c in enumerate(letters)}}
    merges = [("d", "e"), ("c", "d"), ("cd", "e"), ("a", "b")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    eng = Tokenizer(models.BPE(vocab, merges, unk_token="[UNK]"))
    eng.pre_tokenizer = pre_tokenizers.Whitespace()
    return HFTokenizer(eng)


def test_an_existing_token_composes_the_intermediate():
    tok = _toy_bpe()
    assert tok.tokens("bcde") == ["b", "c", "de"] and "cde" in tok.vocab  # 'cde' is a token (cd + e), not from c | de
    new, vmap = add_tokens(tok, ["bcde"])
    root = vmap.new_tokens[-1]
    assert root.token == "bcde" and root.intermediates == ["cde"]  # b + (c + de): 'cde' is a token already
    assert [t.token for t in vmap.new_tokens] == ["bcde"]  # no new intermediate row (the chain would add 'bc')
    assert new.tokens("bcde") == ["bcde"]
    # a text holding an intermediate may change (c | de now merges into the existing 'cde'); listed for that
    assert tok.tokens("xcde") == ["x", "c", "de"] and new.tokens("xcde") == ["x", "cde"]


def test_new_intermediates_only_when_no_token_composes(bpe_tok):
    new, vmap = add_tokens(bpe_tok, [" tokembed"])
    old_pieces = [bpe_tok.vocab.token(i) for i in bpe_tok.encode(" tokembed")]
    assert len(old_pieces) > 2
    root = vmap.new_tokens[-1]
    inter = [t for t in vmap.new_tokens if t.intermediate_of]
    assert root.token == "Ġtokembed" and len(root.intermediates) == len(old_pieces) - 2
    assert {t.token for t in inter} == {s for s in root.intermediates if s not in bpe_tok.vocab}
    assert all(t.intermediate_of == "Ġtokembed" for t in inter)
    assert new.tokens(" tokembed") == ["Ġtokembed"]
    back = VocabMap.from_dict(vmap.to_dict())  # reported in vocab_map.json too
    assert back.new_tokens[-1].intermediates == root.intermediates and back.to_dict() == vmap.to_dict()


def _strings(vmap) -> list[str]:
    """Texts (markers decoded) of the new tokens and of every intermediate, existing or new."""
    from tokembed.tokenizers.reference import bytes_to_unicode

    inv = {c: b for b, c in bytes_to_unicode().items()}
    out = set()
    for t in vmap.new_tokens:
        for s in [t.token, *t.intermediates]:
            out.add(bytes(inv[c] for c in s).decode("utf-8", "replace") if all(c in inv for c in s) else s)
    return sorted(out)


ADDED = [" tokembed", " vocabulary", " catdog", " mattress", " embeddings", " tokenizers"]


@pytest.fixture(scope="module")
def added(bpe_tok):
    return add_tokens(bpe_tok, [t for t in ADDED if len(bpe_tok.encode(t)) > 1])


@settings(deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abcdegiklmnorstuvyz ,.")), max_size=80)
       | st.sampled_from(SENTENCES + HELD_OUT) | st.text(max_size=40))
def test_texts_without_new_tokens_or_intermediates_keep_their_segmentation(bpe_tok, added, text):
    new, vmap = added
    if not any(s.lower() in text.lower() for s in _strings(vmap)):
        assert new.encode(text) == bpe_tok.encode(text)


def test_toy_texts_without_the_strings_are_unchanged():
    tok = _toy_bpe()
    new, vmap = add_tokens(tok, ["bcde", "abcde"])
    for t in vmap.new_tokens:
        assert new.tokens(t.token) == [t.token]
    strings = _strings(vmap)
    for text in ["cd de e", "dec bc", "bcd", "abc de", "ab cd e", "cdcd", "xcdey", "bcdx"]:
        if not any(s in text for s in strings):
            assert new.encode(text) == tok.encode(text), text


def test_bpe_word_simulation_and_refusal(monkeypatch):
    assert _bpe_word(["a", "b", "c"], {("a", "b"): 1, ("b", "c"): 0}) == ["a", "bc"]
    assert _bpe_word(["a", "b", "a", "b"], {("a", "b"): 0, ("ab", "ab"): 1}) == ["abab"]
    from tokembed.vocab import add as add_mod

    monkeypatch.setattr(add_mod, "_bpe_word", lambda symbols, ranks: list(symbols))  # no tree would build it
    with pytest.raises(TokenizerError, match="special"):
        add_tokens(_toy_bpe(), ["bcde"])
