"""Diff of two vocabularies: tokens added, removed and renumbered, specials changed, and whether a remap exists.

Unlike :class:`~tokembed.vocab.map.VocabMap` (what to do with rows), a diff only describes.
A remap always exists between two tokenizers (:meth:`VocabMap.between`); it is *exact* when
every token of B is a token of A (only drops and renumbering), otherwise the rows of the
added tokens need an init.

>>> from tokembed.vocab import Vocab
>>> d = vocab_diff(Vocab(["<unk>", "a", "b"], special_tokens={"unk": "<unk>"}), Vocab(["<unk>", "b", "c"], special_tokens={"unk": "<unk>"}))
>>> d["added"], d["removed"], d["renumbered"], d["remap"]
(['c'], ['a'], {'b': [2, 1]}, 'needs init for 1 new rows')
"""

from __future__ import annotations

from typing import Any

__all__ = ["vocab_diff", "format_diff"]


def vocab_diff(a, b, *, limit: int = 50) -> dict[str, Any]:
    """Compare two :class:`~tokembed.vocab.Vocab` (or tokenizers); lists are cut to ``limit`` entries."""
    a = getattr(a, "vocab", a)
    b = getattr(b, "vocab", b)
    added = [t for t in b if t not in a]
    removed = [t for t in a if t not in b]
    renumbered = {t: [a[t], b[t]] for t in b if t in a and a[t] != b[t]}
    roles = sorted(set(a.special_tokens) | set(b.special_tokens))
    specials = {r: [a.special_tokens.get(r), b.special_tokens.get(r)] for r in roles if a.special_tokens.get(r) != b.special_tokens.get(r)}
    return {
        "size": [len(a), len(b)],
        "fingerprint": [a.fingerprint, b.fingerprint],
        "identical": a.fingerprint == b.fingerprint,
        "counts": {"added": len(added), "removed": len(removed), "renumbered": len(renumbered), "same_id": len(b) - len(added) - len(renumbered)},
        "added": added[:limit],
        "removed": removed[:limit],
        "renumbered": dict(list(renumbered.items())[:limit]),
        "specials_changed": specials,
        "remap": "exact (drops and renumbering only)" if not added else f"needs init for {len(added)} new rows",
    }


def format_diff(d: dict[str, Any]) -> str:
    """Human-readable lines of :func:`vocab_diff`."""
    c = d["counts"]
    lines = [
        f"A: V={d['size'][0]} fingerprint {d['fingerprint'][0][:12]}",
        f"B: V={d['size'][1]} fingerprint {d['fingerprint'][1][:12]}",
        "identical" if d["identical"] else f"added {c['added']}, removed {c['removed']}, renumbered {c['renumbered']}, same id {c['same_id']}",
    ]
    for key in ("added", "removed"):
        if d[key]:
            lines.append(f"{key}: {', '.join(repr(t) for t in d[key][:20])}{' ...' if c[key] > 20 else ''}")
    for role, (x, y) in d["specials_changed"].items():
        lines.append(f"special {role}: {x!r} -> {y!r}")
    lines.append(f"remap: {d['remap']} (tokembed vocab map/transplant builds it)")
    return "\n".join(lines)
