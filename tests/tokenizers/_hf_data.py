"""Shared test data for the HF-engine tokenizer tests: a 300 kB slice of the built-in corpus (real prose)."""

import os

import pytest

_SLICE_CHARS = 300_000


def real_text_file(tmp_path_factory):
    """Path of a file with the first 300 kB of the built-in corpus, written once per session."""
    path = tmp_path_factory.getbasetemp() / "hf_real_text.txt"
    if not path.exists():
        from tokembed.corpus import default_corpus_path

        with pytest.MonkeyPatch.context() as mp:  # the session's default-corpus cache (see conftest)
            mp.setenv("TOKEMBED_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
            text = default_corpus_path().read_text(encoding="utf-8")[:_SLICE_CHARS]
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return path


def disputed(text: str) -> bool:
    """True when ``text`` holds a code point the engines' Unicode tables may classify differently."""
    from tokembed.tokenizers.tiktoken_engine import has_disputed

    return has_disputed(text)


def write_rank_file(tok, path):
    """Write a byte-level BPE tokenizer's ranks as a tiktoken rank file (``base64(token) rank`` lines, specials left out)."""
    import base64

    ranks = tok.fast_path.bpe.ranks
    path.write_text("".join(f"{base64.b64encode(t).decode()} {r}\n" for t, r in sorted(ranks.items(), key=lambda kv: kv[1])))
    return ranks
