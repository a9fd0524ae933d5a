"""FSDP on CPU: training tokens/s of ``tokembed train --nproc 2 parallel.fsdp=true`` against DDP (``--nproc 2``)
and one process, and the bytes of weights + AdamW moments each rank holds (from its checkpoint shards).

Same command line, global batch and steps as ``bench_distributed.py`` (d=64, 2 layers, B·T = 16·64, gloo, one torch
thread per process); tokens/s is the loop's own step timer on rank 0. Runs alternate (1, DDP, FSDP, 1, ...) so load
changes hit all three; medians with [min, max]. ``--quick``: 40 steps, 2 repeats (about 3 minutes here).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _common import write_results
from bench_distributed import TRAIN_OPTS, _corpus, _summary, _train

KINDS = {"1 process": (1, ()), "DDP, 2 ranks": (2, ()), "FSDP, 2 ranks": (2, ("parallel.fsdp=true",))}


def _state_bytes(ckpt: Path) -> dict:
    """Bytes of the weights and AdamW moments per rank (its model- and optim- shard files) and in all."""
    per_rank = {}
    for f in sorted(ckpt.glob("*-rank*-of-*.safetensors")):
        rank = f.name.split("-rank")[1][:5]
        per_rank[rank] = per_rank.get(rank, 0) + f.stat().st_size
    return {"per_rank": per_rank, "total": sum(per_rank.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    steps, repeats = (40, 2) if args.quick else (100, 4)
    tmp = Path(tempfile.mkdtemp(prefix="bench_fsdp_"))
    corpus = _corpus(tmp)
    tps = {k: [] for k in KINDS}
    for i in range(repeats):
        for k, (nproc, extra) in KINDS.items():
            tps[k].append(_train(corpus, tmp / f"{k[:4]}-{i}", nproc, steps, extra=extra))
            print(f"{k}: {tps[k][-1]:.0f} tokens/s", flush=True)
    state = _state_bytes(tmp / f"FSDP-{repeats - 1}" / "checkpoint")
    base = tps["1 process"]
    rows = [{"run": k, "tokens/s median": statistics.median(v),
             "ratio to 1 process": statistics.median([b / a for a, b in zip(base, v)]),
             "ratio min": min(b / a for a, b in zip(base, v)), "ratio max": max(b / a for a, b in zip(base, v))}
            for k, v in tps.items()]
    payload = {"steps": steps, "options": TRAIN_OPTS, "tokens_per_s": {k: _summary(v) for k, v in tps.items()},
               "fsdp_state_bytes": state}
    notes = (f"Weights + AdamW moments held per FSDP rank (its shard files): {state['per_rank']} bytes of "
             f"{state['total']} in all (DDP and 1 process hold all of it on every rank). FSDP all-gathers every "
             "block's weights before its forward and again before its backward, and reduce-scatters the gradients "
             "(up to 3 collectives per unit per step, plus one small all-reduce for the embedding's finiteness check; DDP: 1 all-reduce per gradient bucket); on CPU gloo these are memory copies "
             "between processes on a 2-core machine shared with other jobs, so FSDP is slower than DDP here: it "
             "buys memory (1/W of the state per rank), not speed.")
    write_results("fsdp-quick" if args.quick else "fsdp", payload, rows,
                  title="FSDP on CPU (gloo): 2 ranks vs DDP and one process", notes=notes)


if __name__ == "__main__":
    main()
