"""load_tokenizer dispatch: vocab.txt, tiktoken rank files, hub ids, and malformed files (typed errors with file:line)."""

import base64
import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokembed.errors import ConfigError, HubIdError, TokenizerFileError
from tokembed.tokenizers import ByteBPETokenizer, HFTokenizer, load_tokenizer
from tokembed.tokenizers.reference import PATTERNS

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "brown", "fox", "jump", "##s", "##ed",
         "over", "lazy", "dog", ".", ",", "!", "t", "h", "e", "##h", "##e", "a", "b", "c", "d", "##a", "##b", "##c", "##d",
         "caf", "##e", "##é"]  # fmt: skip


def _write_vocab(path, tokens):
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return path


def test_vocab_txt_equals_transformers_bert(tmp_path):
    from transformers import BertTokenizer

    tokens = list(dict.fromkeys(VOCAB))
    p = _write_vocab(tmp_path / "vocab.txt", tokens)
    tok = load_tokenizer(p)
    assert isinstance(tok, HFTokenizer) and tok.vocab_size == len(tokens)
    ref = BertTokenizer(vocab=str(p))
    for text in ["The quick brown fox jumps over the lazy dog.", "THE DOGS, jumped!", "café Café cafe", ""]:
        assert tok.encode(text) == ref.encode(text), text
    assert tok.encode("xyz [CLS] fox", allowed_special="all") == ref.encode("xyz [CLS] fox") == [2, 1, 2, 8, 3]
    assert tok.encode("xyz [CLS] fox") == [2, 1, 1, 1, 1, 8, 3]  # "[", "cls"->[UNK], "]": plain text
    assert tok.tokens("the fox jumped") == ["[CLS]", "the", "fox", "jump", "##ed", "[SEP]"]
    cased = load_tokenizer(p, lowercase=False)
    assert cased.tokens("The", add_special_tokens=False) == ["[UNK]"]
    # a folder with only vocab.txt loads too, and saves/reloads as a tokembed folder
    tok.save(tmp_path / "saved")
    assert load_tokenizer(tmp_path / "saved").fingerprint == load_tokenizer(tmp_path).fingerprint


def test_vocab_txt_bad(tmp_path):
    with pytest.raises(TokenizerFileError, match=r"vocab.txt:3: token 'a' already appeared on line 2"):
        load_tokenizer(_write_vocab(tmp_path / "vocab.txt", ["[UNK]", "a", "a"]))
    with pytest.raises(TokenizerFileError, match="no \\[UNK\\]"):
        load_tokenizer(_write_vocab(tmp_path / "vocab.txt", ["a", "b"]))
    (tmp_path / "v2.txt").write_bytes(b"[UNK]\n\xff\xfe\n")
    with pytest.raises(TokenizerFileError, match=r"v2.txt:2: invalid UTF-8"):
        load_tokenizer(tmp_path / "v2.txt")


@pytest.fixture(scope="module")
def rank_file(tmp_path_factory):
    """A tiktoken rank file written from a trained bytebpe (ranks = ids, specials left out)."""
    from tokembed.corpus import Corpus

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOKEMBED_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        src = ByteBPETokenizer.train(Corpus([]), 700, special_tokens={}, progress=False)
    ranks = src.fast_path.bpe.ranks
    path = tmp_path_factory.mktemp("tk") / "toy.tiktoken"
    path.write_text("".join(f"{base64.b64encode(t).decode()} {r}\n" for t, r in sorted(ranks.items(), key=lambda kv: kv[1])))
    return path, ranks


def _tiktoken_encoding(ranks, specials):
    import tiktoken

    return tiktoken.Encoding("toy", pat_str=PATTERNS["cl100k"], mergeable_ranks=ranks, special_tokens=specials)


def test_tiktoken_file_ids_equal_tiktoken(rank_file, tmp_path):
    path, ranks = rank_file
    specials = {"<|endoftext|>": len(ranks) + 2}  # a gap before the special id, as in cl100k
    tok = load_tokenizer(path, pattern="cl100k", special_tokens=specials)
    assert isinstance(tok, ByteBPETokenizer) and tok.special_tokens == {"eos": "<|endoftext|>"}
    assert tok.vocab_size == len(ranks) + 3 and tok.vocab.token(len(ranks)) == f"<unused:{len(ranks)}>"
    enc = _tiktoken_encoding(ranks, specials)
    from tokembed.corpus import default_corpus_path

    text = default_corpus_path().read_text(encoding="utf-8")[:30_000]
    assert tok.encode(text) == enc.encode_ordinary(text)
    assert tok.engine.encode(text).ids == enc.encode_ordinary(text)  # the HF engine built from the ranks agrees too
    assert tok.encode("a<|endoftext|>", allowed_special="all") == enc.encode("a<|endoftext|>", allowed_special="all")
    tok.save(tmp_path / "saved")
    back = load_tokenizer(tmp_path / "saved")
    assert back.fingerprint == tok.fingerprint and back.encode(text[:2000]) == tok.encode(text[:2000])


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_tiktoken_file_any_text(rank_file, text):
    path, ranks = rank_file
    tok = _cached(path)
    ids = _tiktoken_encoding(ranks, {}).encode_ordinary(text)
    assert tok.encode(text) == ids == tok.engine.encode(text).ids == tok.reference.encode(text)
    assert tok.decode(ids) == text


_TOK = {}


def _cached(path):
    if path not in _TOK:
        _TOK[path] = load_tokenizer(path, pattern="cl100k")
    return _TOK[path]


def _rank_lines(n=256):
    return [f"{base64.b64encode(bytes([b])).decode()} {b}" for b in range(n)]


@pytest.mark.parametrize(
    "lines, match",
    [
        (_rank_lines()[:10] + ["!!notbase64!! 10"], r"x.tiktoken:11: bad base64"),
        (_rank_lines()[:10] + [f"{base64.b64encode(b'zz').decode()} 5"], r"x.tiktoken:11: rank 5 already used on line 6"),
        (_rank_lines()[:10] + [f"{base64.b64encode(bytes([3])).decode()} 10"], r"x.tiktoken:11: token b'\\x03' already has rank 3"),
        (_rank_lines()[:10] + [f"{base64.b64encode(b'zz').decode()} 12"], r"ranks are not contiguous: rank 10 is missing"),
        (_rank_lines()[:10] + ["QUE= notanumber"], r"x.tiktoken:11: rank 'notanumber' is not an integer"),
        (_rank_lines()[:10] + ["only_one_field"], r"x.tiktoken:11: expected 'BASE64TOKEN RANK'"),
        (_rank_lines()[:100], r"need all 256 single bytes"),
    ],
)
def test_tiktoken_file_bad(tmp_path, lines, match):
    p = tmp_path / "x.tiktoken"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(TokenizerFileError, match=match):
        load_tokenizer(p, pattern="gpt2")


def test_tiktoken_file_needs_pattern(rank_file):
    with pytest.raises(ConfigError, match="pattern="):
        load_tokenizer(rank_file[0])
    with pytest.raises(ConfigError, match="inside the ranks"):
        load_tokenizer(rank_file[0], pattern="gpt2", special_tokens={"<x>": 3})


def test_hub_ids_and_missing_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ["bert-base-uncased", "openai-community/gpt2"]:
        with pytest.raises(HubIdError, match="local folder"):
            load_tokenizer(name)
    with pytest.raises(TokenizerFileError, match="no such file"):
        load_tokenizer(tmp_path / "nope" / "tokenizer.json")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(TokenizerFileError, match="holds no tokembed.json"):
        load_tokenizer(tmp_path / "empty_dir")


@pytest.mark.parametrize(
    "content, match",
    [
        (os.urandom(2000) + b"\xff", r"tokenizer.json:\d+: "),
        (b'{"version": "1.0",\n "model": {"type": "BPE",\n "vocab": {"a": 0', r"tokenizer.json:3:\d+: malformed JSON"),
        (b'{"model": {"type": "BPE", "vocab": 5, "merges": []}}', r"tokenizer.json:1: the tokenizers library rejects"),
        (b'{"model": {"type": "Nope"}}', r"tokenizer.json:1: the tokenizers library rejects"),
        (b"[1, 2, 3]", r"tokenizer.json:1: no 'model' object"),
        (b"", r"tokenizer.json:1:1: malformed JSON"),
    ],
)
def test_bad_tokenizer_json(tmp_path, content, match):
    p = tmp_path / "tokenizer.json"
    p.write_bytes(content)
    with pytest.raises(TokenizerFileError, match=match):
        load_tokenizer(p)
    with pytest.raises(TokenizerFileError):
        load_tokenizer(tmp_path)  # the folder dispatches to the same file


def test_random_bytes_as_other_formats(tmp_path):
    p = tmp_path / "blob.bin"
    p.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(TokenizerFileError, match="not a text file"):
        load_tokenizer(p)
    m = tmp_path / "x.model"
    m.write_bytes(os.urandom(1000))
    with pytest.raises(TokenizerFileError):
        load_tokenizer(m)


def test_tokembed_folder_rejects_loader_options(tmp_path):
    from tokembed.tokenizers import ByteTokenizer

    ByteTokenizer().save(tmp_path / "b")
    with pytest.raises(ConfigError, match="no loader options"):
        load_tokenizer(tmp_path / "b", lowercase=True)
    assert json.loads((tmp_path / "b" / "tokembed.json").read_text())["kind"] == "byte"
