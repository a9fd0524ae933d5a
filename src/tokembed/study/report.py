"""The study's report: ``report.html`` with its plots, and recommendations computed from the rows.

Unlike :mod:`tokembed.report` (generic HTML primitives) this module knows what a study row
means: it draws the Pareto plot of bits per byte vs parameters, reliability diagrams (tied
vs untied), training curves in bits per byte vs bytes seen, and the per-frequency-band
plots, and it derives the recommendations — every one computed from the numbers and
pointing at the rows (``#run-<id>`` anchors) that support it.

Noise: with several seeds, the noise of a bits-per-byte value is the pooled standard
deviation over seeds of runs that differ only in their seed; a difference smaller than
``2·σ·√2`` (two standard deviations of a difference of two runs) is reported as within
noise. With one seed there is no estimate, and the report says so.

>>> rows = [_r("a", "byte", "untied", 1.50, 1000), _r("b", "byte", "tied", 1.40, 800), _r("c", "bpe", "tied", 1.45, 600)]
>>> [r["id"] for r in pareto_front(rows)]
['c', 'b']
"""

from __future__ import annotations

import html
import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import report as R
from ..artifacts import atomic_write_text
from ..metrics import language_budget, language_trades
from .plots import band_plot, curves_plot, pareto_plot, reliability_plot
from .plots import finite as _ok
from .timing import phase_table

__all__ = ["pareto_front", "noise_estimate", "recommendations", "build_report", "write_report"]

#: Columns shown in the report's results table (results.csv has more).
TABLE_COLUMNS = [
    "id", "embedding_params", "total_params", "bits_per_byte",
    "perplexity", "ece", "train_tokens_per_s", "steps", "bytes_seen", "seconds",
]
TABLE_LABELS = {
    "vocab_size": "V", "embedding_params": "emb. params", "total_params": "total params", "bits_per_byte": "bits/byte",
    "perplexity": "ppl/token", "ece": "ECE", "train_tokens_per_s": "train tok/s", "bytes_seen": "bytes seen",
    "seconds": "train s",
}


def _r(i, tok, design, bpb, params, seed=0):  # tiny row factory for doctests
    return {"id": i, "tokenizer": tok, "design": design, "bits_per_byte": bpb, "total_params": params, "seed": seed,
            "vocab_size": 259, "d_model": 16}


def pareto_front(rows: Sequence[Mapping[str, Any]], *, x: str = "total_params", y: str = "bits_per_byte") -> list[Mapping[str, Any]]:
    """Rows not dominated in (fewer ``x``, lower ``y``), sorted by ``x``: the best bpb for each parameter budget."""
    good = sorted((r for r in rows if _ok(r.get(y)) and _ok(r.get(x))), key=lambda r: (r[x], r[y]))
    front, best = [], math.inf
    for r in good:
        if r[y] < best:
            front.append(r)
            best = r[y]
    return front


def _config_key(r: Mapping[str, Any]) -> tuple:
    return (r.get("tokenizer"), r.get("design"), r.get("vocab_size"), r.get("d_model"))


def noise_estimate(rows: Sequence[Mapping[str, Any]]) -> float | None:
    """Pooled standard deviation of bits per byte across seeds (None with a single seed).

    >>> noise_estimate([_r("a", "x", "t", 1.0, 1, 0), _r("b", "x", "t", 1.2, 1, 1)])
    0.1414...
    >>> noise_estimate([_r("a", "x", "t", 1.0, 1)]) is None
    True
    """
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        if _ok(r.get("bits_per_byte")):
            groups[_config_key(r)].append(float(r["bits_per_byte"]))
    ss, dof = 0.0, 0
    for vals in groups.values():
        if len(vals) > 1:
            m = statistics.fmean(vals)
            ss += sum((v - m) ** 2 for v in vals)
            dof += len(vals) - 1
    return math.sqrt(ss / dof) if dof else None


def _mean_by_config(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (tokenizer, design, V, D): mean bpb over seeds and the ids it averages."""
    groups: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        if _ok(r.get("bits_per_byte")):
            groups[_config_key(r)].append(r)
    out = []
    for (tok, design, V, D), rs in groups.items():
        out.append({
            "tokenizer": tok, "design": design, "vocab_size": V, "d_model": D,
            "bits_per_byte": statistics.fmean(float(r["bits_per_byte"]) for r in rs),
            "total_params": rs[0].get("total_params"), "embedding_params": rs[0].get("embedding_params"),
            "ids": [r["id"] for r in rs],
        })
    return out


def _link(run_id: str) -> str:
    return f'<a href="#run-{html.escape(run_id)}">{html.escape(run_id)}</a>'


def _links(ids: Sequence[str]) -> str:
    return ", ".join(_link(i) for i in ids)


class _Judge:
    """Words for a bpb difference: 'within noise' or 'larger than noise', given the seed noise σ.

    A difference of two means over ``n1`` and ``n2`` runs has standard deviation σ·√(1/n1 + 1/n2);
    it is called within noise when ``|Δ| ≤ 2·σ·√(1/n1 + 1/n2)`` (2·√2·σ for two single runs; for the
    mean of n paired differences, n1 = n2 = n).
    """

    def __init__(self, sigma: float | None):
        self.sigma = sigma
        self.threshold = None if sigma is None else 2 * sigma * math.sqrt(2)  # two single runs

    def limit(self, n1: int = 1, n2: int = 1) -> float | None:
        return None if self.sigma is None else 2 * self.sigma * math.sqrt(1 / n1 + 1 / n2)

    def within(self, delta: float, n1: int = 1, n2: int = 1) -> bool:
        lim = self.limit(n1, n2)
        return lim is not None and abs(delta) <= lim

    def note(self, delta: float, n1: int = 1, n2: int = 1) -> str:
        lim = self.limit(n1, n2)
        if lim is None:
            return " (single seed: not tested against noise)"
        how = "2·√2·σ" if (n1, n2) == (1, 1) else f"2σ·√(1/{n1}+1/{n2})"
        if abs(delta) <= lim:
            return f" — within noise (|Δ| ≤ {how} = {lim:.4f} bpb)"
        return f" — larger than noise ({how} = {lim:.4f} bpb)"


def _params_change(mean_saved: float, found) -> str:
    base = statistics.fmean(a["total_params"] for a, _ in found)
    word = "saving" if mean_saved >= 0 else "adding"
    return f", {word} {abs(mean_saved):,.0f} parameters on average ({100 * abs(mean_saved) / base:.1f}% of the baseline)"


def _pct(a: float, b: float) -> str:
    return f"{100 * (a - b) / b:+.1f}%" if b else "n/a"


def recommendations(rows: Sequence[Mapping[str, Any]], *, seeds: Sequence[int] = (0,)) -> list[dict[str, Any]]:
    """Recommendations computed from the rows: ``[{"title", "html", "ids"}]``, each citing its rows.

    >>> rows = [_r("byte-untied", "byte", "untied", 1.50, 1000), _r("byte-tied", "byte", "tied", 1.40, 800)]
    >>> [rec["title"] for rec in recommendations(rows)]
    ['Lowest bits per byte', 'Pareto-optimal runs', 'Tokenizer', 'Tying input and output embeddings', 'Noise']
    >>> recommendations(rows)[3]["ids"]
    ['byte-untied', 'byte-tied']
    """
    rows = [r for r in rows if _ok(r.get("bits_per_byte"))]
    if not rows:
        return [{"title": "No results", "html": "No run produced a finite bits-per-byte value; nothing to recommend.", "ids": []}]
    sigma = noise_estimate(rows)
    judge = _Judge(sigma)
    means = _mean_by_config(rows)
    lossy = {r["tokenizer"] for r in rows if r.get("lossless") is False}
    tok_rec, by_tok = _rec_tokenizer(means, lossy, judge)
    recs = [_rec_best(rows, means, lossy, judge), _rec_pareto(rows, judge), tok_rec]
    recs += _rec_pairs(rows, judge)
    recs += _rec_vocab_sizes(means, by_tok, judge)
    recs += _rec_speed(rows)
    recs.append(_rec_noise(sigma, judge, seeds))
    return recs


def _rec_best(rows, means, lossy: set[str], judge: _Judge) -> dict[str, Any]:
    """The best configuration overall, how far the runner-up is, and the best lossless one."""
    # 1. The best configuration overall, and how far the runner-up is.
    ranked = sorted(means, key=lambda m: m["bits_per_byte"])
    best = ranked[0]
    text = (f"<b>{html.escape(best['tokenizer'])}</b> tokenizer with the <b>{html.escape(best['design'])}</b> design "
            f"(V={best['vocab_size']:,}) has the lowest bits per byte, {best['bits_per_byte']:.4f} ({_links(best['ids'])}).")
    ids = list(best["ids"])
    if len(ranked) > 1:
        second = ranked[1]
        d = second["bits_per_byte"] - best["bits_per_byte"]
        text += (f" The runner-up, {html.escape(second['tokenizer'])}/{html.escape(second['design'])} "
                 f"({_links(second['ids'])}), is {d:.4f} bpb worse{judge.note(d, len(best['ids']), len(second['ids']))}.")
        ids += second["ids"]
    if best["tokenizer"] in lossy:
        clean = [m for m in ranked if m["tokenizer"] not in lossy]
        text += (f" Caveat: {html.escape(best['tokenizer'])} is lossy (it normalizes or drops characters, so it predicts "
                 f"less than every byte)")
        if clean:
            text += (f"; the best lossless run is {html.escape(clean[0]['tokenizer'])}/{html.escape(clean[0]['design'])} "
                     f"at {clean[0]['bits_per_byte']:.4f} bpb ({_links(clean[0]['ids'])})")
            ids += clean[0]["ids"]
        text += "."
    return {"title": "Lowest bits per byte", "html": text, "ids": ids}



def _rec_pareto(rows, judge: _Judge) -> dict[str, Any]:
    """The Pareto front: what to pick under a parameter budget."""
    # 2. Pareto front: what to pick under a parameter budget.
    front = pareto_front(rows)
    items = "".join(
        f"<li>≤ {r['total_params']:,} parameters: {_link(r['id'])} — {r['bits_per_byte']:.4f} bpb</li>" for r in front
    )
    smallest, largest = front[0], front[-1]
    text = (f"{len(front)} of {len(rows)} runs are Pareto-optimal (no other run has both fewer parameters and lower "
            f"bits per byte); under a parameter budget, pick the last of these that fits:<ul>{items}</ul>")
    if len(front) > 1:
        d = smallest["bits_per_byte"] - largest["bits_per_byte"]
        text += (f"Going from the smallest ({smallest['total_params']:,}) to the largest frontier run "
                 f"({largest['total_params']:,} parameters, {largest['total_params'] / smallest['total_params']:.1f}×) "
                 f"buys {d:.4f} bpb{judge.note(d)}.")
    return {"title": "Pareto-optimal runs", "html": text, "ids": [r["id"] for r in front]}



def _rec_tokenizer(means, lossy: set[str], judge: _Judge) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The best design of each tokenizer kind, ranked (and that best per kind)."""
    # 3. Tokenizer: the best design of each kind, ranked.
    by_tok: dict[str, dict[str, Any]] = {}
    for m in means:
        if m["tokenizer"] not in by_tok or m["bits_per_byte"] < by_tok[m["tokenizer"]]["bits_per_byte"]:
            by_tok[m["tokenizer"]] = m
    order = sorted(by_tok.values(), key=lambda m: m["bits_per_byte"])
    lis = "".join(
        f"<li>{html.escape(m['tokenizer'])}{' (lossy)' if m['tokenizer'] in lossy else ''} "
        f"(V={m['vocab_size']:,}): {m['bits_per_byte']:.4f} bpb with "
        f"{html.escape(m['design'])} ({_links(m['ids'])})</li>" for m in order
    )
    text = f"Best run of each tokenizer kind, best first:<ol>{lis}</ol>"
    if len(order) > 1:
        d = order[1]["bits_per_byte"] - order[0]["bits_per_byte"]
        text += (f"Under this byte budget <b>{html.escape(order[0]['tokenizer'])}</b> leads "
                 f"{html.escape(order[1]['tokenizer'])} by {d:.4f} bpb{judge.note(d, len(order[0]['ids']), len(order[1]['ids']))}.")
    return {"title": "Tokenizer", "html": text, "ids": [i for m in order for i in m["ids"]]}, by_tok



def _rec_pairs(rows, judge: _Judge) -> list[dict[str, Any]]:
    """Paired design comparisons within each tokenizer (same V, D, seed)."""
    recs: list[dict[str, Any]] = []
    # 4-7. Paired design comparisons within each tokenizer (same V, D, seed).
    pairs = [
        ("Tying input and output embeddings", "untied", "tied", "tying (z = E h instead of z = Wᵀh + b)"),
        ("A bias on the tied head", "tied", "tied_bias", "adding a bias b to the tied head"),
        ("Factorized embedding", "tied", "factorized", "factorizing E ≈ A·B"),
        ("Adaptive input and softmax", "untied", "adaptive", "adaptive input + adaptive softmax"),
    ]
    index = {(r["tokenizer"], r["design"], r.get("vocab_size"), r.get("seed")): r for r in rows}
    for title, base, alt, what in pairs:
        found = []
        for (tok, design, V, seed), r in index.items():
            if design == alt and (tok, base, V, seed) in index:
                found.append((index[(tok, base, V, seed)], r))
        if not found:
            continue
        deltas = [b["bits_per_byte"] - a["bits_per_byte"] for a, b in found]
        saved = [a["total_params"] - b["total_params"] for a, b in found if _ok(a.get("total_params")) and _ok(b.get("total_params"))]
        better = sum(d < 0 for d in deltas)
        mean_d = statistics.fmean(deltas)
        lis = "".join(
            f"<li>{html.escape(a['tokenizer'])}: {a['bits_per_byte']:.4f} → {b['bits_per_byte']:.4f} bpb "
            f"(Δ {b['bits_per_byte'] - a['bits_per_byte']:+.4f}, params {a['total_params']:,} → {b['total_params']:,}, "
            f"{_pct(b['total_params'], a['total_params'])}; {_link(a['id'])} vs {_link(b['id'])})</li>"
            for a, b in found
        )
        toks = len({a["tokenizer"] for a, _ in found})
        scope = f"{len(found)} paired runs ({toks} tokenizer{'s' if toks > 1 else ''})"
        if judge.threshold is not None and judge.within(mean_d, len(found), len(found)):
            verdict = f"{what} made no difference beyond noise at this scale, over {scope}"
        elif better == len(found):
            verdict = f"{what} <b>lowered</b> bits per byte in every one of {scope}"
        elif better == 0:
            verdict = f"{what} <b>raised</b> bits per byte in every one of {scope}"
        else:
            verdict = f"{what} lowered bits per byte in {better} of {scope} (mixed)"
        n = len(found)
        text = (f"{verdict}: mean Δ {mean_d:+.4f} bpb over {n} pair{'s' if n > 1 else ''}{judge.note(mean_d, n, n)}"
                + (_params_change(statistics.fmean(saved), found) if saved else "")
                + f" (paired {base} → {alt}, same tokenizer, V, D and seed).<ul>{lis}</ul>")
        recs.append({"title": title, "html": text, "ids": [i for a, b in found for i in (a["id"], b["id"])]})

    return recs


def _rec_vocab_sizes(means, by_tok, judge: _Judge) -> list[dict[str, Any]]:
    """When the grid holds several V of one kind: the best design per V, with its parameters."""
    recs: list[dict[str, Any]] = []
    # Vocabulary size, when the grid holds several V of one kind: the best design per V, with its parameters.
    multi_v = {t for t in by_tok if len({m["vocab_size"] for m in means if m["tokenizer"] == t}) > 1}
    for t in sorted(multi_v):
        best_per_v: dict[Any, dict[str, Any]] = {}
        for m in means:
            if m["tokenizer"] == t and (m["vocab_size"] not in best_per_v
                                        or m["bits_per_byte"] < best_per_v[m["vocab_size"]]["bits_per_byte"]):
                best_per_v[m["vocab_size"]] = m
        ms = sorted(best_per_v.values(), key=lambda m: m["bits_per_byte"])
        lis = "".join(f"<li>V={m['vocab_size']:,}: {m['bits_per_byte']:.4f} bpb with {html.escape(m['design'])}, "
                      f"{m['total_params']:,} parameters ({_links(m['ids'])})</li>" for m in ms)
        d = ms[1]["bits_per_byte"] - ms[0]["bits_per_byte"]
        recs.append({
            "title": f"Vocabulary size ({t})",
            "html": (f"For {html.escape(t)}, V={ms[0]['vocab_size']:,} gives the lowest bits per byte, "
                     f"{d:.4f} bpb ahead of V={ms[1]['vocab_size']:,}{judge.note(d, len(ms[0]['ids']), len(ms[1]['ids']))}:<ol>{lis}</ol>"),
            "ids": [i for m in ms for i in m["ids"]],
        })

    return recs


def _rec_speed(rows) -> list[dict[str, Any]]:
    """Throughput in text bytes per second, the fair speed across tokenizers."""
    recs: list[dict[str, Any]] = []
    # Throughput: bytes of text per second is the fair speed across tokenizers.
    speed = [r for r in rows if _ok(r.get("train_bytes_per_s"))]
    if len(speed) > 1:
        fast = max(speed, key=lambda r: r["train_bytes_per_s"])
        slow = min(speed, key=lambda r: r["train_bytes_per_s"])
        recs.append({
            "title": "Training speed",
            "html": (f"Fastest in text bytes per second: {_link(fast['id'])} ({fast['train_bytes_per_s']:,.0f} B/s); "
                     f"slowest: {_link(slow['id'])} ({slow['train_bytes_per_s']:,.0f} B/s), "
                     f"{fast['train_bytes_per_s'] / slow['train_bytes_per_s']:.1f}× apart. Timings come from a shared "
                     f"machine and are noisy; bits per byte do not depend on them."),
            "ids": [fast["id"], slow["id"]],
        })

    return recs


def _rec_noise(sigma: float | None, judge: _Judge, seeds: Sequence[int]) -> dict[str, Any]:
    n_seeds = len(set(seeds))
    if sigma is None:
        noise = (f"Every configuration was run with a single seed ({n_seeds} seed configured), so no noise estimate "
                 f"exists; differences of a few thousandths of a bit per byte may be seed noise. Rerun with "
                 f"<code>seeds = [0, 1, 2]</code> to measure it.")
    else:
        noise = (f"Seed noise: pooled σ = {sigma:.4f} bpb over {n_seeds} seeds; differences below "
                 f"{judge.threshold:.4f} bpb (2·√2·σ) between two single runs, or below 2σ·√(1/n₁+1/n₂) between "
                 f"means over n₁ and n₂ runs, are reported as within noise.")
    return {"title": "Noise", "html": noise, "ids": []}


def _checks(rows, config) -> list[str]:
    """Equal-budget and equal-architecture checks, stated with the numbers."""
    parts = []
    if rows:
        seen = [r["bytes_seen"] for r in rows]
        over = [r for r in rows if not (r["budget_bytes"] <= r["bytes_seen"]
                                        < r["budget_bytes"] + r["bytes_per_token"] * config.batch_size * config.seq_len + 1)]
        msg = (f"Equal budget: {config.budget_bytes:,} text bytes per run; bytes seen range from {min(seen):,} to "
               f"{max(seen):,} — each run stops at the first step that reaches the budget, steps = ceil(budget / "
               f"(batch {config.batch_size} × seq {config.seq_len} × bytes per token of its tokenizer)).")
        parts.append(R.paragraph(msg) if not over else
                     R.warning_box(msg + f" Outside [budget, budget + one batch): {', '.join(r['id'] for r in over)}."))
        rest = {r["non_embedding_params"] for r in rows}
        if len(rest) == 1:
            parts.append(R.paragraph(f"Every run has the same non-embedding architecture: {rest.pop():,} parameters outside "
                                     f"the embedding and head (D={config.d_model}, {config.n_layers} layers, "
                                     f"{config.n_heads} heads)."))
        else:
            parts.append(R.warning_box(f"Non-embedding parameter counts differ across runs: {sorted(rest)}."))
    return parts


def build_report(result) -> str:
    """The HTML of ``report.html`` for a :class:`~tokembed.study.StudyResult`."""
    rows = result.rows
    details = result.details
    config = result.config
    front = pareto_front(rows)
    front_ids = {r["id"] for r in front}
    corpus = result.corpus
    sub = (f"{len(rows)} runs on {corpus.get('bytes', 0):,} bytes of text"
           f"{' (a document sample of ' + format(corpus.get('sampled_from_bytes', 0), ',') + ' bytes)' if corpus.get('sampled') else ''}; "
           f"D={config.d_model}, {config.n_layers} layers, seq {config.seq_len}, batch {config.batch_size}, "
           f"seeds {config.seeds}; {result.seconds:.0f} s.")
    sections = []
    skipped = [R.warning_box(s["reason"]) for s in result.skipped]
    skipped += [R.warning_box(n) for n in getattr(result, "notes", [])]
    table_rows = [{c: r.get(c) for c in TABLE_COLUMNS} for r in rows]
    for t in table_rows:  # whole numbers read better than 4 significant digits here
        for c in ("train_tokens_per_s",):
            if _ok(t.get(c)):
                t[c] = int(round(t[c]))
        if _ok(t.get("seconds")):
            t["seconds"] = round(float(t["seconds"]), 1)
        # fixed decimals, so a column lines up and 4.38 is not shown next to 4.148 (4 significant digits)
        for c, spec in (("bits_per_byte", ".4f"), ("ece", ".4f"), ("perplexity", ".1f")):
            if _ok(t.get(c)):
                t[c] = format(float(t[c]), spec)
    sections.append(R.section(
        "Results",
        R.paragraph("One row per run; bits per byte on the validation split is the comparable metric (perplexity is per "
                    "token and differs between tokenizers). Pareto-optimal rows are highlighted. Full columns in "
                    "results.csv / results.json."),
        R.table(table_rows, TABLE_COLUMNS, highlight=[i for i, r in enumerate(rows) if r["id"] in front_ids],
                row_ids=[f"run-{r['id']}" for r in rows], labels=TABLE_LABELS),
        *_checks(rows, config),
        *skipped,
    ))
    if rows:
        sections.append(R.section("Bits per byte vs parameters (Pareto)", pareto_plot(rows, front)))
        for title, fn in (("Reliability: tied vs untied", reliability_plot), ("Training curves", curves_plot),
                          ("Frequency bands", band_plot)):
            img = fn(rows, details)
            sections.append(R.section(title, img if img else R.paragraph("No data for this plot in these runs.")))
    if any("languages" in d for d in details.values()):
        sections.append(_languages_section(rows, details))
    if getattr(result, "timing", None):
        sections.append(_timing_section(result.timing))
    recs = recommendations(rows, seeds=config.seeds)
    items = "".join(f"<li><b>{html.escape(r['title'])}.</b> {r['html']}</li>" for r in recs)
    sections.append(R.section("Recommendations", f"<ol class=recs>{items}</ol>",
                              R.paragraph("Computed from the rows above; every claim links to the runs it rests on.")))
    return R.html_page("tokembed study", sections, subtitle=sub)


def language_means(rows, details) -> dict[tuple, dict[str, Any]]:
    """(tokenizer, design, V, D) -> {"ids", "bpb": {lang: mean over seeds}, "runs": {lang: [bpb per seed]}, "budget"}.

    >>> rows = [_r("a", "byte", "tied", 1.5, 10, 0), _r("b", "byte", "tied", 1.7, 10, 1)]
    >>> det = {"a": {"languages": {"en": {"bits_per_byte": 1.0}}}, "b": {"languages": {"en": {"bits_per_byte": 1.2}}}}
    >>> round(language_means(rows, det)[("byte", "tied", 259, 16)]["bpb"]["en"], 3)
    1.1
    """
    out: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        langs = details.get(r["id"], {}).get("languages")
        if not langs:
            continue
        m = out.setdefault(_config_key(r), {"ids": [], "runs": defaultdict(list), "budget": {}})
        m["ids"].append(r["id"])
        for lang, v in langs.items():
            if _ok(v.get("bits_per_byte")):
                m["runs"][lang].append(float(v["bits_per_byte"]))
            m["budget"].setdefault(lang, v)
    for m in out.values():
        m["bpb"] = {lang: statistics.fmean(v) for lang, v in m["runs"].items() if v}
    return out


def _language_noise(means) -> _Judge:
    """The noise test of the report applied per language: σ pooled over seeds of every (config, language)."""
    ss, dof = 0.0, 0
    for m in means.values():
        for vals in m["runs"].values():
            if len(vals) > 1:
                mu = statistics.fmean(vals)
                ss += sum((v - mu) ** 2 for v in vals)
                dof += len(vals) - 1
    return _Judge(math.sqrt(ss / dof) if dof else None)


def _languages_section(rows, details) -> str:
    """Bits per byte per language and design, each language's budget, the trades, recommendations per language."""
    means = language_means(rows, details)
    langs = list(dict.fromkeys(lang for m in means.values() for lang in m["budget"]))
    judge = _language_noise(means)
    name = {k: f"{k[0]}/{k[1]} V={k[2]}" for k in means}
    table = [{"config": name[k], **{f"{lang} bpb": format(m["bpb"][lang], ".4f") if lang in m["bpb"] else "" for lang in langs}}
             for k, m in means.items()]
    budget = []
    for k, m in means.items():
        if k[1] != next(iter(means))[1]:
            continue  # the budget depends on the tokenizer only: one row per tokenizer
        shares = language_budget(n_bytes={lg: m["budget"][lg].get("train_bytes", 0) for lg in m["budget"]},
                                 n_tokens={lg: m["budget"][lg].get("train_tokens", 0) for lg in m["budget"]})
        for lang in langs:
            b, sh = m["budget"].get(lang, {}), shares.get(lang, {})
            budget.append({"tokenizer": f"{k[0]} V={k[2]}", "language": lang, "train bytes": b.get("train_bytes"),
                           "train tokens": b.get("train_tokens"), "bytes/token": b.get("bytes_per_token"),
                           "byte share": sh.get("byte_share"), "token share": sh.get("token_share"),
                           "bytes seen per run": b.get("seen_bytes"), "tokens seen per run": b.get("seen_tokens")})
    recs, trades = [], []
    for lang in langs:
        ranked = sorted((m["bpb"][lang], k) for k, m in means.items() if lang in m["bpb"])
        if not ranked:
            recs.append(f"<li><b>{html.escape(lang)}</b>: no validation document, no score.</li>")
            continue
        (b0, k0), text = ranked[0], ""
        if len(ranked) > 1:
            d = ranked[1][0] - b0
            text = (f"; the runner-up {html.escape(name[ranked[1][1]])} is {d:.4f} bpb worse"
                    f"{judge.note(d, len(means[k0]['ids']), len(means[ranked[1][1]]['ids']))}")
        recs.append(f"<li><b>{html.escape(lang)}</b>: {html.escape(name[k0])} has the lowest bits per byte, "
                    f"{b0:.4f} ({_links(means[k0]['ids'])}){text}.</li>")
    best = min(means, key=lambda k: statistics.fmean(means[k]["bpb"].values()) if means[k]["bpb"] else math.inf)
    n = max(len(m["ids"]) for m in means.values())  # seeds per configuration
    noise = judge.limit(n, n) or 0.0  # single seed: every difference counts
    traded = language_trades({name[k]: m["bpb"] for k, m in means.items()}, baseline=name[best], noise=noise)
    for k, m in means.items():
        t = traded.get(name[k])
        if t and t["better"] and t["worse"]:
            deltas = ", ".join(f"{lg} {m['bpb'][lg] - means[best]['bpb'][lg]:+.4f}" for lg in langs
                               if lg in m["bpb"] and lg in means[best]["bpb"])
            trades.append(f"<li>{html.escape(name[k])} vs {html.escape(name[best])}: better for "
                          f"{', '.join(t['better'])}, worse for {', '.join(t['worse'])} ({deltas} bpb)</li>")
    trade_text = (f"<ul>{''.join(trades)}</ul>" if trades else
                  f"<p>No configuration trades one language against another beyond noise against the best on average, "
                  f"{html.escape(name[best])}.</p>")
    return R.section(
        "Languages",
        R.paragraph("Bits per byte on each language's own validation documents (mean over seeds); every tokenizer "
                    "is one vocabulary shared by all languages."),
        R.table(table),
        R.paragraph("Training budget per language: what each tokenizer's train shard holds, and what one run read "
                    "(its target tokens, counted by language; bytes from that language's bytes per token)."),
        R.table(budget),
        "<h3>Trades between languages</h3>"
        f"<p>Configurations that are better than {html.escape(name[best])} for some languages and worse for "
        f"others, beyond noise{'' if judge.sigma is not None else ' (single seed: any difference counts)'}:</p>"
        + trade_text,
        f"<h3>Recommendations per language</h3><ol>{''.join(recs)}</ol>",
    )


def _timing_section(timing: Mapping[str, Any]) -> str:
    """Where the study's time went: the phase table of :mod:`tokembed.study.timing`, explained."""
    share = timing.get("non_training_cpu_share")
    text = (f"Wall and CPU seconds per phase. Phases of a run (load, setup + checkpoint, train steps, eval) are "
            f"summed over runs, which ran in {timing.get('workers', 1)} process(es) at once, so their wall seconds "
            f"can add up to more than the study's. CPU seconds do not depend on other jobs sharing the machine.")
    if share is not None:
        text += (f" {100 * share:.1f}% of the CPU went to something other than training steps "
                 f"({timing.get('train_cpu_s', 0):.1f} of {timing.get('total_cpu_s', 0):.1f} CPU s were training steps).")
    return R.section("Where the time went", R.paragraph(text), R.table(phase_table(timing)))


def write_report(result) -> Path:
    """Write ``report.html`` into the study folder and return its path."""
    return atomic_write_text(Path(result.out_dir) / "report.html", build_report(result))
