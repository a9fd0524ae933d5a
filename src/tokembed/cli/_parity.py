"""The language columns of ``tokembed tokenizer compare``: premium, parity, fallback, per-script coverage, α sweep.

The numbers come from :mod:`tokembed.tokenizers.parity`; this module prints them. The flags
(``--reference``, ``--parallel``, ``--alpha``, ``--kind``, ``--train-vocab-size``, ``--option``)
are declared with compare's others in :mod:`tokembed.cli.tokenizer`.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError
from ..tokenizers.parity import alpha_sweep, compare_languages, parse_alphas
from ..tokenizers.stats import STAT_COLUMNS
from ._common import fmt_number, print_json

__all__ = ["run_parity"]


def run_parity(args: argparse.Namespace, toks: dict, corpus: Any, *, options: dict[str, Any]) -> int:
    """Print (or ``--json``) one row per tokenizer and language; ``options`` are the sweep's ``--option`` values."""
    toks = dict(toks)
    if args.alpha:
        if not args.kind:
            raise ConfigError(
                "--alpha trains one tokenizer per value: pass --kind (and --train-vocab-size), e.g. --kind unigram"
            )
        toks.update(alpha_sweep(args.kind, corpus, args.train_vocab_size, parse_alphas(args.alpha), **options))
    elif args.kind or args.option or args.train_vocab_size:
        raise ConfigError("--kind, --train-vocab-size and --option configure the --alpha sweep; pass --alpha too")
    if not toks:
        raise ConfigError("nothing to compare: pass tokenizer PATHs, or --alpha with --kind")
    rows = compare_languages(toks, corpus, reference=args.reference, parallel=args.parallel, max_lines=args.max_lines)
    if args.json:
        print_json([r.to_dict() for r in rows])
        return 0
    header = ["tokenizer", "lang", "kind", "vocab", *STAT_COLUMNS, "premium", "parity", "fallback", "coverage"]
    table = [header]
    for r in rows:
        s = r.stats
        cov = " ".join(f"{sc}:{v:.3f}" for sc, v in list(r.coverage.items())[:3]) or "-"
        nums = [getattr(s, k) for k in STAT_COLUMNS] + [r.premium, r.parity, r.fallback]
        lang = s.language + ("*" if s.language == r.reference else "")
        table.append([s.name, lang, toks[s.name].kind, str(s.vocab_size), *map(fmt_number, nums), cov])
    widths = [max(len(row[j]) for row in table) for j in range(len(header))]
    for row in table:
        cells = (c.ljust(w) if j < 3 or j == len(header) - 1 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths)))
        print("  ".join(cells).rstrip())
    if args.alpha:  # how each language's fertility moves with α
        sweep = [r.stats for r in rows if "@alpha=" in r.stats.name]
        for lang in dict.fromkeys(s.language for s in sweep):
            moves = "  ".join(
                f"α={s.name.rpartition('=')[2]}: {fmt_number(s.fertility)}" for s in sweep if s.language == lang
            )
            print(f"fertility of {lang} by alpha  {moves}")
    unit = rows[0].unit if rows else "byte"
    print(f"* reference language; premium = tokens per {unit}; parity = premium / the reference's; "
          "fallback = share of characters split into bytes or [UNK]; coverage = per script, the 3 largest")
    return 0

