"""Hostile tokenizer files and options (issue 12): each is built here and must give a typed one-line
error (or the documented recovery) before anything large is allocated or native code aborts."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tokembed.errors import ConfigError, TokenizerError, TokenizerFileError
from tokembed.tokenizers import load_tokenizer, train_tokenizer
from tokembed.tokenizers.hf_engine import HFTokenizer

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _wordlevel_json(vocab: dict, *, pre_tokenizer=None, added=()) -> str:
    return json.dumps({
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for c, i in added],
        "normalizer": None, "pre_tokenizer": pre_tokenizer or {"type": "Whitespace"}, "post_processor": None,
        "decoder": None, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"},
    }, indent=1)  # fmt: skip


@pytest.mark.parametrize("where", ["model", "added"])
def test_sparse_huge_id_is_refused_before_allocating(tmp_path, where):
    """One id of 3 million in a tiny file: before the fix the loader built a 3M-entry table and accepted it."""
    vocab = {"[UNK]": 0, "hello": 1, "world": 2}
    added = ()
    if where == "model":
        vocab["far"] = 3_000_000
    else:
        added = [("<huge>", 3_000_000)]
    p = tmp_path / "tokenizer.json"
    p.write_text(_wordlevel_json(vocab, added=added))
    with pytest.raises(TokenizerFileError, match=r"id 3000000 is far beyond the \d+ ids defined.*dense"):
        load_tokenizer(p)


def test_sparse_huge_id_in_an_engine_built_in_memory():
    from tokenizers import Tokenizer, models

    eng = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 10**9}, unk_token="[UNK]"))
    with pytest.raises(TokenizerFileError, match="far beyond"):
        HFTokenizer(eng)


def test_sparse_huge_id_one_gigabyte_stays_small(tmp_path):
    """The issue's case: id 10^9 (the old loader reached 6.6 GB); run capped at 1 GB of address space."""
    p = tmp_path / "tokenizer.json"
    p.write_text(_wordlevel_json({"[UNK]": 0, "x": 10**9}))
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30));"
        "from tokembed.tokenizers import load_tokenizer; from tokembed.errors import TokenizerFileError\n"
        f"try: load_tokenizer({str(p)!r})\nexcept TokenizerFileError as e: print('typed:', e); sys.exit(0)\nsys.exit(3)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": SRC}, timeout=120)
    assert r.returncode == 0 and "far beyond" in r.stdout, r.stderr[-1500:]


CATASTROPHIC = "(a+)+$"


def test_catastrophic_regex_in_tokenizer_json(tmp_path):
    pre = {"type": "Split", "pattern": {"Regex": CATASTROPHIC}, "behavior": "Isolated", "invert": False}
    p = tmp_path / "tokenizer.json"
    p.write_text(_wordlevel_json({"[UNK]": 0, "a": 1}, pre_tokenizer=pre))
    with pytest.raises(TokenizerFileError, match=r"tokenizer.json:\d+: regex '\(a\+\)\+\$' nests unbounded quantifiers"):
        load_tokenizer(p)


def test_engine_panic_is_a_typed_error():
    """A pattern the static check lets through but the engine still gives up on: the panic is typed."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    eng = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    eng.pre_tokenizer = pre_tokenizers.Split(Regex("(a|aa)+$"), behavior="isolated")  # overlapping alternatives
    tok = HFTokenizer(eng)
    with pytest.raises(TokenizerError, match="failed on this text"):
        tok.encode("a" * 60 + "b")
    with pytest.raises(TokenizerError, match="failed on this text"):
        tok.encode_batch(["a" * 60 + "b"])


@pytest.mark.parametrize("pattern", [CATASTROPHIC, r"(\w+\s?)*$", "([a-z]+)*x", "(unclosed"])
def test_catastrophic_or_invalid_user_pattern(tmp_path, pattern):
    corpus = tmp_path / "c.txt"
    corpus.write_text("aaaa bbb\n" * 3)
    with pytest.raises(ConfigError, match="nests unbounded quantifiers|does not compile"):
        train_tokenizer("bytebpe", [str(corpus)], 300, pattern=pattern, progress=False)
    ranks = tmp_path / "r.tiktoken"
    import base64

    ranks.write_text("".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(256)))
    with pytest.raises(ConfigError, match="nests unbounded quantifiers|does not compile"):
        load_tokenizer(ranks, pattern=pattern)


def test_cli_pattern_is_one_line_rc_2(tmp_path):
    import base64

    ranks = tmp_path / "r.tiktoken"
    ranks.write_text("".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(256)))
    r = subprocess.run([sys.executable, "-m", "tokembed", "tokenizer", "encode", str(ranks), "--pattern", CATASTROPHIC, "aaa"],
                       capture_output=True, text=True, env={"PYTHONPATH": SRC}, timeout=120)  # fmt: skip
    assert r.returncode == 2 and "nests unbounded quantifiers" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_vocab_txt_with_bom_equals_without(tmp_path):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s"]
    plain, bom = tmp_path / "plain" / "vocab.txt", tmp_path / "bom" / "vocab.txt"
    for p in (plain, bom):
        p.parent.mkdir()
    plain.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    a, b = load_tokenizer(plain), load_tokenizer(bom)
    assert b.vocab.token(0) == "[PAD]" and b.special_tokens["pad"] == "[PAD]"
    assert a.fingerprint == b.fingerprint and a.encode("hello worlds") == b.encode("hello worlds")


@pytest.mark.parametrize("kind", ["hf", "sentencepiece", "nonsense"])
def test_train_kind_lists_only_trainable_kinds(kind):
    with pytest.raises(ConfigError) as e:
        train_tokenizer(kind, None, 300)
    listed = str(e.value).split("choose one of ")[1]
    assert "hf" not in listed.split(", ") and "sentencepiece" not in listed and "bytebpe" in listed


def test_loading_a_large_tokenizer_json_looks_up_lines_only_for_errors(tmp_path, monkeypatch):
    """A text search per token to name its line made loading quadratic (85 s for a 29k-token file)."""
    import tokembed.tokenizers.hf_engine as hf_engine

    calls = []
    real = hf_engine._line_of
    monkeypatch.setattr(hf_engine, "_line_of", lambda text, needle: calls.append(needle) or real(text, needle))
    vocab = {"[UNK]": 0, **{f"w{i}": i + 1 for i in range(3000)}}
    p = tmp_path / "tokenizer.json"
    p.write_text(_wordlevel_json(vocab))
    assert load_tokenizer(p).vocab_size == 3001
    assert len(calls) <= 2, f"{len(calls)} line lookups"
