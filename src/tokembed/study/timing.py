"""Where a study's time goes: wall and CPU seconds per phase, for ``results.json`` and the report.

Unlike a run's own ``seconds`` (its training steps only, a row of ``results.csv``), this covers
the whole job. Phases of the main process (corpus sampling, tokenizer training, tokenizing into
shards, the results files and the report) are timed on its clock; phases of a run (loading its
tokenizer and shards; building the model, writing its checkpoint and run files; the training
steps; the evaluation) are timed inside the process that trains it and summed over runs, so their wall
seconds are *process*-seconds: with two workers, 60 s of runs can fit in 30 s of the study's wall.
``worker start`` is the CPU a worker process spends before its first run (importing torch).

CPU seconds (``time.process_time`` of the process that did the work) are the fair measure on a
shared machine: they do not grow when other jobs take the cores. The share of the job that is
not training steps is ``1 - train_cpu / total_cpu``.

>>> c = PhaseClock()
>>> c.add("train steps", 8.0, 6.0); c.add("eval", 1.0, 1.0); c.add("results + report", 1.0, 1.0)
>>> s = c.summary(total_wall=10.0, total_cpu=8.0, workers=1)
>>> [(p["phase"], p["cpu_s"]) for p in s["phases"]]
[('train steps', 6.0), ('eval', 1.0), ('results + report', 1.0)]
>>> s["non_training_cpu_share"]
0.25
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = ["PHASES", "TRAINING_PHASE", "PhaseClock", "cpu_now", "phase_table"]

#: Phases in the order the study goes through them (a phase that took no time is left out of the table).
PHASES: tuple[str, ...] = (
    "corpus sample", "tokenizer training", "tokenize + shard", "worker start", "load", "setup + checkpoint",
    "train steps", "eval", "results + report", "other",
)
#: The one phase that is the job itself; everything else is overhead to cut.
TRAINING_PHASE = "train steps"


def cpu_now(*, children: bool = False) -> float:
    """CPU seconds (user + system) of this process, plus its waited-for children when ``children``."""
    t = os.times()
    return t.user + t.system + ((t.children_user + t.children_system) if children else 0.0)


class PhaseClock:
    """Wall and CPU seconds per phase; ``with clock("eval"):`` times a block of this process."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - t0, time.process_time() - c0)

    def add(self, phase: str, wall: float, cpu: float) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; one of {PHASES}")
        self.wall[phase] = self.wall.get(phase, 0.0) + wall
        self.cpu[phase] = self.cpu.get(phase, 0.0) + cpu

    def merge(self, timings: Mapping[str, Any]) -> None:
        """Add a run's ``{"phase": [wall, cpu]}`` (as :func:`~tokembed.study.run._execute` returns them)."""
        for phase, (wall, cpu) in timings.items():
            self.add(phase, float(wall), float(cpu))

    def summary(self, *, total_wall: float, total_cpu: float, workers: int) -> dict[str, Any]:
        """The table for ``results.json``: one entry per phase with its share of the CPU, and the totals.

        CPU the phases do not account for is the ``other`` phase, so the CPU column adds up to ``total_cpu``:
        the main process between phases (probing the designs, hashing the corpus, scheduling) and the
        worker processes after their last run (a spawned interpreter that loaded torch took ~0.9 CPU s
        to exit until the study's workers skipped that teardown).
        """
        cpu = dict(self.cpu)
        wall = dict(self.wall)
        rest = total_cpu - sum(cpu.values())
        if rest > 0:
            cpu["other"] = cpu.get("other", 0.0) + rest
            wall.setdefault("other", 0.0)
        phases = [{"phase": p, "wall_s": round(wall.get(p, 0.0), 3), "cpu_s": round(cpu[p], 3),
                   "cpu_share": round(cpu[p] / total_cpu, 4) if total_cpu > 0 else None}
                  for p in PHASES if p in cpu]
        train_cpu = cpu.get(TRAINING_PHASE, 0.0)
        return {
            "phases": phases,
            "total_wall_s": round(total_wall, 3),
            "total_cpu_s": round(total_cpu, 3),
            "workers": workers,
            "train_cpu_s": round(train_cpu, 3),
            "non_training_cpu_share": round(1 - train_cpu / total_cpu, 4) if total_cpu > 0 else None,
        }


def phase_table(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows for an HTML/markdown table of a :meth:`PhaseClock.summary`, with a total row.

    >>> phase_table({"phases": [{"phase": "eval", "wall_s": 1.0, "cpu_s": 0.5, "cpu_share": 1.0}],
    ...              "total_wall_s": 2.0, "total_cpu_s": 0.5})[-1]
    {'phase': 'total (study wall clock)', 'wall s': 2.0, 'CPU s': 0.5, 'CPU share': '100.0%'}
    """
    rows = [{"phase": p["phase"], "wall s": p["wall_s"], "CPU s": p["cpu_s"],
             "CPU share": f"{100 * p['cpu_share']:.1f}%" if p.get("cpu_share") is not None else ""}
            for p in summary.get("phases", [])]
    rows.append({"phase": "total (study wall clock)", "wall s": summary.get("total_wall_s"),
                 "CPU s": summary.get("total_cpu_s"), "CPU share": "100.0%"})
    return rows
