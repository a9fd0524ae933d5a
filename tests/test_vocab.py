import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokembed.errors import TokenizerError, TokenNotFoundError
from tokembed.vocab import Vocab, fingerprint_of


def test_lookup_and_suggestions():
    v = Vocab(["<unk>", "hello", "help", "world"], special_tokens={"unk": "<unk>"})
    assert v["help"] == 2 and v.token(3) == "world" and v.special_id("unk") == 0
    with pytest.raises(TokenNotFoundError, match="did you mean 'hello'"):
        v["helo"]
    with pytest.raises(TokenizerError, match="appears twice"):
        Vocab(["a", "a"])
    with pytest.raises(TokenizerError, match="not in the vocab"):
        Vocab(["a"], special_tokens={"eos": "</s>"})


def test_fingerprint_known_answer_and_sensitivity():
    # Known answer: sha256 of the canonical JSON {"special":{},"tokens":["a","b"]}.
    import hashlib

    assert fingerprint_of(["a", "b"]) == hashlib.sha256(b'{"special":{},"tokens":["a","b"]}').hexdigest()
    base = Vocab(["a", "b", "c"]).fingerprint
    assert Vocab(["a", "c", "b"]).fingerprint != base  # order matters (ids change)
    assert Vocab(["a", "b", "c"], special_tokens={"eos": "c"}).fingerprint != base


@given(st.lists(st.text(min_size=1), unique=True, max_size=30))
def test_dict_round_trip(tokens):
    v = Vocab(tokens)
    assert Vocab.from_dict(v.to_dict()) == v


def test_tampered_dict_is_rejected():
    d = Vocab(["a", "b"]).to_dict()
    d["tokens"] = ["b", "a"]
    with pytest.raises(TokenizerError, match="fingerprint"):
        Vocab.from_dict(d)
