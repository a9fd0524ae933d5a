"""One rank of the vocab-parallel training checks: ``python _vp_train_worker.py OUT`` under the env:// variables.

For a tied-with-bias and an untied model (V=100 on W ranks: padding on the last rank) it checks, and writes to
``OUT/rank{r}.json``: the gathered checkpoint tensors equal the single-process model's bit for bit (rank 0),
cutting them back gives this rank's shards bit for bit, the clipped gradient norm equals one process's, and
:func:`check_replicas` passes on equal replicas and fails on every rank when one rank's replica differs.
"""

import json
import os
import sys

import torch
import torch.distributed as dist

from _gloo_rank import exit_rank, gloo_group

from tokembed.model import ModelConfig, build_model
from tokembed.training import vocab_parallel as vp
from tokembed.training.checkpoint import model_tensors, optimizer_to_tensors


def check(head: str) -> dict:
    cfg = ModelConfig(vocab_size=100, d_model=16, n_layers=1, n_heads=2, max_seq_len=16, head=head)
    ref, model = build_model(cfg, seed=0), vp.shard_model(build_model(cfg, seed=0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    out, main = {}, dist.get_rank() == 0
    weights, _ = vp.full_state(model, opt, {})  # a collective; the full tensors on rank 0 only
    want = model_tensors(ref)
    out["gathered_exact"] = sorted(weights) == sorted(want) and all(torch.equal(weights[k], want[k]) for k in want) if main else weights is None
    ids = torch.randint(0, 100, (3, 12), generator=torch.Generator().manual_seed(1))  # the same batch on every rank
    for m in (ref, model):
        m.loss(ids[:, :-1], ids[:, 1:]).backward()
    out["norms"] = [torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.01).item(), vp.clip_grad_norm_(model, 0.01).item()]
    opt.step()
    mine_w, mine_o = dict(model.state_dict()), optimizer_to_tensors(opt)[0]
    weights, optim = vp.full_state(model, opt, mine_o)
    if main:  # rank 0 cuts the gathered tensors back into its rows: its own shards and moments, bit for bit
        out["optim_rows"] = sorted({int(v.shape[0]) for v in optim.values() if v.ndim})
        w2, o2 = vp.shard_state(model, opt, weights, optim, where="worker")
        out["roundtrip_exact"] = all(torch.equal(w2[k], mine_w[k]) for k in w2) and all(torch.equal(o2[k], mine_o[k]) for k in mine_o)
    vp.check_replicas(model)  # equal replicas: passes
    if dist.get_rank() == 1:
        with torch.no_grad():
            model.ln_f.weight[0] += 1e-6
    try:
        vp.check_replicas(model)
        out["detected"] = False
    except RuntimeError:
        out["detected"] = True
    return out


def main() -> None:
    out_dir = sys.argv[1]
    with gloo_group() as (rank, _):
        result = {head: check(head) for head in ("tied_bias", "untied")}
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
    exit_rank()
