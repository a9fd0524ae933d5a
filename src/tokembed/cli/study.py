"""``tokembed study``: the main job — compare tokenizer kinds × embedding designs under an equal budget."""

from __future__ import annotations

import argparse
import os
import sys

from ._common import add_corpus_args, corpus_from_args, print_json

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="train and compare tokenizer × embedding designs, write results.csv/json and report.html",
        description="Train one small Transformer LM per (tokenizer kind, embedding design, seed) on the same number of "
        "text bytes, evaluate bits per byte, and write results.csv, results.json and a self-contained report.html.",
    )
    add_corpus_args(p)
    p.add_argument("--config", metavar="FILE", help="study config (.toml or .yaml); keys are StudyConfig fields")
    p.add_argument("-o", "--output", default="study", metavar="DIR", help="output folder (default: ./study)")
    p.add_argument("--quick", action="store_true", help="the small preset: 3 tokenizers × 3 designs, about 2 minutes on 2 cores")
    p.add_argument("--json", action="store_true", help="print the results (rows, skipped cells, files) as JSON; the log goes to stderr")
    p.add_argument("--quiet", action="store_true", help="no progress log, no warnings (stderr carries only errors)")
    p.add_argument("--nproc", type=int, default=0, metavar="N",
                   help="spread the grid over N processes on this machine: re-runs this command under torchrun; "
                   "for several machines run torchrun yourself (docs/parallel.md)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..study import StudyConfig, run_study

    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:  # the shortcut: the same command under torchrun
        from ..training.distributed import launch

        return launch(args.nproc, args.argv)
    preset = "quick" if args.quick else None
    if args.config:
        config = StudyConfig.from_file(args.config, preset=preset)
    else:
        config = StudyConfig.from_name(preset or "default")
    if args.quiet:
        log = lambda msg: None  # noqa: E731
    else:
        log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if args.json else None
    result = run_study(config, corpus_from_args(args), args.output, log=log)
    if int(os.environ.get("RANK", "0")) != 0:  # a torchrun worker: rank 0 reports
        return 0
    if args.json:
        print_json({"out_dir": str(result.out_dir), "seconds": result.seconds, "rows": result.rows,
                    "skipped": result.skipped, "notes": result.notes,
                    "results": [str(result.out_dir / "results.csv"), str(result.out_dir / "results.json")],
                    "report": None if result.report is None else str(result.report)})
        return 0
    print(f"study done in {result.seconds:.0f}s: {len(result.rows)} runs, {len(result.skipped)} skipped")
    print(f"results: {result.out_dir / 'results.csv'}  {result.out_dir / 'results.json'}")
    print(f"report:  {result.report}")
    return 0

