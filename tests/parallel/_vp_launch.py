"""Spawn N local ranks of a worker script under gloo (env:// rendezvous on a free port), with a hard timeout.

What torchrun does for one machine, minus restarts: each rank gets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT. A rank that hangs or fails fails the test with every
rank's output instead of hanging pytest.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(script: Path, world: int, args: list[str], log_dir: Path, *, timeout: float = 60.0) -> None:
    """Run ``world`` ranks of ``script``; fail with every rank's log unless all exit 0 within ``timeout``.

    The free port can be taken by another process between choosing and binding it (a shared
    machine); only that failure (EADDRINUSE in a log) is retried, once, on a new port.
    """
    for attempt in (0, 1):
        hung, bad = _run_ranks(script, world, args, log_dir, timeout)
        logs = [(log_dir / f"rank{r}.log").read_text() for r in range(world)]
        if not (hung or bad):
            return
        if attempt == 0 and any("Address already in use" in text or "EADDRINUSE" in text for text in logs):
            continue
        text = "\n".join(f"--- rank {r} ---\n" + t[-3000:] for r, t in enumerate(logs))
        pytest.fail(f"{len(hung)} rank(s) timed out after {timeout}s; exit codes {bad}\n{text}")


def _run_ranks(script: Path, world: int, args: list[str], log_dir: Path, timeout: float) -> tuple[list, list]:
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE=str(world), OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([SRC, str(script.parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    procs, logs = [], []
    for rank in range(world):
        log = open(log_dir / f"rank{rank}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, str(script), *args], env=dict(env, RANK=str(rank), LOCAL_RANK=str(rank)), stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        hung = [p for p in procs if p.poll() is None]
        for p in hung:
            p.kill()
            p.wait()
        for log in logs:
            log.close()
    return hung, [(r, p.returncode) for r, p in enumerate(procs) if p.returncode != 0]
