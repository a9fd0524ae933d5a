"""load_tokenizer dispatch: vocab.txt, tiktoken rank files, hub ids, and malformed files (typed errors with file:line)."""

import base64
import json
import os

import pytest
from _hf_data import disputed, real_text_file, write_rank_file
from hypothesis import given
from hypothesis import strategies as st

from tokembed.errors import ConfigError, HubIdError, TokenizerError, TokenizerFileError
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

    src = ByteBPETokenizer.train(Corpus([str(real_text_file(tmp_path_factory))]), 700, special_tokens={}, progress=False)
    path = tmp_path_factory.mktemp("tk") / "toy.tiktoken"
    return path, write_rank_file(src, path)


def _tiktoken_encoding(ranks, specials):
    import tiktoken

    return tiktoken.Encoding("toy", pat_str=PATTERNS["cl100k"], mergeable_ranks=ranks, special_tokens=specials)


def test_tiktoken_file_ids_equal_tiktoken(rank_file, tmp_path, tmp_path_factory):
    path, ranks = rank_file
    specials = {"<|endoftext|>": len(ranks) + 2}  # a gap before the special id, as in cl100k
    tok = load_tokenizer(path, pattern="cl100k", special_tokens=specials)
    assert isinstance(tok, ByteBPETokenizer) and tok.special_tokens == {"eos": "<|endoftext|>"}
    assert tok.vocab_size == len(ranks) + 3 and tok.vocab.token(len(ranks)) == f"<unused:{len(ranks)}>"
    enc = _tiktoken_encoding(ranks, specials)
    text = real_text_file(tmp_path_factory).read_text(encoding="utf-8")[:30_000]
    assert tok.encode(text) == enc.encode_ordinary(text)
    assert tok.engine.encode(text).ids == enc.encode_ordinary(text)  # the HF engine built from the ranks agrees too
    assert tok.encode("a<|endoftext|>", allowed_special="all") == enc.encode("a<|endoftext|>", allowed_special="all")
    assert tok.decode(enc.encode("a<|endoftext|>", allowed_special="all")) == "a<|endoftext|>"
    with pytest.raises(TokenizerError, match="unused slot"):
        tok.decode([len(ranks)])
    tok.save(tmp_path / "saved")
    back = load_tokenizer(tmp_path / "saved")
    assert back.fingerprint == tok.fingerprint and back.encode(text[:2000]) == tok.encode(text[:2000])


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_tiktoken_file_any_text(rank_file, text):
    path, ranks = rank_file
    tok = _cached(path)
    ids = _tiktoken_encoding(ranks, {}).encode_ordinary(text)
    assert tok.encode(text) == ids == tok.encode_with_offsets(text)[0]  # tiktoken defines a rank file's ids
    assert tok.encode_batch([text, text[:5]]) == [ids, tok.encode(text[:5])]
    if not disputed(text):  # code points the engines' Unicode tables disagree on (the HF engine may split otherwise)
        assert ids == tok.engine.encode(text).ids == tok.reference.encode(text)
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
        (b"[" * 100_000 + b"]" * 100_000, r"tokenizer.json:1: JSON nested too deeply"),
        (b'{"model": {"type": "WordPiece", "unk_token": "[UNK]",\n "vocab": {"[UNK]": 0,\n "a": 1,\n "b": 1}}}',
         r"tokenizer.json:4: id 1 is given to both 'a' and 'b'"),
        (b'{"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"a": 0}}}', r"unk_token '\[UNK\]' is not in the model vocab"),
        (b'{"model": {"type": "WordLevel", "unk_token": "a", "vocab": {"a": -3}}}', r"token 'a' has id -3"),
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


def test_mutated_tokenizer_json_never_crashes(tmp_path):
    """Fault test: 150 random type/value mutations of valid files load and run, or raise a TokembedError."""
    import copy
    import random

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from tokembed.errors import TokembedError

    text = ["hello world the quick brown fox"] * 10
    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.train_from_iterator(text, trainer=trainers.WordPieceTrainer(vocab_size=60, special_tokens=["[UNK]", "[CLS]"], show_progress=False))
    bl = Tokenizer(models.BPE())
    bl.pre_tokenizer = pre_tokenizers.ByteLevel()
    bl.decoder = decoders.ByteLevel()
    bl.train_from_iterator(text, trainer=trainers.BpeTrainer(vocab_size=280, special_tokens=["<s>"], show_progress=False,
                                                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))  # fmt: skip
    docs = [json.loads(wp.to_str()), json.loads(bl.to_str())]
    values = [None, 0, -1, 10**12, "x", "", [], {}, [1, "a"], {"a": 1}, True, 1.5, "[UNK]", "Ġ"]

    def paths(o, pre=()):
        if pre:
            yield pre
        items = o.items() if isinstance(o, dict) else enumerate(o[:5]) if isinstance(o, list) else ()
        for k, v in items:
            yield from paths(v, pre + (k,))

    rng = random.Random(0)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(150):
        doc = copy.deepcopy(rng.choice(docs))
        where = list(paths(doc))
        for _ in range(rng.randint(1, 3)):
            *parent, key = rng.choice(where)
            o = doc
            try:
                for k in parent:
                    o = o[k]
                o[key] = rng.choice(values)
            except (KeyError, IndexError, TypeError):
                pass
        (tmp_path / "tokenizer.json").write_text(json.dumps(doc))
        try:
            tok = load_tokenizer(tmp_path / "tokenizer.json")
            tok.decode(tok.encode("hello [CLS] world"))
            tok.encode_batch(["a b", "hello"])
            outcomes["ok"] += 1
        except TokembedError:
            outcomes["error"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0
