"""The vocabulary operations on folders: load, change the tokenizer, apply the map, report — one pipeline.

Unlike :mod:`~tokembed.vocab.trim` / :mod:`~tokembed.vocab.add` (tokenizers only) and
:mod:`~tokembed.vocab.apply` (tensors only), these functions run a whole operation on a
tokembed checkpoint, a Hugging Face model folder or a tokenizer folder, and return the report
that is also written as ``vocab_report.json`` next to the output. The CLI (``tokembed vocab``)
is a thin caller of these.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..artifacts import write_json
from ..errors import ConfigError
from ..training.checkpoint import write_manifest
from .add import add_tokens, tokens_from_corpus
from .apply import Source, load_source, write_output
from .map import INITS, VocabMap
from .transplant import transplant_tokenizer
from .trim import segmentation_changed, trim_tokenizer
from .verify import verify

__all__ = ["trim", "add", "transplant"]


def _check(init: str, pad_to_multiple_of: int) -> None:
    if init not in INITS:
        raise ConfigError(f"init={init!r}; choose one of {', '.join(INITS)}")
    if not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of < 1:
        raise ConfigError(f"pad_to_multiple_of={pad_to_multiple_of!r}; pass an integer >= 1")


def trim(
    source: str | os.PathLike,
    out: str | os.PathLike,
    texts: Sequence[str],
    *,
    min_count: int = 1,
    keep_top: int | None = None,
    keep: Sequence[str] = (),
    drop: Sequence[str] = (),
    held_out: Sequence[str] = (),
    pad_to_multiple_of: int = 1,
    verify_model: bool = True,
) -> dict[str, Any]:
    """Trim ``source`` to the tokens ``texts`` use; write ``out``; return the report."""
    _check("compose", pad_to_multiple_of)
    src = load_source(source)
    new_tok, vmap, facts = trim_tokenizer(src.tokenizer, texts, min_count=min_count, keep_top=keep_top, keep=keep, drop=drop)
    report: dict[str, Any] = {"trim": facts}
    if held_out:
        changed = segmentation_changed(src.tokenizer, new_tok, vmap, held_out)
        report["held_out_changed_share"] = len(changed) / len(held_out)
    report["corpus_changed_share"] = len(segmentation_changed(src.tokenizer, new_tok, vmap, texts)) / max(1, len(texts))
    return _finish(src, out, new_tok, vmap, report, operation="trim", pad_to_multiple_of=pad_to_multiple_of,
                   verify_texts=texts if verify_model else ())


def add(
    source: str | os.PathLike,
    out: str | os.PathLike,
    tokens: Sequence[str] = (),
    *,
    corpus_texts: Sequence[str] = (),
    top: int | None = None,
    special: bool = False,
    init: str = "compose",
    seed: int = 0,
    pad_to_multiple_of: int = 1,
    verify_texts: Sequence[str] = (),
) -> dict[str, Any]:
    """Add ``tokens`` (or the ``top`` most token-saving words of ``corpus_texts``) to ``source``."""
    _check(init, pad_to_multiple_of)
    src = load_source(source)
    tokens = list(tokens)
    if top is not None:
        tokens += tokens_from_corpus(src.tokenizer, corpus_texts, top)
    new_tok, vmap = add_tokens(src.tokenizer, tokens, special=special)
    report = {"tokens": [t.token for t in vmap.new_tokens][:50],
              "intermediates": {t.token: t.intermediates for t in vmap.new_tokens if t.intermediates}}  # BPE add
    return _finish(src, out, new_tok, vmap, report, operation="add", init=init, seed=seed,
                   pad_to_multiple_of=pad_to_multiple_of, verify_texts=list(verify_texts) or list(corpus_texts))


def transplant(
    source: str | os.PathLike,
    out: str | os.PathLike,
    tokenizer,
    *,
    init: str = "compose",
    seed: int = 0,
    pad_to_multiple_of: int = 1,
    verify_texts: Sequence[str] = (),
) -> dict[str, Any]:
    """Move ``source`` to ``tokenizer`` (copy rows of equal tokens, compose the others)."""
    _check(init, pad_to_multiple_of)
    src = load_source(source)
    new_tok, vmap, counts = transplant_tokenizer(src.tokenizer, tokenizer)
    return _finish(src, out, new_tok, vmap, {"transplant": counts}, operation="transplant", init=init, seed=seed,
                   pad_to_multiple_of=pad_to_multiple_of, verify_texts=verify_texts)


def _finish(src: Source, out, new_tok, vmap: VocabMap, facts: dict[str, Any], *, operation: str, init: str = "compose",
            seed: int = 0, pad_to_multiple_of: int = 1, verify_texts: Sequence[str] = ()) -> dict[str, Any]:
    """The common tail: padding, report, output folder, then verification of the written model."""
    src.tokenizer = None  # not needed past this point; a 250k-token HF tokenizer holds ~0.2 GB of engines
    vmap.pad_to_multiple_of = pad_to_multiple_of
    report = _base_report(src, vmap, operation) | {"init": init} | facts
    write_output(src, out, vmap, new_tok, init=init, seed=seed, extra=report)
    if verify_texts and src.kind != "tokenizer":
        report["verify"] = verify(src, Path(out), vmap, verify_texts, operation=operation)
        write_json(Path(out) / "vocab_report.json", report)
        if src.kind == "checkpoint":
            write_manifest(Path(out))  # the report changed: checksums again, last
    return report


def _base_report(src: Source, vmap: VocabMap, operation: str) -> dict[str, Any]:
    rows_after = vmap.rows(src.rows) if src.rows is not None else vmap.new_size
    return {
        "operation": operation,
        "source": str(src.path),
        "source_kind": src.kind,
        "map": vmap.summary(),
        "rows": [src.rows if src.rows is not None else vmap.old_size, rows_after],
        "fingerprints": [vmap.old_fingerprint, vmap.new_fingerprint],
    }

