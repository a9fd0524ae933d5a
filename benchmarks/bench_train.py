"""Training throughput of tokembed's Transformer vs a plain nanoGPT-style PyTorch reference, and peak memory.

Side by side in one process, interleaved (A B A B ...) so load changes hit both:

1. ``model step``: forward + backward + AdamW step + grad clipping of ``tokembed.model`` (built
   by composition: TokenEmbedding, LearnedPositions, UntiedHead) vs :class:`RefGPT` below — the
   same architecture written as one plain module (nn.Embedding, learned positions, pre-norm blocks,
   causal ``scaled_dot_product_attention``, GELU MLP, untied head with bias). Both have exactly the
   same parameter count (checked) and see the same batches.
2. ``train() loop``: the whole ``tokembed.training.loop.train`` loop (schedule, finiteness check of the
   embedding every step, band statistics at log steps, tokens/s from its own step timer) vs a
   minimal reference loop over the same TokenStream.

Peak memory (child processes, VmHWM): training the model; tokenizing the corpus into
shards (main process and the largest worker).

Target: tokembed / reference tokens/s >= 0.95. ``--quick`` finishes in about 2 minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, write_results

import torch
from torch import nn
from torch.nn import functional as F


class RefBlock(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)
        q, k, v = (t.view(B, T, self.h, D // self.h).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).contiguous().view(B, T, D)
        x = x + self.proj(y)
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class RefGPT(nn.Module):
    """nanoGPT-style reference: one module, no composition, no id validation."""

    def __init__(self, V, d, layers, heads, max_len):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, d), nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(RefBlock(d, heads) for _ in range(layers))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, V)

    def forward(self, ids, targets):
        T = ids.shape[1]
        x = self.wte(ids) + self.wpe.weight[:T]
        for b in self.blocks:
            x = b(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def sizes(quick: bool) -> dict:
    if quick:
        return dict(d_model=128, n_layers=2, n_heads=4, seq_len=128, batch_size=8, steps=10, corpus_mb=2)
    return dict(d_model=256, n_layers=4, n_heads=4, seq_len=256, batch_size=8, steps=30, corpus_mb=20)


def model_step_ratio(s: dict, shards, repeats: int) -> dict:
    from tokembed.model import ModelConfig, build_model
    from tokembed.training.config import TrainConfig
    from tokembed.training.loop import param_groups
    from tokembed.training.shards import TokenStream

    mc = ModelConfig(vocab_size=259, d_model=s["d_model"], n_layers=s["n_layers"], n_heads=s["n_heads"],
                     max_seq_len=s["seq_len"], positional="learned")
    tk = build_model(mc)
    ref = RefGPT(259, s["d_model"], s["n_layers"], s["n_heads"], s["seq_len"])
    n_tk = tk.num_parameters()["total"]
    n_ref = sum(p.numel() for p in ref.parameters())
    assert n_tk == n_ref, (n_tk, n_ref)
    cfg = TrainConfig(model=mc, seq_len=s["seq_len"], batch_size=s["batch_size"], max_steps=1)
    opt_tk = torch.optim.AdamW(param_groups(tk, cfg), betas=(0.9, 0.95))
    opt_ref = torch.optim.AdamW(ref.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.1)
    stream = TokenStream(shards["train"].tokens, batch_size=s["batch_size"], seq_len=s["seq_len"])
    batches = [stream.next() for _ in range(s["steps"])]

    def run(model, opt, fwd):
        t0 = time.perf_counter()
        for x, y in batches:
            loss = fwd(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    run(tk, opt_tk, tk.loss), run(ref, opt_ref, ref)  # warm-up (oneDNN kernels, allocator)
    ratios, t_tk, t_ref = [], [], []
    for _ in range(repeats):
        a = run(tk, opt_tk, tk.loss)
        b = run(ref, opt_ref, ref)
        t_tk.append(a), t_ref.append(b), ratios.append(b / a)
    tokens = s["steps"] * s["batch_size"] * s["seq_len"]
    return {
        "params": n_tk,
        "tokens_per_run": tokens,
        "tokembed_tokens_per_s": tokens / statistics.median(t_tk),
        "reference_tokens_per_s": tokens / statistics.median(t_ref),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "ratios": ratios,
    }


def train_loop_ratio(s: dict, shards, repeats: int, tmp: Path) -> dict:
    from tokembed.model import ModelConfig
    from tokembed.tokenizers import ByteTokenizer
    from tokembed.training.config import TrainConfig
    from tokembed.training.loop import train
    from tokembed.training.shards import TokenStream

    mc = ModelConfig(vocab_size=259, d_model=s["d_model"], n_layers=s["n_layers"], n_heads=s["n_heads"],
                     max_seq_len=s["seq_len"], positional="learned")
    cfg = TrainConfig(model=mc, seq_len=s["seq_len"], batch_size=s["batch_size"], max_steps=s["steps"], warmup_steps=2)

    def ref_loop() -> float:
        torch.manual_seed(0)
        ref = RefGPT(259, s["d_model"], s["n_layers"], s["n_heads"], s["seq_len"])
        opt = torch.optim.AdamW(ref.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.1)
        stream = TokenStream(shards["train"].tokens, batch_size=s["batch_size"], seq_len=s["seq_len"])
        t = 0.0
        for step in range(s["steps"]):
            t0 = time.perf_counter()
            for g in opt.param_groups:  # the same warmup + cosine schedule, inline
                g["lr"] = cfg.lr * (min(1.0, (step + 1) / 2) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / s["steps"]))))
            x, y = stream.next()
            ref(x, y).backward()
            torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            t += time.perf_counter() - t0
        return s["steps"] * s["batch_size"] * s["seq_len"] / t

    def tk_loop(i: int) -> float:
        r = train(cfg, tokenizer=ByteTokenizer(), shards=shards, out_dir=tmp / f"run{i}", progress=False)
        return r.tokens_per_s

    tk_loop(-1), ref_loop()
    a, b = [], []
    for i in range(repeats):
        a.append(tk_loop(i))
        b.append(ref_loop())
    ratios = [x / y for x, y in zip(a, b)]
    return {"tokembed_tokens_per_s": statistics.median(a), "reference_tokens_per_s": statistics.median(b),
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios), "ratios": ratios}


def peak_mb() -> float:
    """This process's own peak RSS: VmHWM from /proc (``ru_maxrss`` would carry the parent's image across fork+exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, args) -> None:
    """Train 5 steps (tokembed's train() or the reference loop) in this child process; print its peak RSS as JSON."""
    from tokembed.training.shards import load_shards

    s = sizes(args.quick)
    tmp = Path(args.tmp)
    before = peak_mb()
    sh = load_shards(tmp / "shards")
    if kind == "train":
        from tokembed.model import ModelConfig
        from tokembed.tokenizers import ByteTokenizer
        from tokembed.training.config import TrainConfig
        from tokembed.training.loop import train

        mc = ModelConfig(vocab_size=259, d_model=s["d_model"], n_layers=s["n_layers"], n_heads=s["n_heads"],
                         max_seq_len=s["seq_len"], positional="learned")
        train(TrainConfig(model=mc, seq_len=s["seq_len"], batch_size=s["batch_size"], max_steps=5), tokenizer=ByteTokenizer(),
              shards=sh, out_dir=tmp / "memrun", progress=False)
    else:
        from tokembed.training.shards import TokenStream

        ref = RefGPT(259, s["d_model"], s["n_layers"], s["n_heads"], s["seq_len"])
        opt = torch.optim.AdamW(ref.parameters())
        stream = TokenStream(sh["train"].tokens, batch_size=s["batch_size"], seq_len=s["seq_len"])
        for _ in range(5):
            ref(*stream.next()).backward()
            opt.step()
            opt.zero_grad()
    out = {"steps": 5, "rss_before_mb": before, "peak_rss_mb": peak_mb()}
    print(json.dumps(out))


SHARDS_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {src!r}); sys.path.insert(0, {bench!r})
from _common import big_corpus
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
from tokembed.corpus import Corpus
from tokembed.training.shards import build_shards
from tokembed.tokenizers import ByteTokenizer
t0 = time.perf_counter()
sh = build_shards(ByteTokenizer(), Corpus([str(big_corpus({mb} * 1_000_000))]), {out!r}, workers={workers})
print(json.dumps({{"seconds": time.perf_counter() - t0, "tokens": len(sh["train"]) + len(sh["val"]),
                  "bytes": sh["train"].n_bytes + sh["val"].n_bytes, "torch_imported": "torch" in sys.modules,
                  "peak_rss_mb": peak_mb(),
                  "largest_child_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}}))
"""


def run_child(kind: str, args, tmp: Path) -> dict:
    if kind == "shards":  # a bare interpreter: the tokenizer workers must not inherit this script's torch import
        here = Path(__file__).resolve().parent
        code = SHARDS_CHILD.format(src=str(here.parent / "src"), bench=str(here), mb=sizes(args.quick)["corpus_mb"],
                                   out=str(tmp / "shards"), workers=args.workers)
        cmd = [sys.executable, "-c", code]
    else:
        cmd = [sys.executable, __file__, "--child", kind, "--tmp", str(tmp), "--threads", str(args.threads)]
        cmd += ["--quick"] if args.quick else []
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, about 2 minutes")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None, help="tokenizing processes (default: CPU count)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared CPU more threads mostly add noise; 0 = torch's default)")
    ap.add_argument("--child", choices=["train", "ref"], help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        child(args.child, args)
        return
    s = sizes(args.quick)
    repeats = args.repeats or 5
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        mem_shards = run_child("shards", args, tmp)  # also builds tmp/shards for the rest
        mem_train = run_child("train", args, tmp)
        mem_ref = run_child("ref", args, tmp)
        from tokembed.training.shards import load_shards

        shards = load_shards(tmp / "shards")
        step = model_step_ratio(s, shards, repeats)
        loop = train_loop_ratio(s, shards, repeats, tmp)
    payload = {"sizes": s, "repeats": repeats, "torch_threads": torch.get_num_threads(), "model_step": step,
               "train_loop": loop, "memory": {"tokenize_shards": mem_shards, "train": mem_train, "reference_train": mem_ref}}
    rows = [
        {"measure": "model step (fwd+bwd+AdamW) tokens/s", "tokembed": step["tokembed_tokens_per_s"],
         "reference": step["reference_tokens_per_s"], "ratio (median)": step["ratio_median"],
         "ratio min-max": f"{step['ratio_min']:.3f}-{step['ratio_max']:.3f}"},
        {"measure": "train() loop tokens/s", "tokembed": loop["tokembed_tokens_per_s"],
         "reference": loop["reference_tokens_per_s"], "ratio (median)": loop["ratio_median"],
         "ratio min-max": f"{loop['ratio_min']:.3f}-{loop['ratio_max']:.3f}"},
        {"measure": "peak RSS training, MB", "tokembed": mem_train["peak_rss_mb"], "reference": mem_ref["peak_rss_mb"],
         "ratio (median)": mem_ref["peak_rss_mb"] / mem_train["peak_rss_mb"], "ratio min-max": ""},
        {"measure": f"tokenize {mem_shards['bytes'] / 1e6:.1f} MB into shards: peak RSS main / largest worker, MB",
         "tokembed": mem_shards["peak_rss_mb"], "reference": mem_shards["largest_child_rss_mb"], "ratio (median)": None,
         "ratio min-max": f"{mem_shards['seconds']:.1f} s, {mem_shards['tokens'] / mem_shards['seconds']:,.0f} tokens/s"},
    ]
    notes = (f"Model: D={s['d_model']}, {s['n_layers']} layers, {s['n_heads']} heads, T={s['seq_len']}, B={s['batch_size']}, "
             f"V=259 (bytes), learned positions, untied head; {step['params']:,} parameters in both. "
             f"{repeats} interleaved repeats of {s['steps']} steps; ratio = tokembed / reference tokens/s (target >= 0.95). "
             f"torch threads: {torch.get_num_threads()}. Memory rows: peak RSS (VmHWM) of child processes; the last row's "
             "'reference' column is the largest tokenizer worker (ru_maxrss, an upper bound), not an anchor.")
    write_results("train-quick" if args.quick else "train", payload, rows, title="Training throughput and memory", notes=notes)
    print(json.dumps({"model_step_ratio": step["ratio_median"], "train_loop_ratio": loop["ratio_median"],
                      "machine": machine()}, indent=1))


if __name__ == "__main__":
    main()
