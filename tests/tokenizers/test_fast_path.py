"""Which engine encodes: byte-level BPE (trained or loaded from a rank file) through tiktoken, and
plain ``encode`` never through the engine's offset-computing ``encode`` (issue 13).

Each test replaces the slow engines with stubs that fail when called and counts calls into
tiktoken's Rust encoder, so it fails if the fast path did not run.
"""

import pytest
from _hf_data import real_text_file, write_rank_file
from hypothesis import given
from hypothesis import strategies as st

from tokembed.corpus import Corpus
from tokembed.tokenizers import ByteBPETokenizer, WordPieceTokenizer, load_tokenizer
from tokembed.tokenizers.reference import PATTERNS

DISPUTED = "ab \U00016ebc cd"  # U+16EBC: unassigned in Python 3.11's Unicode 14, a letter to newer tables


class _Counting:
    """Proxy of tiktoken's ``CoreBPE`` counting ``encode_ordinary`` calls."""

    def __init__(self, core):
        self.core, self.calls = core, 0

    def encode_ordinary(self, text):
        self.calls += 1
        return self.core.encode_ordinary(text)


class _NoOffsets:
    """Proxy of an HF engine whose offset-computing ``encode`` fails; ``encode_batch_fast`` counts calls."""

    def __init__(self, engine):
        self.engine, self.fast_calls = engine, 0

    def encode(self, *a, **k):
        raise AssertionError("plain encode went through the engine's encode (offsets computed)")

    def encode_batch(self, *a, **k):
        raise AssertionError("plain encode went through the engine's encode_batch (offsets computed)")

    def encode_batch_fast(self, *a, **k):
        self.fast_calls += 1
        return self.engine.encode_batch_fast(*a, **k)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return ByteBPETokenizer.train(Corpus([str(real_text_file(tmp_path_factory))]), 600, progress=False)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A trained vocabulary written as a rank file and loaded as a user would, with a special token."""
    src = ByteBPETokenizer.train(Corpus([str(real_text_file(tmp_path_factory))]), 600, special_tokens={}, progress=False)
    path = tmp_path_factory.mktemp("rank") / "r.tiktoken"
    ranks = write_rank_file(src, path)
    specials = {"<|endoftext|>": len(ranks)}
    return load_tokenizer(path, pattern="cl100k", special_tokens=specials), ranks, specials


def _spy(tok, monkeypatch):
    counter = _Counting(tok.fast_path._core)
    monkeypatch.setattr(tok.fast_path, "_core", counter)
    for name in ("_plain", "_full"):
        monkeypatch.setattr(tok, name, _NoOffsets(getattr(tok, name)))
    monkeypatch.setattr(tok.fast_path, "engine", _NoOffsets(tok.fast_path.engine) if tok.fast_path.engine else None)
    return counter


@pytest.mark.parametrize("which", ["trained", "loaded"])
def test_byte_level_bpe_encodes_through_tiktoken(which, trained, loaded, monkeypatch, tmp_path_factory):
    tok = trained if which == "trained" else loaded[0]
    text = real_text_file(tmp_path_factory).read_text(encoding="utf-8")[:20_000]
    want = tok.encode(text)
    counter = _spy(tok, monkeypatch)
    assert tok.encode(text) == want and counter.calls == 1  # one call into tiktoken's encoder, no HF engine
    lines = text.splitlines() * 3  # > MIN_BLOCK lines per worker: the block-parallel batch path
    assert tok.encode_batch(lines) == [tok.encode(s) for s in lines]
    assert counter.calls == 1 + 2 * len(lines)
    special = tok.special_tokens.get("eos")
    ids = tok.encode(f"a{special}b", allowed_special="all")  # allowed specials: cut out, the rest through tiktoken
    assert ids[1] == tok.vocab[special] and counter.calls == 3 + 2 * len(lines)


def test_rank_file_disputed_text_is_tiktoken_ids(loaded, monkeypatch):
    """tiktoken defines a rank file's ids, on every text: no detour through the HF engine."""
    import tiktoken

    tok, ranks, specials = loaded
    enc = tiktoken.Encoding("r", pat_str=PATTERNS["cl100k"], mergeable_ranks=ranks, special_tokens=specials)
    counter = _spy(tok, monkeypatch)
    assert tok.encode(DISPUTED) == enc.encode_ordinary(DISPUTED) and counter.calls == 1
    ids, offsets = tok.encode_with_offsets(DISPUTED)  # offsets from tiktoken's tokens, same ids as encode
    assert ids == enc.encode_ordinary(DISPUTED) and offsets[-1][1] == len(DISPUTED)


def test_trained_disputed_text_goes_to_the_engine_without_offsets(trained, monkeypatch):
    counter = _spy(trained, monkeypatch)
    ids = trained.encode(DISPUTED)
    assert counter.calls == 0 and trained.fast_path.engine.fast_calls == 1
    assert ids == trained.fast_path.engine.engine.encode(DISPUTED, add_special_tokens=False).ids


def test_wordpiece_encode_computes_no_offsets(tmp_path_factory, monkeypatch):
    tok = WordPieceTokenizer.train(Corpus([str(real_text_file(tmp_path_factory))]), 800, progress=False)
    text = "Hello there, naïve café! [CLS] </s> 12345"
    want = tok._plain.encode(text, add_special_tokens=False).ids  # special strings as text (tokembed rule)
    spy = _NoOffsets(tok._plain)
    monkeypatch.setattr(tok, "_plain", spy)
    assert tok.encode(text) == want and spy.fast_calls == 1
    assert tok.encode_batch([text, text]) == [want, want] and spy.fast_calls == 2


@given(st.text(max_size=80))
def test_loaded_rank_file_ids_equal_tiktoken(loaded, text):
    import tiktoken

    tok, ranks, specials = loaded
    enc = _ENC.setdefault(id(tok), tiktoken.Encoding("r", pat_str=PATTERNS["cl100k"], mergeable_ranks=ranks, special_tokens=specials))
    want = enc.encode_ordinary(text)  # lone surrogates: U+FFFD in both
    assert tok.encode(text) == want
    assert tok.encode_batch([text] * 3) == [want] * 3


_ENC: dict = {}
