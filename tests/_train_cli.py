"""`tokembed train` in a subprocess for the torchrun tests (data-parallel and vocab-parallel): a small corpus and
the CLI run in its own session, so a hung collective kills the whole torchrun tree instead of the suite."""

import os
import signal
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
TIMEOUT = 60  # seconds per launch


def write_corpus(folder: Path) -> Path:
    """200 short documents (blank-line separated) in ``folder/c.txt``."""
    docs = [f"Document {i}: the quick brown fox {i * 7} jumps over the lazy dog.\nLine {i % 5}.\n" for i in range(200)]
    path = folder / "c.txt"
    path.write_text("\n\n".join(docs))
    return path


def train_cli(*args: str, cwd: Path, timeout: float = TIMEOUT) -> str:
    """Run ``tokembed train --quiet --workers 1 ARGS``; fail unless it exits 0 within ``timeout``."""
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([sys.executable, "-m", "tokembed", "train", "--quiet", "--workers", "1", *args], cwd=cwd,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise
    assert p.returncode == 0, out[-4000:]
    return out
