"""Subprocess side of test_memmap_embedding: ``python _memmap_worker.py MODE TABLE [ARGS]``.

- ``capped CAP_MB``: limit the address space to (current + CAP_MB) with RLIMIT_AS, show that the
  whole table cannot be loaded, then train a few SGD steps on it and print the touched rows (JSON).
- ``crash-inplace K`` / ``crash-journal K``: run update K (rows ROWS set to K) and SIGKILL itself
  halfway through writing the table / the journal.
- ``loop``: run updates 1, 2, 3, ... forever (each sets ROWS to its number) until killed.
"""

import json
import os
import resource
import signal
import sys

import torch

from tokembed.embeddings import MemmapEmbedding
from tokembed.embeddings import _table_file

ROWS = torch.arange(0, 40_000, 7)  # 5715 scattered rows: thousands of separate pwrites per update


def vm_bytes() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")


def capped(table: str, cap_mb: int) -> None:
    torch.set_num_threads(1)
    torch.ones(8) @ torch.ones(8)  # warm up torch before the cap
    cap = vm_bytes() + cap_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    size = os.path.getsize(table)
    try:
        with open(table, "rb") as f:
            f.read()  # the plain way: load the whole table
        loaded = True
    except MemoryError:
        loaded = False
    emb = MemmapEmbedding(table, cache_rows=512)
    g = torch.Generator().manual_seed(0)
    V = emb.num_embeddings
    target = torch.ones(emb.embedding_dim)
    for _ in range(5):
        ids = torch.cat([torch.randint(0, V, (2, 30), generator=g), torch.tensor([[0, V - 1] * 15] * 2)], dim=1)
        loss = (emb(ids) - target).square().sum()
        loss.backward()
        emb.step_(lr=0.05)
    check = torch.tensor([0, 1, V // 2, V - 1])
    print(json.dumps({"table_bytes": size, "cap_bytes": cap_mb * 2**20, "whole_table_loaded": loaded, "rows": emb.read_rows(check).tolist(), "ids": check.tolist()}))


def crash_during(name: str, k: int, table: str) -> None:
    emb = MemmapEmbedding(table, cache_rows=0)
    real = getattr(_table_file, name)

    def half_then_die(fd, *args):
        if name == "_write_all":  # (fd, data): half the journal bytes
            os.write(fd, args[0][: len(args[0]) // 2])
        else:  # (fd, layout, ids, data): half the rows in place
            layout, ids, data = args
            n = len(ids) // 2
            real(fd, layout, ids[:n], data[: n * layout.row_bytes])
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(_table_file, name, half_then_die)
    emb.write_rows_(ROWS, torch.full((len(ROWS), emb.embedding_dim), float(k)))


def loop(table: str) -> None:
    emb = MemmapEmbedding(table, cache_rows=0)
    k = 0
    while True:
        k += 1
        emb.write_rows_(ROWS, torch.full((len(ROWS), emb.embedding_dim), float(k)))
        print(k, flush=True)


if __name__ == "__main__":
    mode, table = sys.argv[1], sys.argv[2]
    if mode == "capped":
        capped(table, int(sys.argv[3]))
    elif mode == "crash-inplace":
        crash_during("_write_rows", int(sys.argv[3]), table)
    elif mode == "crash-journal":
        crash_during("_write_all", int(sys.argv[3]), table)
    elif mode == "loop":
        loop(table)
