"""The study over the ranks of a torchrun job (tokembed.study.distributed): 1, 2 and 3 workers write the same
results.csv (timing columns apart), and a study whose worker is killed completes when rerun."""

import csv
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tokembed.corpus import Corpus
from tokembed.study import StudyConfig, run_study
from tokembed.study.distributed import partition, run_over_ranks
from tokembed.training.distributed import DistContext

from _torch_threads import single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")

SRC = str(Path(__file__).resolve().parents[2] / "src")
TIMING = {"train_tokens_per_s", "train_bytes_per_s", "seconds"}
CONFIG = """[study]
preset = "tiny"
designs = ["untied", "tied", "factorized"]
seeds = [0, 1, 2]
budget_bytes = 4096
"""
N_RUNS = 9
TIMEOUT = 240  # a hung collective fails the test (generous: the shared machine runs at load 10-16)


def _without_timing(path: Path) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    """The corpus, the config and the reference study run in this process (one worker)."""
    root = tmp_path_factory.mktemp("dstudy")
    docs = [f"Document {i}: the quick brown fox {i * 7} jumps over the lazy dog.\nLine {i % 5}.\n" for i in range(300)]
    (root / "c.txt").write_text("\n\n".join(docs))
    (root / "s.toml").write_text(CONFIG)
    run_study(StudyConfig.from_file(root / "s.toml"), Corpus([str(root / "c.txt")]), root / "one", log=lambda m: None,
              write_report=False)
    return root


def _study(root: Path, out: str, nproc: int, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "tokembed", "study", "--nproc", str(nproc), "--config", str(root / "s.toml"),
           "-o", str(root / out), str(root / "c.txt")]
    return subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **popen)


def _finish(p: subprocess.Popen) -> str:
    """The output of ``p``; on a timeout (a hung collective) the whole torchrun tree is killed and the test fails."""
    try:
        return p.communicate(timeout=TIMEOUT)[0]
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise


def test_partition_and_one_rank_run_the_whole_grid_in_order():
    assert partition(list(range(5)), DistContext(rank=1, world_size=2)) == [1, 3]
    seen = []
    cfg = StudyConfig.from_name("tiny")
    out = run_over_ranks(["a", "b"], lambda specs, c: seen.append((specs, c)) or {"a": ({}, {})}, config=cfg,
                         skipped=[], ctx=DistContext())
    assert seen == [(["a", "b"], cfg)] and list(out) == ["a"]


@pytest.mark.slow
@pytest.mark.parametrize("nproc", [2, 3])
def test_workers_write_the_same_results_as_one_process(study_dir, nproc):
    p = _study(study_dir, f"w{nproc}", nproc)
    log = _finish(p)
    assert p.returncode == 0, log[-4000:]
    for r in range(nproc):  # each rank trained only its share of the grid
        n = len(partition(range(N_RUNS), DistContext(rank=r, world_size=nproc)))
        assert f"rank {r} of {nproc}: {n} run(s) of {N_RUNS}" in log, log[-4000:]
    assert _without_timing(study_dir / f"w{nproc}" / "results.csv") == _without_timing(study_dir / "one" / "results.csv")


def _worker_pid(out: Path, rank: int) -> int | None:
    """The pid of the torchrun worker of ``rank`` whose command line names ``out``."""
    for proc in Path("/proc").iterdir():
        try:
            if str(out) in (proc / "cmdline").read_bytes().decode(errors="replace") and \
                    f"\0RANK={rank}\0".encode() in b"\0" + (proc / "environ").read_bytes():
                return int(proc.name)
        except (OSError, ValueError):
            continue
    return None


@pytest.mark.slow
def test_a_killed_worker_leaves_finished_runs_and_a_rerun_completes_the_grid(study_dir):
    out = study_dir / "killed"
    p = _study(study_dir, "killed", 2)
    deadline = time.monotonic() + TIMEOUT
    while not list(out.glob("runs/*/result.json")) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
    pid = _worker_pid(out, 1)
    if pid is None or p.poll() is not None:
        _finish(p)
        pytest.fail("the study finished before a worker could be killed")
    os.kill(pid, signal.SIGKILL)
    log = _finish(p)
    assert p.returncode != 0 and not (out / "results.csv").exists(), log[-3000:]
    finished = len(list(out.glob("runs/*/result.json")))
    assert 1 <= finished < N_RUNS
    messages: list[str] = []
    run_study(StudyConfig.from_file(study_dir / "s.toml"), Corpus([str(study_dir / "c.txt")]), out,
              log=messages.append, write_report=False)
    assert sum(": cached, bpb" in m for m in messages) == finished  # the finished runs were not trained again
    assert _without_timing(out / "results.csv") == _without_timing(study_dir / "one" / "results.csv")
