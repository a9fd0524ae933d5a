"""Under-trained ("glitch") tokens, after Land & Bartolo (2024), "Fishing for Magikarp".

A token that (almost) never occurred in training keeps rows that moved only through the
shared gradient directions. Two indicators find them without running the model:

* **head cosine**: remove the first principal component from the head rows ``W^T`` (tied:
  ``E``), take the mean ``r`` of a *reference set* of tokens known to be unused, and score
  every token by ``cos(w_t − (w_t·p₁)p₁, r)`` — high means "looks like an unused token";
* **input norm** (untied models): unused input rows keep a small norm, ``‖e_t‖`` low is suspicious.

The reference set is found automatically, never from a hand-written list: tokens the
tokenizer cannot produce from text (``decode([t])`` re-encoded does not contain ``t``, also
after a word-initial prefix for continuation pieces), plus tokens with zero count on a corpus
when one is given. Special tokens and lone UTF-8 byte pieces are never reference tokens.
Unlike the Magikarp code, the result is a ranking with indicator values; verification by
running a causal LM (the model's probability of repeating the token) is optional.

Shapes: V rows, D width.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .token_classes import detect_convention, token_class
from .geometry import row_norms, spectrum

__all__ = [
    "reachability",
    "reference_set",
    "head_cosine_indicator",
    "head_cosine_indicator_reference",
    "undertrained_summary",
    "verify_repetition",
    "CANDIDATE_PERCENTILE",
    "ZERO_COUNT_MAX_SHARE",
]

#: share of tokens (highest indicator) listed as candidates: the top 2%, the Magikarp default
#: (``DEFAULT_THRESHOLD_PERCENTILE = 2.0`` in cohere-ai/magikarp).
CANDIDATE_PERCENTILE = 2.0
#: zero-count tokens join the reference set only while they are at most this share of the vocabulary:
#: on a small corpus most tokens are unseen yet trained, and their mean is no "unused" direction.
ZERO_COUNT_MAX_SHARE = 0.1
_REPLACEMENT = "\ufffd"


def reachability(tokenizer, *, ids: Sequence[int] | None = None, prefixes: int = 3) -> dict[int, str]:
    """Category of each token: ``ok``, ``special``, ``partial-utf8`` or ``unreachable``.

    ``ok`` when ``t`` is in ``encode(decode([t]))`` or, for a continuation piece, in
    ``encode(decode([p, t]))`` for one of ``prefixes`` single-letter word-initial tokens ``p``.
    """
    vocab = tokenizer.vocab
    tokens = vocab.tokens
    V = len(tokens)
    ids = list(range(V)) if ids is None else list(ids)
    special = vocab.special_ids
    conv = detect_convention(tokens)
    out: dict[int, str] = {}
    todo, texts = [], []
    for i in ids:
        if i in special:
            out[i] = "special"
            continue
        try:
            s = tokenizer.decode([i])
        except Exception:  # a piece some engines refuse to decode alone
            out[i] = "partial-utf8"
            continue
        if _REPLACEMENT in s and _REPLACEMENT not in tokens[i]:
            out[i] = "partial-utf8"
            continue
        todo.append(i)
        texts.append(s)

    def still_missing(ids_: list[int], texts_: list[str]) -> list[int]:
        """Mark ids found in the encoding of their text ``ok``; return the others."""
        left = []
        for i, e in zip(ids_, tokenizer.encode_batch(texts_) if texts_ else []):
            if i in e:
                out[i] = "ok"
            else:
                left.append(i)
        return left

    retry = still_missing(todo, texts)
    if retry and prefixes:
        pre = [
            j
            for j, t in enumerate(tokens)
            if j not in special
            and token_class(t, convention=conv) == "word-initial"
            and len(t.strip("Ġ▁ ")) == 1
            and t.strip("Ġ▁ ").isalpha()
        ][:prefixes]
        for p in pre:
            retry = still_missing(retry, [tokenizer.decode([p, i]) for i in retry])
            if not retry:
                break
    for i in retry:
        out[i] = "unreachable"
    return out


def reference_set(
    tokenizer=None, *, counts: np.ndarray | None = None, V: int, special_ids=()
) -> tuple[np.ndarray, dict]:
    """Ids of tokens known to be unused: unreachable by the tokenizer ∪ zero count on the corpus.

    Returns (sorted ids, info) where info holds the category counts and how many came from each test.
    """
    special = set(special_ids)
    info: dict = {"unreachable": 0, "zero_count": 0, "categories": {}}
    ref: set[int] = set()
    if tokenizer is not None:
        cats = reachability(tokenizer)
        for c in cats.values():
            info["categories"][c] = info["categories"].get(c, 0) + 1
        unreachable = {i for i, c in cats.items() if c == "unreachable"}
        info["unreachable"] = len(unreachable)
        ref |= unreachable
        partial = {i for i, c in cats.items() if c == "partial-utf8"}
    else:
        partial = set()
    if counts is not None:
        zero = set(np.flatnonzero(np.asarray(counts)[:V] == 0).tolist()) - special - partial
        info["zero_count"] = len(zero)
        if len(zero) <= ZERO_COUNT_MAX_SHARE * V:
            ref |= zero
        else:
            info["zero_count_used"] = False
            info["note"] = (
                f"{len(zero)} tokens ({len(zero) / V:.0%}) have zero count: the corpus is too small for 'unseen' to mean "
                f"'unused' (limit {ZERO_COUNT_MAX_SHARE:.0%}), so only unreachable tokens form the reference set"
            )
    ref -= special
    return np.array(sorted(ref), dtype=np.int64), info


def head_cosine_indicator(W: np.ndarray, reference: np.ndarray, *, first_pc: np.ndarray | None = None) -> np.ndarray:
    """(V,) cosine of each row, first principal component removed, to the mean reference row (same removal).

    With ``w' = w − (w·p₁)p₁`` and ``r = mean_{j∈ref} w'_j`` (so ``r ⟂ p₁``): ``w'·r = w·r`` and
    ``|w'|² = |w|² − (w·p₁)²``, so no PC-removed copy of W is made. NaN for non-finite rows.
    """
    W = np.asarray(W)
    norms = row_norms(W)
    valid = np.isfinite(norms)
    p1 = (spectrum(W, valid).components[:, 0] if first_pc is None else first_pc).astype(np.float32)  # (D,)
    ref = np.asarray(reference)
    ref = ref[valid[ref]]
    R = W[ref].astype(np.float32)
    r = (R - np.outer(R @ p1, p1)).mean(axis=0)  # (D,) mean unused row, PC 1 removed
    V = W.shape[0]
    proj = np.empty(V, dtype=np.float64)
    dots = np.empty(V, dtype=np.float64)
    for lo in range(0, V, 8192):
        B = np.asarray(W[lo : lo + 8192], dtype=np.float32)
        proj[lo : lo + 8192] = B @ p1
        dots[lo : lo + 8192] = B @ r
    resid = np.sqrt(np.clip(norms**2 - proj**2, 0, None)) * np.linalg.norm(r)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dots / np.where(resid > 0, resid, np.nan)
    cos[~valid] = np.nan
    return cos


def head_cosine_indicator_reference(W: np.ndarray, reference: Sequence[int]) -> np.ndarray:
    """The slow definition with numpy's SVD for the first PC (row by row cosine)."""
    W = np.asarray(W, dtype=np.float64)
    Wc = W - W.mean(axis=0)
    p1 = np.linalg.svd(Wc, full_matrices=False)[2][0]
    Wr = np.array([w - (w @ p1) * p1 for w in W])
    r = np.mean([Wr[i] for i in reference], axis=0)
    return np.array([(w @ r) / (np.linalg.norm(w) * np.linalg.norm(r)) for w in Wr])


def undertrained_summary(
    source,
    *,
    counts: np.ndarray | None = None,
    top: int = 30,
    verify: bool = False,
    progress: bool = True,
    input_first_pc: np.ndarray | None = None,
    input_norms: np.ndarray | None = None,
) -> dict:
    """Indicators, reference set and ranked candidates for an :class:`EmbeddingSource`.

    ``input_first_pc``/``input_norms`` reuse what geometry already computed for the input matrix.
    """
    V = source.shape[0]
    tokens = source.vocab.tokens
    special = source.vocab.special_ids
    ref, info = reference_set(source.tokenizer, counts=counts, V=V, special_ids=special)
    indicators: dict[str, np.ndarray] = {}
    notes = [info["note"]] if "note" in info else []
    head = source.output if source.output is not None else source.input
    head_name = "head" if source.output is not None else "input"
    if ref.size >= 1:
        pc = input_first_pc if head is source.input else None
        indicators[f"{head_name}_cosine_to_unused"] = head_cosine_indicator(head, ref, first_pc=pc)
    else:
        notes.append(
            "no reference set of unused tokens was found "
            + (
                "(every token is reachable and no corpus counts were given)"
                if source.tokenizer is not None
                else "(no tokenizer to test reachability and no --corpus)"
            )
            + "; only the input-norm indicator is used"
        )
    if not source.tied:
        indicators["input_norm"] = input_norms if input_norms is not None else row_norms(source.input)
    # main indicator: the head cosine when there is a reference set (high = suspicious), else low input norm
    if indicators:
        main = next(iter(indicators))
        score = indicators[main] if main != "input_norm" else -indicators[main]
    else:
        main, score = None, np.full(V, np.nan)
    cand: list[dict] = []
    threshold = None
    if main is not None:
        ok = np.isfinite(score) & ~np.isin(np.arange(V), list(special))
        if ok.any():
            threshold = float(np.percentile(score[ok], 100 - CANDIDATE_PERCENTILE))
            order = np.flatnonzero(ok)[np.argsort(-score[ok], kind="stable")]
            refset = set(ref.tolist())
            for i in order[:top]:
                row = {"id": int(i), "token": tokens[i]}
                for name, vals in indicators.items():
                    row[name] = float(vals[i])
                row["in_reference_set"] = int(i) in refset
                if counts is not None:
                    row["count"] = int(counts[i])
                cand.append(row)
    n_cand = int(np.sum(score >= threshold)) if threshold is not None else 0
    out = {
        "indicators": list(indicators),
        "main_indicator": main,
        "reference_size": int(ref.size),
        "reference_examples": [tokens[i] for i in ref[:20]],
        "reference_info": info,
        "candidate_threshold": threshold,
        "candidate_percentile": CANDIDATE_PERCENTILE,
        "n_candidates": n_cand,
        "candidates": cand,
        "notes": notes,
        "_indicators": indicators,
    }
    if verify and source.model_loader is not None and cand:
        out["verification"] = verify_repetition(
            source, [c["id"] for c in cand[: min(len(cand), 20)]], progress=progress
        )
    return out


def verify_repetition(source, ids: Sequence[int], *, repeats: int = 4, progress: bool = True) -> list[dict]:
    """Max probability the causal LM gives to repeating each token ``t`` in ``... t␣t␣t␣`` (Magikarp's check).

    A well-trained token is copied with high probability after a few repeats; a glitch token is not
    (Magikarp calls max prob < 0.01 verified under-trained). Needs a source whose ``model_loader`` runs a causal LM.
    """
    import torch

    model = source.model_loader()
    model.eval()
    tok = source.tokenizer
    sep = tok.encode(" ")[:1] if tok is not None and tok.encode(" ") else []
    out = []
    it = ids
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(ids, desc="verify (repeat test)", leave=False)
    with torch.no_grad():
        for t in it:
            seq = ([t] + sep) * repeats
            x = torch.tensor([seq], dtype=torch.long)
            logits = model(x).logits[0].float()  # (T, V)
            probs = torch.softmax(logits, dim=-1)
            # positions whose next token is t: after each separator (or each t when there is none)
            step = len(sep) + 1
            pos = [p for p in range(step - 1, len(seq) - 1, step)]
            p_max = float(max(probs[p, t].item() for p in pos)) if pos else float("nan")
            out.append({"id": int(t), "token": source.vocab.token(int(t)), "max_prob": p_max, "verified": p_max < 0.01})
    return out
