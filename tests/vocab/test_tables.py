"""Tables that are not one row per id follow the map: adaptive bands/clusters, compressed codecs, padding rows."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from _vocab_models import SENTENCES
from tokembed.artifacts import load_tensors, read_json
from tokembed.embeddings.control import embedding_param_groups
from tokembed.errors import ArtifactError
from tokembed.training.checkpoint import load_checkpoint, optimizer_from_tensors, optimizer_to_tensors, save_checkpoint
from tokembed.vocab.apply import load_source, write_output
from tokembed.vocab.map import VocabMap
from tokembed.vocab.surgery import add, trim
from tokembed.vocab.tables import band_plan

CORPUS = SENTENCES[:4]


def adaptive_checkpoint(tok, folder, *, embedding="adaptive", head="adaptive_tied", steps=2, counts=None, cutoffs=None):
    """A tiny model with adaptive input/softmax, frequency order from the corpus counts, AdamW state."""
    from tokembed.model import ModelConfig, build_model
    from tokembed.training.config import TrainConfig

    if counts is None:
        counts = torch.bincount(torch.tensor([i for s in SENTENCES for i in tok.encode(s)]), minlength=tok.vocab_size)
    mcfg = ModelConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=2, max_seq_len=64, embedding=embedding,
                       head=head, cutoffs=cutoffs, extra={"factor": 2.0})
    model = build_model(mcfg, token_counts=counts, seed=0)
    config = TrainConfig(model=mcfg, max_steps=steps, seq_len=32)
    opt = torch.optim.AdamW(embedding_param_groups(model, lr=1e-2, weight_decay=0.1))
    x = torch.tensor([tok.encode(" ".join(SENTENCES))[:48]])
    for _ in range(steps):
        opt.zero_grad()
        model.loss(x[:, :-1], x[:, 1:]).backward()
        opt.step()
    tensors, meta = optimizer_to_tensors(opt)
    return save_checkpoint(folder, model=model, tokenizer=tok, config=config, train_tensors=tensors,
                           train_state={"step": steps, "optimizer": meta, "config": config.to_dict()})


def _log_probs(folder, text):
    model, tok, _ = load_checkpoint(folder)
    ids = torch.tensor([tok.encode(text)])
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        return ids[0], out.last_hidden[0], model.head.log_prob(out.last_hidden[0]).double(), model


def _expected_after_trim(model, h, vmap):
    """The old adaptive softmax restricted to the kept tokens: each softmax (head, tail k) renormalised over
    the entries that stay. (N, V') in new ids."""
    sm = model.head
    kept_ids = torch.tensor([i for i in range(vmap.old_size) if vmap.old_to_new[i] >= 0])
    rank = sm._rank()
    kept_rank = torch.zeros(vmap.old_size, dtype=torch.bool)
    kept_rank[rank[kept_ids]] = True
    with torch.no_grad():
        z = sm._head_logits(h).double()  # (N, c0 + K)
        clusters_kept = torch.tensor([bool(kept_rank[lo:hi].any()) for lo, hi in sm.bounds[1:]])  # a cluster that lost every token goes
        head_keep = torch.cat([kept_rank[: sm.shortlist_size], clusters_kept])
        head_lp = z - torch.logsumexp(z[:, head_keep], -1, keepdim=True)
        by_rank = [head_lp[:, : sm.shortlist_size]]
        for k, (lo, hi) in enumerate(sm.bounds[1:]):
            t = sm._tail_logits(k, h).double()
            t = t - torch.logsumexp(t[:, kept_rank[lo:hi]], -1, keepdim=True)
            by_rank.append(t + head_lp[:, sm.shortlist_size + k, None])
    full = torch.cat(by_rank, -1)[:, rank]  # (N, V) old id order
    out = torch.empty(h.shape[0], vmap.new_size, dtype=torch.float64)
    out[:, [vmap.old_to_new[i] for i in kept_ids.tolist()]] = full[:, kept_ids]
    return out


@pytest.mark.parametrize("embedding,head", [("adaptive", "adaptive_tied"), ("adaptive", "adaptive"), ("lookup", "adaptive")])
def test_trim_adaptive_exact(bpe_tok, tmp_path, embedding, head):
    """Kept tokens keep their band: the input vectors and the hidden states are bit-identical; the log-probs
    equal the old softmaxes renormalised over the kept entries (dropping tokens changes the normalisers,
    so they cannot equal the old log-probs themselves)."""
    src = adaptive_checkpoint(bpe_tok, tmp_path / "ck", embedding=embedding, head=head)
    out = tmp_path / "out"
    rep = trim(src, out, CORPUS)
    assert rep["verify"]["max_abs_hidden_diff"] == 0.0
    vmap = VocabMap.load(out)
    old_model, _, _ = load_checkpoint(src)
    new_cfg = read_json(out / "config.json")["model"]
    old_cfg = read_json(src / "config.json")["model"]
    assert new_cfg["vocab_size"] == vmap.new_size and len(new_cfg["cutoffs"]) == 2
    ids_old, h_old, lp_old, model_old = _log_probs(src, CORPUS[1])
    ids_new, h_new, lp_new, model_new = _log_probs(out, CORPUS[1])
    assert ids_new.tolist() == [vmap.new_id(int(i)) for i in ids_old]
    assert torch.equal(h_new, h_old)
    torch.testing.assert_close(lp_new, _expected_after_trim(model_old, h_old, vmap), atol=2e-5, rtol=0)
    assert torch.allclose(lp_new.exp().sum(-1), torch.ones(len(ids_new), dtype=torch.float64), atol=1e-5)
    if embedding == "adaptive":  # every kept token's input vector, bit for bit
        keep = vmap.source
        assert torch.equal(model_new.embedding.weight_matrix(), model_old.embedding.weight_matrix()[keep])
        # the new order is the old frequency order restricted to the kept tokens
        old_order = [vmap.new_id(int(i)) for i in model_old.embedding.order if vmap.new_id(int(i)) is not None]
        assert model_new.embedding.order.tolist() == old_order
    assert old_cfg.get("cutoffs") is None  # the source used the default rule; the output records its cutoffs


def test_trim_adaptive_moments_follow(bpe_tok, tmp_path):
    """Each AdamW moment of a remapped parameter is the old moment's rows gathered like the parameter."""
    from tokembed.vocab.apply import _optimizer_param_names
    from tokembed.vocab.tables import adaptive_checkpoint as remap, gather_rows

    src = adaptive_checkpoint(bpe_tok, tmp_path / "ck")
    trim(src, tmp_path / "out", CORPUS, verify_model=False)
    vmap = VocabMap.load(tmp_path / "out")
    cfg = read_json(src / "config.json")["model"]
    _, gathers, _ = remap(cfg, load_tensors(src / "model.safetensors"), vmap, init="compose", seed=0)
    assert sorted(gathers) == ["embedding.bands.0", "embedding.bands.1", "embedding.bands.2", "head.head_bias"]
    names = _optimizer_param_names(cfg, read_json(src / "train_state.json")["optimizer"], where=src)
    st_old, st_new = load_tensors(src / "train_state.safetensors"), load_tensors(tmp_path / "out" / "train_state.safetensors")
    checked = 0
    for key, t in st_old.items():
        name = names[int(key.split(".")[1])]
        if name in gathers and t.dim():
            assert torch.equal(st_new[key], gather_rows(t, gathers[name])), key
            checked += 1
        else:
            assert torch.equal(st_new[key], t), key
    with_state = {names[int(k.split(".")[1])] for k in st_old} & set(gathers)  # a band no token reached has no moments
    assert checked == 2 * len(with_state) and len(with_state) >= 3


def test_add_adaptive_loads_runs_and_keeps_old_rows(bpe_tok, tmp_path):
    src = adaptive_checkpoint(bpe_tok, tmp_path / "ck", head="adaptive")
    rep = add(src, tmp_path / "out", [" tokembed"], verify_texts=SENTENCES[:2])
    vmap = VocabMap.load(tmp_path / "out")
    new = vmap.new_tokens[-1]
    model, tok, _ = load_checkpoint(tmp_path / "out")
    old_model, _, _ = load_checkpoint(src)
    assert new.id in tok.encode(" tokembed")
    assert model.embedding.order[-len(vmap.new_tokens):].tolist() == sorted(t.id for t in vmap.new_tokens)  # the tail
    E_old, E_new = old_model.embedding.weight_matrix(), model.embedding.weight_matrix()
    assert torch.equal(E_new[: vmap.old_size], E_old)  # old tokens keep their vectors bit for bit
    assert torch.equal(model.head.weight_matrix()[: vmap.old_size], old_model.head.weight_matrix())
    # compose: the mean of the pieces' vectors, solved into the last band's width (exact when they lie in its range)
    last = len(model.embedding.bounds) - 1
    _, P = model.embedding.band_weights(last)
    target = E_old[new.pieces].mean(0)
    x = torch.linalg.lstsq(P.double(), target.double()[:, None]).solution[:, 0]
    torch.testing.assert_close(E_new[new.id].double(), P.double() @ x, atol=1e-5, rtol=0)
    assert rep["verify"]["tokenization_agreement"] == 1.0
    lp = model.head.log_prob(torch.randn(3, 32))
    assert torch.allclose(lp.exp().sum(-1), torch.ones(3), atol=1e-5) and lp.shape[-1] == vmap.new_size


def test_adaptive_permutation_keeps_every_band_and_moment(bpe_tok, tmp_path):
    """Renumbering every id moves no band row (the order buffers change); AdamW continues identically."""
    from test_map import _permuted

    src = adaptive_checkpoint(bpe_tok, tmp_path / "ck", head="adaptive")
    new_tok = _permuted(bpe_tok)
    vmap = VocabMap.between(bpe_tok, new_tok)
    write_output(load_source(src), tmp_path / "out", vmap, new_tok)
    old, new = load_tensors(src / "model.safetensors"), load_tensors(tmp_path / "out" / "model.safetensors")
    for k in old:
        if k.endswith(("order", "rank")) or k == "token_counts":
            continue
        assert torch.equal(old[k], new[k]), k
    assert torch.equal(new["embedding.order"], torch.tensor(vmap.old_to_new)[old["embedding.order"]])
    st_old, st_new = (load_tensors(f / "train_state.safetensors") for f in (src, tmp_path / "out"))
    assert all(torch.equal(st_old[k], st_new[k]) for k in st_old)
    ids_old = torch.tensor([bpe_tok.encode(SENTENCES[3])[:20]])
    ids_new = torch.tensor([[vmap.new_id(int(i)) for i in ids_old[0]]])
    losses = []
    for folder, ids in ((src, ids_old), (tmp_path / "out", ids_new)):
        model, _, _ = load_checkpoint(folder)
        opt = torch.optim.AdamW(embedding_param_groups(model, lr=1e-2, weight_decay=0.1))
        optimizer_from_tensors(opt, load_tensors(folder / "train_state.safetensors"), read_json(folder / "train_state.json")["optimizer"])
        model.train()
        opt.zero_grad()
        model.loss(ids[:, :-1], ids[:, 1:]).backward()
        opt.step()
        losses.append(model.loss(ids[:, :-1], ids[:, 1:]).item())
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)


def test_adaptive_refusals(bpe_tok, tmp_path):
    src = adaptive_checkpoint(bpe_tok, tmp_path / "ck", steps=1)
    with pytest.raises(ArtifactError, match="pad-to-multiple-of"):
        trim(src, tmp_path / "out", CORPUS, pad_to_multiple_of=64)
    assert not (tmp_path / "out").exists()
    order = torch.arange(8)
    with pytest.raises(ArtifactError, match="shortlist .*keep no token"):
        band_plan(order, [2, 4], VocabMap.from_keep(old_size=8, keep=[2, 5]))
    plan = band_plan(order, [2, 4], VocabMap.from_keep(old_size=8, keep=[0, 1, 5]))  # band 1 loses every token
    assert plan.cutoffs == [2, 2] and plan.band_sizes == [2, 0, 1]


@pytest.mark.parametrize("head", ["adaptive_tied", "adaptive"])
def test_trim_adaptive_band_left_empty(bpe_tok, tmp_path, head):
    """A band that loses every token stays, empty (a repeated cutoff): the other bands keep their widths and rows,
    the hidden states stay equal, and the empty cluster gets no probability."""
    from tokembed.vocab.trim import trim_tokenizer

    _, m, _ = trim_tokenizer(bpe_tok, CORPUS)
    kept = [i for i in range(bpe_tok.vocab_size) if m.old_to_new[i] >= 0]
    counts = torch.zeros(bpe_tok.vocab_size, dtype=torch.int64)
    counts[kept[:25]], counts[m.dropped[:35]] = 1000, 100  # band 0: kept tokens, band 1: tokens the trim drops
    src = adaptive_checkpoint(bpe_tok, tmp_path / "ck", head=head, counts=counts, cutoffs=[25, 60])
    rep = trim(src, tmp_path / "out", CORPUS)
    assert rep["verify"]["max_abs_hidden_diff"] == 0.0
    vmap = VocabMap.load(tmp_path / "out")
    model, tok, _ = load_checkpoint(tmp_path / "out")
    assert model.config.cutoffs == [25, 25] and model.embedding.band_sizes[1] == 0
    old_model, _, _ = load_checkpoint(src)
    ids_old, h_old, _, _ = _log_probs(src, CORPUS[0])
    ids_new, h_new, lp_new, _ = _log_probs(tmp_path / "out", CORPUS[0])
    assert torch.equal(h_new, h_old)
    torch.testing.assert_close(lp_new, _expected_after_trim(old_model, h_old, vmap), atol=2e-5, rtol=0)
    assert torch.allclose(lp_new.exp().sum(-1), torch.ones(len(ids_new), dtype=torch.float64), atol=1e-5)
    x = torch.tensor([ids_new.tolist()])
    loss = model.loss(x[:, :-1], x[:, 1:])
    assert torch.isfinite(loss) and loss.item() == pytest.approx(-lp_new[:-1].gather(1, x[0, 1:, None]).mean().item(), abs=1e-5)


# -- padding rows ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("head", ["untied", "tied_bias"])
def test_padded_rows_get_zero_probability_and_the_same_loss(bpe_tok, tmp_path, head):
    from _vocab_models import make_checkpoint

    src = make_checkpoint(bpe_tok, tmp_path / "ck", head=head)
    trim(src, tmp_path / "plain", CORPUS, verify_model=False)
    trim(src, tmp_path / "pad", CORPUS, pad_to_multiple_of=64, verify_model=False)
    cfg = read_json(tmp_path / "pad" / "config.json")["model"]
    n = VocabMap.load(tmp_path / "pad").new_size
    assert cfg["vocab_size"] % 64 == 0 and cfg["vocab_size"] > n and cfg["extra"]["vocab_tokens"] == n
    assert "vocab_tokens" not in read_json(tmp_path / "plain" / "config.json")["model"]["extra"]
    plain, tok, _ = load_checkpoint(tmp_path / "plain")
    padded, _, _ = load_checkpoint(tmp_path / "pad")
    ids = torch.tensor([tok.encode(CORPUS[2])])
    with torch.no_grad():
        z = padded(ids).logits
        assert z.shape[-1] == cfg["vocab_size"] and bool((z[..., n:] == float("-inf")).all())
        p = padded.head.log_prob(padded.hidden(ids).last_hidden).exp()
        assert bool((p[..., n:] == 0).all())  # exactly zero: never sampled, never the argmax
        assert int(z.argmax(-1).max()) < n
        torch.testing.assert_close(z[..., :n], plain(ids).logits, atol=1e-6, rtol=0)
        for kw in ({}, {"label_smoothing": 0.1}, {"z_loss": 1e-4}):
            a = padded.loss(ids[:, :-1], ids[:, 1:], **kw)
            b = plain.loss(ids[:, :-1], ids[:, 1:], **kw)
            assert torch.isfinite(a) and a.item() == pytest.approx(b.item(), abs=1e-6), kw
        with pytest.raises(Exception, match="padding rows"):
            padded.loss(ids[:, :-1], torch.full_like(ids[:, 1:], n))


def test_checkpoint_padding_rows_are_filled_first(bpe_tok, tmp_path):
    """A table that already has padding rows takes new tokens there and keeps its size."""
    from _vocab_models import make_checkpoint

    src = make_checkpoint(bpe_tok, tmp_path / "ck")
    add(src, tmp_path / "pad", [" vocabulary"], pad_to_multiple_of=64)
    rows = read_json(tmp_path / "pad" / "config.json")["model"]["vocab_size"]
    add(tmp_path / "pad", tmp_path / "out", [" tokembed"])
    cfg = read_json(tmp_path / "out" / "config.json")["model"]
    vmap = VocabMap.load(tmp_path / "out")
    assert cfg["vocab_size"] == rows and cfg["extra"]["vocab_tokens"] == vmap.new_size
    new_id = vmap.new_tokens[-1].id
    assert new_id < rows
    model, tok, _ = load_checkpoint(tmp_path / "out")
    assert new_id in tok.encode(" tokembed")
    old_w = load_tensors(tmp_path / "pad" / "model.safetensors")["head.proj.weight"]
    new_w = load_tensors(tmp_path / "out" / "model.safetensors")["head.proj.weight"]
    V = vmap.old_size
    assert torch.equal(new_w[:V], old_w[:V]) and not bool((old_w[V:] != 0).any())  # old rows kept; the padding was zero
    assert all(bool((new_w[t.id] != 0).any()) for t in vmap.new_tokens)  # ... and now holds the new tokens' rows
    with torch.no_grad():
        z = model(torch.tensor([tok.encode(" tokembed")])).logits
    assert bool(torch.isfinite(z[..., new_id]).all()) and bool((z[..., vmap.new_size:] == float("-inf")).all())


def test_cli_pad_to_multiple_of(bpe_tok, tmp_path, capsys):
    from _vocab_models import make_checkpoint
    from tokembed.cli import main

    src = make_checkpoint(bpe_tok, tmp_path / "ck", head="tied")
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(CORPUS), encoding="utf-8")
    assert main(["vocab", "trim", str(src), "--corpus", str(corpus), "-o", str(tmp_path / "t"), "--pad-to-multiple-of", "32"]) == 0
    model, tok, _ = load_checkpoint(tmp_path / "t")
    assert model.vocab_size % 32 == 0 and model.head.num_tokens == tok.vocab_size < model.vocab_size
    assert main(["vocab", "trim", str(src), "--corpus", str(corpus), "-o", str(tmp_path / "bad"), "--pad-to-multiple-of", "0"]) == 2
    assert not (tmp_path / "bad").exists()


# -- compressed artifacts -------------------------------------------------------------------------------
CODECS = [("int8", {}), ("int4", {"group_size": 16, "symmetric": False}), ("fp16", {}), ("pq", {"M": 8, "nbits": 6}),
          ("lowrank", {"rank": 8}), ("prune", {"sparsity": 0.75}), ("hash", {"buckets": 32}), ("trim", {}), ("plan", {})]


@pytest.fixture(scope="module")
def compress_ck(bpe_tok, tmp_path_factory):
    from _vocab_models import make_checkpoint

    return make_checkpoint(bpe_tok, tmp_path_factory.mktemp("cmp") / "ck", head="untied", steps=1)


def _compress(ck, out, method, opts, workdir):
    from tokembed.compress.apply import CompressOptions, compress_source
    from tokembed.corpus import Corpus

    f = workdir / "corpus.txt"
    f.write_text("\n".join(SENTENCES), encoding="utf-8")
    corpus = Corpus([str(f)]) if method in ("trim", "plan") else None
    compress_source(ck, CompressOptions(method=method, iters=3, **opts), out_dir=out, corpus=corpus)
    return out


def _per_row(table) -> dict:
    """The stored tensors with one row per id (what must follow the map byte for byte); a trimmed table's
    ``id_map`` points into its compacted rows, so it is renumbered (the rows themselves are compared decoded)."""
    ts, _ = table.state()
    return {k: v for k, v in ts.items() if v.dim() and v.shape[0] == table.shape[0] and k != "id_map"}


@pytest.mark.parametrize("method,opts", CODECS, ids=[m for m, _ in CODECS])
def test_compressed_artifact_trim_and_add(bpe_tok, compress_ck, tmp_path, method, opts):
    from tokembed.compress.artifact import load_compressed

    src = _compress(compress_ck, tmp_path / "c", method, opts, tmp_path)
    rep = trim(src, tmp_path / "t", CORPUS)
    assert rep["source_kind"] == "compressed" and rep["verify"]["max_abs_hidden_diff"] == 0.0
    add(tmp_path / "t", tmp_path / "a", [" tokembed"])
    old = load_compressed(src)
    for out in (tmp_path / "t", tmp_path / "a"):
        new = load_compressed(out, tokenizer=load_source(out).tokenizer)  # bound checks and the fingerprint pass
        vmap = VocabMap.load(out)
        meta = read_json(out / "compression.json")
        assert meta["shape"] == [vmap.new_size, 32] and meta["tokenizer_fingerprint"] == vmap.new_fingerprint
        assert meta["report"]["vocab_change"]["new_size"] == vmap.new_size
        assert meta["input"]["bytes"] == new.input.nbytes and meta["input"]["kind"] == old.input.kind
        if out.name == "a":
            old = load_compressed(tmp_path / "t")
        keep = vmap.source  # (V',) old id per new id, -1 new
        kept = (keep >= 0).nonzero().squeeze(1)
        for part in ("input", "output"):
            a, b = getattr(old, part), getattr(new, part)
            assert (a is None) == (b is None)
            if a is None:
                continue
            assert torch.equal(b.table.gather(kept), a.table.gather(keep[kept]))  # kept rows decode bit for bit
            for name, t in _per_row(a.table).items():  # ... because their stored bytes are the same
                assert torch.equal(_per_row(b.table)[name][kept], t[keep[kept]]), name
            assert bool(torch.isfinite(b.decode()).all())
        if old.output_bias is not None:
            assert torch.equal(new.output_bias[kept], old.output_bias[keep[kept]])


def test_compressed_new_rows_use_the_same_codec(bpe_tok, compress_ck, tmp_path):
    """A new token's stored row is the codec's own encoding of its init (compose: mean of its pieces' decoded rows)."""
    from tokembed.compress.artifact import load_compressed
    from tokembed.compress.quantize import quantize

    src = _compress(compress_ck, tmp_path / "c", "int4", {"group_size": 16, "symmetric": False}, tmp_path)
    add(src, tmp_path / "a", [" tokembed"])
    old, new = load_compressed(src), load_compressed(tmp_path / "a")
    vmap = VocabMap.load(tmp_path / "a")
    tok = vmap.new_tokens[0]
    init = old.input.decode()[tok.pieces].double().mean(0).float()
    want = quantize(init[None], bits=4, group_size=16, symmetric=False)
    q = new.input.table
    assert torch.equal(q.codes[tok.id], want.codes[0]) and torch.equal(q.scale[tok.id], want.scale[0])
    assert torch.equal(q.bias[tok.id], want.bias[0])


def test_compressed_refusals(bpe_tok, compress_ck, tmp_path):
    import shutil

    src = _compress(compress_ck, tmp_path / "c", "int8", {}, tmp_path)
    with pytest.raises(ArtifactError, match="pad-to-multiple-of"):
        trim(src, tmp_path / "t", CORPUS, pad_to_multiple_of=8)
    assert not (tmp_path / "t").exists()
    bare = tmp_path / "bare"
    shutil.copytree(src, bare)
    shutil.rmtree(bare / "tokenizer")
    with pytest.raises(ArtifactError, match="tokenizer"):
        trim(bare, tmp_path / "t", CORPUS)
    assert not (tmp_path / "t").exists()


def test_export_of_a_padded_model(bpe_tok, tmp_path):
    """transformers has no padding mask: the export compares the real tokens' logits and reports the padding rows."""
    from _vocab_models import make_checkpoint
    from tokembed.vocab.export import export_checkpoint

    src = make_checkpoint(bpe_tok, tmp_path / "ck", head="tied")
    add(src, tmp_path / "pad", [" vocabulary"], pad_to_multiple_of=64)
    rep = export_checkpoint(tmp_path / "pad", tmp_path / "hf", format="hf")
    n = VocabMap.load(tmp_path / "pad").new_size
    assert rep["max_abs_logit_diff"] < 1e-4 and rep["padding_rows"] == read_json(tmp_path / "pad" / "config.json")["model"]["vocab_size"] - n


def test_cli_compressed_adaptive_and_hashed(bpe_tok, compress_ck, tmp_path, capsys):
    from _vocab_models import make_checkpoint
    from tokembed.cli import main

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(CORPUS), encoding="utf-8")
    cmp = _compress(compress_ck, tmp_path / "pq", "pq", {"M": 4, "nbits": 5}, tmp_path)
    assert main(["vocab", "trim", str(cmp), "--corpus", str(corpus), "-o", str(tmp_path / "t"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["source_kind"] == "compressed" and rep["rows"][1] == read_json(tmp_path / "t" / "compression.json")["shape"][0]
    ad = adaptive_checkpoint(bpe_tok, tmp_path / "ad", steps=1)
    assert main(["vocab", "add", str(ad), " tokembed", "-o", str(tmp_path / "ad2")]) == 0
    load_checkpoint(tmp_path / "ad2")
    hashed = make_checkpoint(bpe_tok, tmp_path / "h", embedding="hashed")
    capsys.readouterr()
    assert main(["vocab", "trim", str(hashed), "--corpus", str(corpus), "-o", str(tmp_path / "h2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hash" in err[0] and "retrain" in err[0]
    assert not (tmp_path / "h2").exists()


@pytest.mark.parametrize("cutoffs", [[4, 4], [4, 12], [4, 4, 12]])
def test_adaptive_modules_with_empty_bands(cutoffs):
    """Empty bands (repeated cutoffs, or V as the last): no rows, no probability, exact log-probs and loss."""
    from tokembed.embeddings.adaptive import AdaptiveInput
    from tokembed.heads.adaptive import AdaptiveSoftmax

    V, D = 12, 16
    inp = AdaptiveInput(V, D, cutoffs, 2.0, permutation=torch.randperm(V, generator=torch.Generator().manual_seed(1)))
    ids = torch.arange(V)[None]
    torch.testing.assert_close(inp(ids), inp._reference_forward(ids))
    h = torch.randn(5, D, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 3, 5, 11, 7])
    for sm in (AdaptiveSoftmax(D, V, cutoffs, 2.0, permutation=inp.order), AdaptiveSoftmax(D, V, tie_with=inp, head_bias=True)):
        lp = sm.log_prob(h)
        torch.testing.assert_close(lp.exp().sum(-1), torch.ones(5))
        torch.testing.assert_close(lp, sm._reference_log_prob(h), atol=1e-5, rtol=0)
        torch.testing.assert_close(sm.loss(h, t, reduction="none"), -lp.gather(1, t[:, None]).squeeze(1), atol=1e-5, rtol=0)
        z = sm._head_logits(h)
        assert all(bool((z[:, sm.shortlist_size + k] == float("-inf")).all()) for k in sm.empty_clusters)
        assert sm.empty_clusters and torch.isfinite(sm.loss(h, t, z_loss=1e-4))
        sm.loss(h, t).backward()
