"""Issue-3 benchmark: forward+backward throughput, activation memory and parameter bytes of every
embedding + head design, side by side in one process, against ``nn.Embedding`` + ``nn.Linear``.

Each design does one training step on B·T tokens: ``x = emb(ids)``, ``loss = head.loss(x, targets)``,
``loss.backward()`` (no Transformer in between: the embedding and head are what differs).
Ids and targets are Zipf-distributed (p(rank r) ∝ 1/r) and the tokenizer ids are a random
permutation of the frequency ranks, so AdaptiveInput/AdaptiveSoftmax exercise their id -> rank map;
PyTorch's ``nn.AdaptiveLogSoftmaxWithLoss`` has no such map and gets rank targets directly.

Designs run round-robin (one step of each per round, several rounds) so load changes on the
shared machine hit all of them; per-round paired ratios give the spread. Activation memory is the
bytes of the tensors autograd saves for backward (storage-deduplicated, parameters excluded),
measured with ``torch.autograd.graph.saved_tensors_hooks`` — CPU torch has no peak-allocation counter.

    python benchmarks/bench_embeddings.py --quick     # ~2 min: B·T = 512 tokens, 3 rounds
    python benchmarks/bench_embeddings.py             # issue setting: B·T = 8192, 3 rounds (~20 min on 2 cores)
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import _common  # noqa: F401  (puts src/ on sys.path)
import torch
from _common import machine, write_results
from torch import nn
from torch.nn import functional as F

from tokembed.embeddings import AdaptiveInput, TokenEmbedding, frequency_permutation
from tokembed.heads import AdaptiveSoftmax, TiedHead, UntiedHead

try:  # designs of other branches: used when present, listed as skipped otherwise
    from tokembed.embeddings import FactorizedEmbedding
except ImportError:
    FactorizedEmbedding = None
try:
    from tokembed.embeddings import HashEmbedding
except ImportError:
    HashEmbedding = None

D = 512
CUTOFFS = {32_768: [4096, 16384], 131_072: [4096, 32768]}  # issue: 4k/32k at 128k; 32k cannot cut at 32k
DIV = 4.0
RANK = 128  # FactorizedEmbedding r
HASH_BUCKETS, HASH_K = 16_384, 2  # HashEmbedding buckets / hash functions (when available)


def zipf_sample(V: int, n: int, g: torch.Generator) -> torch.Tensor:
    """n frequency ranks with p(r) ∝ 1/(r+1)."""
    p = 1.0 / torch.arange(1, V + 1, dtype=torch.float64)
    return torch.multinomial(p / p.sum(), n, replacement=True, generator=g)


class Design:
    """One embedding + head pair; ``step()`` = forward + backward of the loss."""

    def __init__(self, name, emb, head, loss_fn, *, rank_targets=False):
        self.name, self.emb, self.head, self.loss_fn, self.rank_targets = name, emb, head, loss_fn, rank_targets

    def params(self):
        seen, out = set(), []
        for m in (self.emb, self.head):
            for p in m.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def param_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.params())

    def buffer_bytes(self) -> int:
        seen, n = set(), 0
        for m in (self.emb, self.head):
            for b in m.buffers():
                if id(b) not in seen:
                    seen.add(id(b))
                    n += b.numel() * b.element_size()
        return n

    def step(self, ids, targets):
        x = self.emb(ids)  # (B, T, D)
        loss = self.loss_fn(self.head, x, targets)
        loss.backward()
        for p in self.params():
            p.grad = None
        return loss.item()

    def saved_bytes(self, ids, targets) -> int:
        """Bytes autograd keeps for backward in one step (storages deduplicated, parameters excluded)."""
        param_ptrs = {p.untyped_storage().data_ptr() for p in self.params()}
        storages = {}

        def pack(t):
            s = t.untyped_storage()
            if s.data_ptr() not in param_ptrs:
                storages[s.data_ptr()] = s.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            x = self.emb(ids)
            loss = self.loss_fn(self.head, x, targets)
        loss.backward()
        for p in self.params():
            p.grad = None
        return sum(storages.values())  # this step doubles as the warm-up


def build(V: int, order: torch.Tensor) -> tuple[list[Design], list[str]]:
    cut = CUTOFFS[V]
    flat = lambda head, x, t: F.cross_entropy(head(x).reshape(-1, V), t.reshape(-1))  # noqa: E731
    tk = lambda head, x, t: head.loss(x, t)  # noqa: E731
    designs, skipped = [], []
    designs.append(Design("nn.Embedding + nn.Linear (baseline, full softmax)", nn.Embedding(V, D), nn.Linear(D, V), flat))
    designs.append(Design("TokenEmbedding + UntiedHead", TokenEmbedding(V, D), UntiedHead(D, V), tk))
    te = TokenEmbedding(V, D)
    designs.append(Design("TokenEmbedding + TiedHead", te, TiedHead(te), tk))
    if FactorizedEmbedding is not None:
        fe = FactorizedEmbedding(V, D, RANK)
        designs.append(Design(f"FactorizedEmbedding(r={RANK}) + TiedHead", fe, TiedHead(fe), tk))
    else:
        skipped.append("FactorizedEmbedding (not on this branch)")
    if HashEmbedding is not None:
        try:
            he = HashEmbedding(V, D, num_buckets=HASH_BUCKETS, num_hashes=HASH_K)
            designs.append(Design(f"HashEmbedding({HASH_BUCKETS} buckets, k={HASH_K}) + UntiedHead", he, UntiedHead(D, V), tk))
        except TypeError as e:
            skipped.append(f"HashEmbedding (constructor differs: {e})")
    else:
        skipped.append("HashEmbedding (not on main or the emb branch yet)")
    pt = nn.AdaptiveLogSoftmaxWithLoss(D, V, cut, div_value=DIV)
    designs.append(Design(f"nn.Embedding + nn.AdaptiveLogSoftmaxWithLoss {cut} (anchor)", nn.Embedding(V, D), pt,
                          lambda head, x, t: head(x.reshape(-1, D), t.reshape(-1)).loss, rank_targets=True))
    designs.append(Design(f"nn.Embedding + AdaptiveSoftmax {cut}", nn.Embedding(V, D),
                          AdaptiveSoftmax(D, V, cut, DIV, permutation=order), tk))
    ai = AdaptiveInput(V, D, cut, DIV, permutation=order)
    designs.append(Design("AdaptiveInput + AdaptiveSoftmax (untied)", ai, AdaptiveSoftmax(D, V, cut, DIV, permutation=order), tk))
    ai2 = AdaptiveInput(V, D, cut, DIV, permutation=order)
    designs.append(Design("AdaptiveInput + AdaptiveSoftmax (tied: weights + proj)", ai2, AdaptiveSoftmax(D, V, tie_with=ai2), tk))
    return designs, skipped


BASE, ANCHOR, OURS = 0, "anchor", "nn.Embedding + AdaptiveSoftmax"


def run_vocab(V: int, tokens: int, rounds: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(V, generator=g)  # order[rank] = tokenizer id
    T = min(tokens, 1024)
    B = tokens // T
    id_ranks, tgt_ranks = zipf_sample(V, B * T, g).view(B, T), zipf_sample(V, B * T, g).view(B, T)
    ids, targets = order[id_ranks], order[tgt_ranks]  # tokenizer ids
    # sanity: the frequency permutation recovered from counts puts the Zipf head first
    counts = torch.bincount(ids.flatten(), minlength=V)
    assert int(frequency_permutation(counts)[0]) == int(order[0])
    torch.manual_seed(seed)
    designs, skipped = build(V, order)
    nn_ids = lambda d: (id_ranks, tgt_ranks) if d.rank_targets else (ids, targets)  # noqa: E731
    # one untimed full-batch step per design (warm-up + activation memory), then timed rounds
    act = {}
    for d in designs:
        i, t = nn_ids(d)
        act[d.name] = d.saved_bytes(i, t)
        gc.collect()
    times = {d.name: [] for d in designs}
    losses = {}
    for r in range(rounds):
        for d in designs:
            i, t = nn_ids(d)
            t0 = time.perf_counter()
            losses[d.name] = d.step(i, t)
            times[d.name].append(time.perf_counter() - t0)
            print(f"V={V} round {r + 1}/{rounds} {d.name}: {times[d.name][-1]:.3f}s", flush=True)
    rows = []
    base_name = designs[BASE].name
    anchor = next(d.name for d in designs if ANCHOR in d.name)
    ours = next(d.name for d in designs if d.name.startswith(OURS))
    for d in designs:
        ts = times[d.name]
        med = statistics.median(ts)
        rows.append({
            "name": d.name,
            "median_s": med, "min_s": min(ts), "max_s": max(ts), "spread": (max(ts) - min(ts)) / med,
            "tokens_per_s": B * T / med,
            "speedup_vs_baseline": statistics.median(b / x for b, x in zip(times[base_name], ts)),
            "param_bytes": d.param_bytes(), "buffer_bytes": d.buffer_bytes(),
            "activation_bytes": act[d.name], "loss": losses[d.name],
        })

    def paired(a, b):
        rs = [x / y for x, y in zip(times[a], times[b])]
        return {"median": statistics.median(rs), "min": min(rs), "max": max(rs), "per_round": rs}

    return {
        "V": V, "D": D, "tokens": B * T, "B": B, "T": T, "cutoffs": CUTOFFS[V], "div_value": DIV, "rounds": rounds,
        "designs": rows, "skipped": skipped,
        "ratios": {
            "adaptive_softmax_vs_full_softmax": paired(base_name, ours),  # full time / ours: want >= 10
            "adaptive_softmax_vs_pytorch": paired(anchor, ours),  # torch time / ours: want >= 0.9
            "tied_vs_untied_adaptive": paired("AdaptiveInput + AdaptiveSoftmax (untied)", "AdaptiveInput + AdaptiveSoftmax (tied: weights + proj)"),
        },
        "times_s": times,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="512 tokens, 3 rounds (~2 min)")
    ap.add_argument("--tokens", type=int, default=None, help="B·T tokens per step (default 8192; --quick 512)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds (one step of every design per round)")
    ap.add_argument("--vocab", type=int, nargs="*", default=[32_768, 131_072], choices=sorted(CUTOFFS))
    args = ap.parse_args()
    tokens = args.tokens or (512 if args.quick else 8192)
    results = [run_vocab(V, tokens, args.rounds) for V in args.vocab]

    table = []
    for res in results:
        for row in res["designs"]:
            table.append({
                "V": res["V"], "design": row["name"], "tokens/s": round(row["tokens_per_s"]),
                "median s": row["median_s"], "spread": f"{row['spread']:.0%}",
                "× baseline": row["speedup_vs_baseline"],
                "param MiB": row["param_bytes"] / 2**20, "buffer MiB": row["buffer_bytes"] / 2**20,
                "saved-for-backward MiB": row["activation_bytes"] / 2**20,
            })
    notes = []
    for res in results:
        r = res["ratios"]
        a, p, t = r["adaptive_softmax_vs_full_softmax"], r["adaptive_softmax_vs_pytorch"], r["tied_vs_untied_adaptive"]
        notes.append(
            f"- V={res['V']} (B·T={res['tokens']}, cutoffs {res['cutoffs']}, div {DIV}, {res['rounds']} rounds, per-round paired ratios): "
            f"tokembed AdaptiveSoftmax is **{a['median']:.1f}×** the full softmax (min {a['min']:.1f}, max {a['max']:.1f}; target ≥ 10) and "
            f"**{p['median']:.2f}×** PyTorch's nn.AdaptiveLogSoftmaxWithLoss (min {p['min']:.2f}, max {p['max']:.2f}; target ≥ 0.9); "
            f"tied AdaptiveInput+AdaptiveSoftmax runs at {t['median']:.2f}× the untied pair."
        )
    skipped = sorted({s for res in results for s in res["skipped"]})
    if skipped:
        notes.append("- Skipped: " + "; ".join(skipped) + ".")
    notes.append("- Times are one forward+backward step of embedding + head + loss. `param MiB` counts shared (tied) "
                 "parameters once; `buffer MiB` is AdaptiveInput/AdaptiveSoftmax's id<->rank permutation (2·V int64). "
                 "`saved-for-backward MiB` = tensors autograd keeps between forward and backward.")
    write_results("embeddings", {"quick": args.quick, "results": results}, table,
                  title="Embedding and head designs: forward+backward throughput, memory, parameters (issue 3)",
                  notes="\n".join(notes))
    print("\n".join(notes))


if __name__ == "__main__":
    main()
