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

    python benchmarks/bench_embeddings.py --quick     # ~2 min: B·T = 512 tokens -> results/embeddings_quick.{json,md}
    python benchmarks/bench_embeddings.py             # issue setting: B·T = 8192 -> results/embeddings.{json,md}
                                                      # (~20 min on 2 idle cores: a full softmax step at V=128k is ~1 min)
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

    def saved_bytes(self, ids, targets) -> tuple[int, float]:
        """A step that also returns the bytes autograd keeps for backward (storages deduplicated,
        parameters excluded), and the loss."""
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
        return sum(storages.values()), loss.item()


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


def _timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def _summary(ts):
    med = statistics.median(ts)
    return {"median_s": med, "min_s": min(ts), "max_s": max(ts), "spread": (max(ts) - min(ts)) / med if med else 0.0}


def _paired(times, a, b):
    rs = [x / y for x, y in zip(times[a], times[b])]
    return {"median": statistics.median(rs), "min": min(rs), "max": max(rs), "per_round": rs}


def run_vocab(V: int, tokens: int, rounds: int, head_rounds: int, seed: int = 0) -> dict:
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

    # ---- part A: every design, embedding + head + loss, forward + backward
    designs, skipped = build(V, order)
    inputs = lambda d: (id_ranks, tgt_ranks) if d.rank_targets else (ids, targets)  # noqa: E731
    for d in designs:  # cheap warm-up
        i, t = inputs(d)
        d.step(i[:1, :64], t[:1, :64])
    act, times, cpu, losses = {}, {d.name: [] for d in designs}, {d.name: [] for d in designs}, {}
    for r in range(rounds):
        for d in designs:
            i, t = inputs(d)
            if r == 0:  # the first round also records what autograd saves (hooks cost ~30 Python calls)
                (act[d.name], losses[d.name]), w, c = _timed(lambda: d.saved_bytes(i, t))
            else:
                losses[d.name], w, c = _timed(lambda: d.step(i, t))
            times[d.name].append(w)
            cpu[d.name].append(c)
            print(f"V={V} round {r + 1}/{rounds} {d.name}: {w:.3f}s wall, {c:.3f}s cpu", flush=True)
        gc.collect()
    base_name = designs[BASE].name
    anchor = next(d.name for d in designs if ANCHOR in d.name)
    ours = next(d.name for d in designs if d.name.startswith(OURS))
    rows = []
    for d in designs:
        ts = times[d.name]
        rows.append({
            "name": d.name, **_summary(ts), "cpu_median_s": statistics.median(cpu[d.name]),
            "tokens_per_s": B * T / statistics.median(ts),
            "speedup_vs_baseline": statistics.median(b / x for b, x in zip(times[base_name], ts)),
            "param_bytes": d.param_bytes(), "buffer_bytes": d.buffer_bytes(),
            "activation_bytes": act[d.name], "loss": losses[d.name],
        })
    del designs
    gc.collect()

    # ---- part B: heads alone on given hidden states (no embedding gradient diluting the ratio)
    cut = CUTOFFS[V]
    h = torch.randn(B * T, D, generator=g).requires_grad_()
    t_ids, t_ranks = targets.reshape(-1), tgt_ranks.reshape(-1)
    pt = nn.AdaptiveLogSoftmaxWithLoss(D, V, cut, div_value=DIV)
    ours_u = AdaptiveSoftmax(D, V, cut, DIV, permutation=order)
    ours_t = AdaptiveSoftmax(D, V, tie_with=AdaptiveInput(V, D, cut, DIV, permutation=order))

    def head_step(module, loss_fn):
        def step():
            loss = loss_fn(module)
            loss.backward()
            h.grad = None
            module.zero_grad(set_to_none=True)
            return loss.item()
        return step

    heads = {
        "nn.AdaptiveLogSoftmaxWithLoss": head_step(pt, lambda m: m(h, t_ranks).loss),
        "tokembed AdaptiveSoftmax": head_step(ours_u, lambda m: m.loss(h, t_ids)),
        "tokembed AdaptiveSoftmax tied to AdaptiveInput": head_step(ours_t, lambda m: m.loss(h, t_ids)),
    }
    for f in heads.values():
        f()
    htimes, hcpu = {k: [] for k in heads}, {k: [] for k in heads}
    for r in range(head_rounds):
        for k, f in heads.items():
            _, w, c = _timed(f)
            htimes[k].append(w)
            hcpu[k].append(c)
        print(f"V={V} heads round {r + 1}/{head_rounds}: " + ", ".join(f"{k} {htimes[k][-1]:.3f}s" for k in heads), flush=True)
    head_rows = [{"name": k, **_summary(htimes[k]), "cpu_median_s": statistics.median(hcpu[k])} for k in heads]

    return {
        "V": V, "D": D, "tokens": B * T, "B": B, "T": T, "cutoffs": cut, "div_value": DIV,
        "rounds": rounds, "head_rounds": head_rounds, "designs": rows, "heads_only": head_rows, "skipped": skipped,
        "ratios": {
            # want >= 10: full-softmax design time / same embedding with tokembed's AdaptiveSoftmax
            "adaptive_softmax_vs_full_softmax": _paired(times, base_name, ours),
            # want >= 0.9: PyTorch's head time / tokembed's, heads alone (wall and CPU time)
            "adaptive_softmax_vs_pytorch_head": _paired(htimes, "nn.AdaptiveLogSoftmaxWithLoss", "tokembed AdaptiveSoftmax"),
            "adaptive_softmax_vs_pytorch_head_cpu": _paired(hcpu, "nn.AdaptiveLogSoftmaxWithLoss", "tokembed AdaptiveSoftmax"),
            "adaptive_softmax_vs_pytorch_design": _paired(times, anchor, ours),
            "tied_vs_untied_head": _paired(htimes, "tokembed AdaptiveSoftmax", "tokembed AdaptiveSoftmax tied to AdaptiveInput"),
        },
        "times_s": times, "cpu_s": cpu, "head_times_s": htimes, "head_cpu_s": hcpu,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="512 tokens, 3 rounds (~2 min)")
    ap.add_argument("--tokens", type=int, default=None, help="B·T tokens per step (default 8192; --quick 512)")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds of part A (one step of every design per round)")
    ap.add_argument("--head-rounds", type=int, default=7, help="timed rounds of part B (the adaptive heads alone)")
    ap.add_argument("--vocab", type=int, nargs="*", default=[131_072, 32_768], choices=sorted(CUTOFFS))
    args = ap.parse_args()
    tokens = args.tokens or (512 if args.quick else 8192)
    results = []
    for V in args.vocab:  # results are written after each V, so a long run that is stopped keeps what it measured
        results.append(run_vocab(V, tokens, args.rounds, args.head_rounds))
        write_report(results, args)


def write_report(results: list, args) -> None:
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
    for res in results:
        for row in res["heads_only"]:
            table.append({
                "V": res["V"], "design": f"head only: {row['name']}", "tokens/s": round(res["tokens"] / row["median_s"]),
                "median s": row["median_s"], "spread": f"{row['spread']:.0%}", "× baseline": None,
                "param MiB": None, "buffer MiB": None, "saved-for-backward MiB": None,
            })
    notes = []
    for res in results:
        r = res["ratios"]
        a, p, pc = r["adaptive_softmax_vs_full_softmax"], r["adaptive_softmax_vs_pytorch_head"], r["adaptive_softmax_vs_pytorch_head_cpu"]
        pd, t = r["adaptive_softmax_vs_pytorch_design"], r["tied_vs_untied_head"]
        notes.append(
            f"- V={res['V']} (B·T={res['tokens']}, cutoffs {res['cutoffs']}, div {DIV}; per-round paired ratios, median [min, max]): "
            f"nn.Embedding + tokembed AdaptiveSoftmax is **{a['median']:.1f}×** [{a['min']:.1f}, {a['max']:.1f}] the full-softmax baseline "
            f"(target ≥ 10 at V=131072, B·T=8192; {res['rounds']} rounds). Heads alone ({res['head_rounds']} rounds): tokembed AdaptiveSoftmax is "
            f"**{p['median']:.2f}×** [{p['min']:.2f}, {p['max']:.2f}] PyTorch's nn.AdaptiveLogSoftmaxWithLoss in wall time, "
            f"{pc['median']:.2f}× [{pc['min']:.2f}, {pc['max']:.2f}] in CPU time (target ≥ 0.9); with the embedding: {pd['median']:.2f}× "
            f"[{pd['min']:.2f}, {pd['max']:.2f}]. The head tied to AdaptiveInput runs at {t['median']:.2f}× the untied one."
        )
    skipped = sorted({s for res in results for s in res["skipped"]})
    if skipped:
        notes.append("- Skipped: " + "; ".join(skipped) + ".")
    notes.append("- Times are one forward+backward step of embedding + head + loss. `param MiB` counts shared (tied) "
                 "parameters once; `buffer MiB` is AdaptiveInput/AdaptiveSoftmax's id<->rank permutation (2·V int64). "
                 "`saved-for-backward MiB` = tensors autograd keeps between forward and backward.")
    write_results("embeddings_quick" if args.quick else "embeddings", {"quick": args.quick, "results": results}, table,
                  title="Embedding and head designs: forward+backward throughput, memory, parameters (issue 3)",
                  notes="\n".join(notes))
    print("\n".join(notes))


if __name__ == "__main__":
    main()
