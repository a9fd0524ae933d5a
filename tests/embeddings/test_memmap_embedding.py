"""MemmapEmbedding: equals an in-RAM table, trains like nn.Embedding(sparse=True) + SGD, caches, validates,
survives kill -9 mid-update, and trains on a table 4x larger than its address-space headroom."""

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from _memmap_worker import ROWS
from tokembed.embeddings import MemmapEmbedding, RetrievedEmbedding
from tokembed.errors import ArtifactError, ConfigError, TokenIdError

HERE = Path(__file__).parent
WORKER = HERE / "_memmap_worker.py"
SRC = str(HERE.parents[1] / "src")


def _run(*args, timeout=60):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, str(HERE)]), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(WORKER), *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("suffix,dtype", [(".npy", torch.float32), (".npy", torch.float16), (".safetensors", torch.float32), (".safetensors", torch.bfloat16)])
def test_lookup_equals_the_in_memory_table(tmp_path, suffix, dtype):
    W = torch.randn(50, 6, generator=torch.Generator().manual_seed(0))
    emb = MemmapEmbedding.create(tmp_path / f"t{suffix}", 50, 6, weight=W, dtype=dtype, cache_rows=8)
    ids = torch.tensor([[0, 49, 3, 3], [7, 0, 48, 1]])
    ref = torch.nn.functional.embedding(ids, W.to(dtype).float())
    assert torch.equal(emb(ids), ref)
    assert torch.equal(emb(ids), ref)  # second time through the (too small) cache
    assert emb.cache_info()["hits"] > 0
    assert torch.equal(emb.weight_matrix(), W.to(dtype).float())


def test_numpy_written_table_is_read(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "t.npy", a)
    assert MemmapEmbedding(tmp_path / "t.npy", writable=False).read_rows(torch.tensor([2])).tolist() == [[6.0, 7.0, 8.0]]


def test_training_equals_sparse_nn_embedding_with_sgd(tmp_path):
    g = torch.Generator().manual_seed(1)
    W = torch.randn(40, 5, generator=g)
    mem = MemmapEmbedding.create(tmp_path / "t.npy", 40, 5, weight=W, cache_rows=6)
    ref = torch.nn.Embedding(40, 5, sparse=True)
    with torch.no_grad():
        ref.weight.copy_(W)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    proj = torch.randn(5, generator=g)
    for _ in range(4):
        ids = torch.randint(0, 40, (3, 7), generator=g)
        for emb in (mem, ref):
            (emb(ids) @ proj).tanh().sum().backward()
        torch.testing.assert_close(mem.sparse_grad().to_dense(), ref.weight.grad.to_dense())
        mem.step_(lr=0.1)
        opt.step()
        opt.zero_grad()
    torch.testing.assert_close(MemmapEmbedding(tmp_path / "t.npy", writable=False).weight_matrix(), ref.weight.detach())


def test_cache_evicts_the_least_recently_used_row(tmp_path):
    emb = MemmapEmbedding.create(tmp_path / "t.npy", 10, 2, cache_rows=2)
    for i in (1, 2, 1, 3):  # 3 evicts 2 (1 was used more recently)
        emb.read_rows(torch.tensor([i]))
    assert emb.cache_info() == {"hits": 1, "misses": 3, "capacity": 2, "cached": 2}
    emb.read_rows(torch.tensor([1]))
    emb.read_rows(torch.tensor([2]))
    assert emb.cache_info()["hits"] == 2 and emb.cache_info()["misses"] == 4


def test_writes_go_through_the_cache(tmp_path):
    emb = MemmapEmbedding.create(tmp_path / "t.npy", 10, 2, cache_rows=4)
    emb.read_rows(torch.tensor([5]))
    emb.write_rows_(torch.tensor([5]), torch.tensor([[9.0, 9.0]]))
    assert emb.read_rows(torch.tensor([5])).tolist() == [[9.0, 9.0]] == MemmapEmbedding(tmp_path / "t.npy", writable=False).read_rows(torch.tensor([5])).tolist()


def test_bad_files_and_ids_get_typed_errors(tmp_path):
    np.save(tmp_path / "int.npy", np.zeros((3, 2), dtype=np.int32))
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2), dtype=np.float32))
    np.save(tmp_path / "fortran.npy", np.asfortranarray(np.zeros((3, 2), dtype=np.float32)))
    np.save(tmp_path / "objects.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    np.save(tmp_path / "short.npy", np.zeros((100, 4), dtype=np.float32))
    with open(tmp_path / "short.npy", "r+b") as f:
        f.truncate(200)
    (tmp_path / "junk.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    bad_entry = b'{"t": {"dtype": "F32", "shape": "x"}}'
    (tmp_path / "entry.safetensors").write_bytes(struct.pack("<Q", len(bad_entry)) + bad_entry)
    (tmp_path / "t.bin").write_bytes(b"")
    for name, match in [("int.npy", "int32"), ("cube.npy", r"\[2, 2, 2\]"), ("fortran.npy", "Fortran"), ("objects.npy", "dtype"),
                        ("short.npy", "truncated"), ("junk.safetensors", "header"), ("entry.safetensors", "malformed"), ("t.bin", "suffix"), ("missing.npy", "does not exist")]:
        with pytest.raises(ArtifactError, match=match):
            MemmapEmbedding(tmp_path / name)
    emb = MemmapEmbedding.create(tmp_path / "ok.npy", 5, 2)
    with pytest.raises(TokenIdError, match="5"):
        emb(torch.tensor([[5]]))
    with pytest.raises(ConfigError, match="repeated"):
        emb.write_rows_(torch.tensor([1, 1]), torch.zeros(2, 2))
    with pytest.raises(ArtifactError, match="another process|open for writing"):
        MemmapEmbedding(tmp_path / "ok.npy")  # one writer at a time
    with pytest.raises(ArtifactError, match="max_bytes"):
        emb.weight_matrix(max_bytes=10)


def test_a_torn_journal_is_dropped(tmp_path):
    MemmapEmbedding.create(tmp_path / "t.npy", 10, 2, init="zeros").close()
    (tmp_path / "t.npy.journal").write_bytes(b"TKJ1" + b"\x01" * 30)  # no valid checksum
    with pytest.raises(ArtifactError, match="unfinished update"):
        MemmapEmbedding(tmp_path / "t.npy", writable=False)
    emb = MemmapEmbedding(tmp_path / "t.npy")
    assert not (tmp_path / "t.npy.journal").exists() and emb.weight_matrix().abs().sum() == 0


def _rows_after_recovery(table) -> torch.Tensor:
    return MemmapEmbedding(table, cache_rows=0).read_rows(ROWS)


@pytest.mark.parametrize("mode,expect", [("crash-inplace", 2.0), ("crash-journal", 1.0)])
def test_kill_9_mid_update_leaves_old_or_new_never_torn(tmp_path, mode, expect):
    table = tmp_path / "t.npy"
    MemmapEmbedding.create(table, 40_000, 4, init="zeros").close()
    assert _run("crash-inplace", table, 1).returncode == -signal.SIGKILL  # update 1 killed after the journal: replayed
    assert _rows_after_recovery(table).unique().tolist() == [1.0]
    r = _run(mode, table, 2)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert (tmp_path / "t.npy.journal").exists()
    assert _rows_after_recovery(table).unique().tolist() == [expect]  # in place: replayed (new); journal torn: old
    assert not (tmp_path / "t.npy.journal").exists()


def test_kill_9_at_random_moments_never_tears_an_update(tmp_path):
    table = tmp_path / "t.npy"
    MemmapEmbedding.create(table, 40_000, 4, init="zeros").close()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, str(HERE)]), OMP_NUM_THREADS="1")
    mid_update = 0
    # at least 3 kills; more (up to 12) while none has landed inside an update, since on a loaded
    # machine the writer may be descheduled between updates every time
    for attempt, delay in enumerate((0.05, 0.13, 0.31, 0.02, 0.07, 0.19, 0.011, 0.041, 0.09, 0.23, 0.003, 0.17)):
        if attempt >= 3 and mid_update >= 1:
            break
        p = subprocess.Popen([sys.executable, str(WORKER), "loop", str(table)], env=env, stdout=subprocess.PIPE, text=True)
        first = p.stdout.readline()  # the writer is up and has finished one update
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        out, _ = p.communicate(timeout=30)
        mid_update += (tmp_path / "t.npy.journal").exists()
        values = _rows_after_recovery(table).unique().tolist()
        assert len(values) == 1, f"torn update: rows hold {values[:5]}"
        last = int((first + out).split()[-1])
        assert values[0] in (last, last + 1)  # the last finished update, or the one in flight
    print("mid-update kills:", mid_update)
    assert mid_update >= 1, "no kill landed inside an update; the test did not exercise recovery"


def test_trains_on_a_table_four_times_larger_than_the_memory_cap(tmp_path):
    cap_mb, D = 64, 64
    V = 4 * cap_mb * 2**20 // (4 * D)  # 1,048,576 rows x 64 fp32 = 256 MiB = 4 x the cap
    table = tmp_path / "big.npy"
    MemmapEmbedding.create(table, V, D, init="zeros", cache_rows=0).close()  # sparse file: no disk pages
    r = _run("capped", table, cap_mb, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["table_bytes"] >= 4 * got["cap_bytes"]
    assert got["whole_table_loaded"] is False  # the cap bites: the plain way fails
    rows = torch.tensor(got["rows"])
    assert rows[0].abs().sum() > 0 and rows[3].abs().sum() > 0  # rows 0 and V-1 were trained every step
    back = MemmapEmbedding(table, writable=False, cache_rows=0).read_rows(torch.tensor(got["ids"]))
    assert torch.equal(back, rows)  # what the capped process wrote is on disk


# ---------------------------------------------------------------- RetrievedEmbedding (faiss)
def test_retrieved_rows_equal_the_table_for_a_flat_index_and_approximate_it_for_pq(tmp_path):
    pytest.importorskip("faiss")
    W = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[0, 299, 5, 5]])
    flat = RetrievedEmbedding.from_table(W)
    assert torch.equal(flat(ids), W[ids]) and torch.equal(flat.weight_matrix(), W)
    scores, nn_ids = flat.nearest(W[:3], k=1)
    assert nn_ids[:, 0].tolist() == [0, 1, 2]
    pq = RetrievedEmbedding.from_table(W, factory="PQ4x4")
    err = (pq.weight_matrix() - W).norm() / W.norm()
    assert 0 < err < 0.9  # a lossy codec: close, not exact
    import faiss  # noqa: PLC0415

    faiss.write_index(pq.index, str(tmp_path / "pq.index"))
    assert torch.equal(RetrievedEmbedding.from_file(tmp_path / "pq.index")(ids), pq(ids))
    with pytest.raises(TokenIdError):
        flat(torch.tensor([[300]]))
    with pytest.raises(ArtifactError, match="does not exist"):
        RetrievedEmbedding.from_file(tmp_path / "missing.index")


def test_importing_the_embeddings_does_not_import_faiss():
    code = "import sys, tokembed.embeddings, tokembed.parallel; assert 'faiss' not in sys.modules, 'faiss imported eagerly'"
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=SRC), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_eval_fast_path_equals_the_sorted_path_and_skips_the_sort(tmp_path, monkeypatch):
    W = torch.randn(500, 4, generator=torch.Generator().manual_seed(2))
    fast = MemmapEmbedding.create(tmp_path / "a.npy", 500, 4, weight=W, cache_rows=64).eval()
    slow = MemmapEmbedding.create(tmp_path / "b.npy", 500, 4, weight=W, cache_rows=64)  # training mode: sorted path
    g = torch.Generator().manual_seed(3)
    for n_ids in (5, 30, 200):  # 200 distinct ids cannot fit 64 slots: the fast path falls back
        ids = torch.randint(0, 500, (2, n_ids), generator=g)
        with torch.no_grad():
            assert torch.equal(fast(ids), W[ids]) and torch.equal(slow(ids), W[ids])
    ids = torch.tensor([[1, 2, 3, 2]])
    with torch.no_grad():
        fast(ids)  # now cached

        def no_sort(*a, **k):
            raise AssertionError("the fast path sorted the batch")

        monkeypatch.setattr(torch, "unique", no_sort)
        before = fast.cache_info()["hits"]
        assert torch.equal(fast(ids), W[ids])
    assert fast.cache_info()["hits"] == before + 3  # unique ids, as the sorted path counts them
