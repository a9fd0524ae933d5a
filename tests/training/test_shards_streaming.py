"""Encoding a corpus to shards streams it through the worker processes: peak memory stays flat as the corpus grows 10x."""

import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
PROBE = """
import resource, sys
from tokembed.corpus import Corpus
from tokembed.tokenizers import ByteTokenizer
from tokembed.training.shards import build_shards, load_shards

if __name__ == "__main__":
    shards = build_shards(ByteTokenizer(), Corpus([sys.argv[1]]), sys.argv[2], val_fraction=0.05, workers=2)
    n = len(shards["train"]) + len(shards["val"])
    # VmHWM: the peak RSS of this process's own memory (ru_maxrss would include the launcher's peak, kept across exec)
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(n, hwm, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
DOC = "".join(f"Line {j} of a document about foxes and dogs.\n" for j in range(40))


def _peak_kib(tmp_path: Path, n_docs: int) -> tuple[int, int, int]:
    corpus = tmp_path / f"c{n_docs}.txt"
    with open(corpus, "w") as f:  # written in pieces: this process stays small too
        for i in range(n_docs):
            f.write(DOC if i == 0 else "\n" + DOC)
    (tmp_path / "probe.py").write_text(PROBE)
    env = {**os.environ, "PYTHONPATH": SRC}
    p = subprocess.run([sys.executable, str(tmp_path / "probe.py"), str(corpus), str(tmp_path / f"s{n_docs}")],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    n_tokens, own, children = map(int, p.stdout.split())
    return n_tokens, own, children


def test_peak_rss_is_flat_as_the_corpus_grows_10x(tmp_path):
    small = _peak_kib(tmp_path, 2_000)  # 3.5 MB of text
    large = _peak_kib(tmp_path, 20_000)  # 35 MB: holding it (or its int64 ids, 8x more) would add >= 31 MB
    assert large[0] > 9.9 * small[0]  # the shards really hold 10x the tokens
    assert small[2] > 0 and large[2] > 0  # encoded in worker processes
    assert large[1] - small[1] < 12 * 1024, (small, large)  # the writing process: flat
    assert large[2] - small[2] < 12 * 1024, (small, large)  # the largest worker (ru_maxrss of the children): flat
