import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokembed.errors import SpecialTokenError, TokenizerError
from tokembed.tokenizers import ByteTokenizer, load_tokenizer

no_surrogates = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))


@given(no_surrogates)
def test_round_trip(text):
    tok = ByteTokenizer()
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode(text)) == len(text.encode("utf-8"))


def test_special_tokens_plain_by_default_allowed_or_raise():
    tok = ByteTokenizer()
    plain = tok.encode("a</s>")
    assert plain == list(b"a</s>")
    assert tok.encode("a</s>", allowed_special={"</s>"}) == [97, tok.vocab["</s>"]]
    assert tok.encode("a</s>", allowed_special="all") == [97, 258]
    with pytest.raises(SpecialTokenError, match="allowed_special"):
        tok.encode("a</s>", disallowed_special="raise")
    with pytest.raises(SpecialTokenError, match="not special tokens"):
        tok.encode("a", allowed_special={"<nope>"})


def test_save_load_fingerprint(tmp_path):
    tok = ByteTokenizer()
    tok.save(tmp_path / "t")
    back = load_tokenizer(tmp_path / "t")
    assert back.fingerprint == tok.fingerprint and back.encode("xyz") == tok.encode("xyz")


def test_bad_ids_and_vocab_size():
    tok = ByteTokenizer()
    with pytest.raises(TokenizerError, match="outside the vocab"):
        tok.decode([1, 9999])
    with pytest.raises(TokenizerError, match="exactly 259 tokens"):
        ByteTokenizer.train(None, 100)
