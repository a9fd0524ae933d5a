"""Progress of engine-internal training steps (issue 12): shown on a terminal once a step runs
longer than ~2 s, never when stderr is not a terminal."""

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")

CHILD = """
import tokembed.tokenizers.progress as progress
progress.DELAY_S = {delay}  # every step counts as long: the bar must appear (or not) right away
from tokembed.tokenizers import train_tokenizer
lines = ["The quick brown fox jumps over the lazy dog {{}}.".format(i % 97) for i in range(3000)]
import pathlib
p = pathlib.Path({folder!r}) / "c.txt"
p.write_text("\\n".join(lines))
train_tokenizer("{kind}", [str(p)], 300)
print("done")
"""


def _run_on_terminal(code: str) -> str:
    """Run ``code`` with stderr on a pseudo-terminal; return what it wrote there."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 0-column terminal shows nothing
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=slave, env={"PYTHONPATH": SRC})
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=120)
    os.close(master)
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
    return out.decode(errors="replace")


@pytest.mark.parametrize("kind", ["unigram", "morph"])
def test_progress_on_a_terminal(kind, tmp_path):
    err = _run_on_terminal(CHILD.format(delay=0.0, kind=kind, folder=str(tmp_path)))
    want = "unigram training (sentencepiece)" if kind == "unigram" else "morph: training the morfessor segmenter"
    assert want in err


@pytest.mark.parametrize("kind", ["unigram", "morph"])
def test_no_progress_when_stderr_is_not_a_terminal(kind, tmp_path):
    r = subprocess.run([sys.executable, "-c", CHILD.format(delay=0.0, kind=kind, folder=str(tmp_path))], capture_output=True, text=True,
                       env={"PYTHONPATH": SRC}, timeout=120)  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip() == "done", r.stderr[-2000:]
    assert "training" not in r.stderr and "\r" not in r.stderr
