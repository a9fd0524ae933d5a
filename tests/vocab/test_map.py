"""VocabMap: rows, JSON, padding, and training state that follows the remap (AdamW moments, frozen rows)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
from _vocab_models import SENTENCES, make_checkpoint

from tokembed.artifacts import load_tensors
from tokembed.training.checkpoint import load_checkpoint, optimizer_from_tensors
from tokembed.embeddings.control import embedding_param_groups, freeze_rows
from tokembed.errors import ArtifactError, ConfigError
from tokembed.artifacts import read_json
from tokembed.vocab.apply import load_source, write_output
from tokembed.vocab.engine_file import engine_doc, rebuild, remap_doc
from tokembed.vocab.map import MAP_FILE, NewToken, VocabMap


def test_rows_and_padding():
    m = VocabMap(old_size=3, new_size=4, old_to_new=[2, 0, -1], new_tokens=[NewToken(1, "x", [0, 1]), NewToken(3, "y")],
                 pad_to_multiple_of=8)
    t = torch.tensor([[1.0, 1.0], [3.0, 3.0], [5.0, 5.0]])
    out = m.apply_rows(t)
    assert out.shape == (8, 2)
    assert out[:4].tolist() == [[3.0, 3.0], [2.0, 2.0], [1.0, 1.0], [3.0, 3.0]]  # kept, compose(0,1), kept, mean
    assert out[4:].abs().sum() == 0  # padding rows are zero
    assert m.apply_rows(torch.ones(3, dtype=torch.bool), fill="zeros").tolist()[:4] == [True, False, True, False]


def test_old_padding_rows_filled_first():
    m = VocabMap(old_size=3, new_size=4, old_to_new=[0, 1, 2], new_tokens=[NewToken(3, "x")])
    assert m.rows(6) == 6  # the table had 3 padding rows: the new token takes one, the size stays
    assert m.rows(3) == 4
    with pytest.raises(ArtifactError, match="fewer|rows but the tokenizer"):
        m.rows(2)


def test_json_round_trip(tmp_path):
    m = VocabMap(old_size=2, new_size=2, old_to_new=[1, -1], new_tokens=[NewToken(0, "z", [1], False)], old_fingerprint="a",
                 new_fingerprint="b", operation="x")
    m.save(tmp_path)
    back = VocabMap.load(tmp_path / MAP_FILE)
    assert back.to_dict() == m.to_dict()
    with pytest.raises(ConfigError):
        VocabMap(old_size=2, new_size=2, old_to_new=[0, 0])


def test_mean_cov_like_transformers():
    g = torch.Generator().manual_seed(0)
    old = torch.randn(500, 8, generator=g)
    m = VocabMap(old_size=500, new_size=600, old_to_new=list(range(500)), new_tokens=[NewToken(500 + k, str(k)) for k in range(100)])
    rows = m.apply_rows(old, init="mean-cov")[500:]
    assert torch.allclose(rows.mean(0), old.mean(0), atol=1e-3)  # ε = 1e-9: samples sit at the mean
    assert rows.std(0).max() < 1e-3 and rows.std(0).min() > 0


def _permuted(tok):
    """The same tokenizer with ids in reverse order (every row moves)."""
    perm = list(reversed(range(tok.vocab_size)))
    doc = remap_doc(copy.deepcopy(engine_doc(tok)), perm, tok.vocab.tokens)
    return rebuild(tok, doc)


def test_training_continues_identically_after_remap(bpe_tok, tmp_path):
    """Renumber every id; one more AdamW step on the remapped checkpoint equals the old step, permuted.
    With the moments left in place (not remapped) the step would differ."""
    src = make_checkpoint(bpe_tok, tmp_path / "ck", steps=3)
    new_tok = _permuted(bpe_tok)
    vmap = VocabMap.between(bpe_tok, new_tok)
    assert not vmap.new_tokens and not vmap.dropped
    write_output(load_source(src), tmp_path / "out", vmap, new_tok)
    ids_old = torch.tensor([bpe_tok.encode(SENTENCES[3])[:20]])
    ids_new = torch.tensor([[vmap.new_id(int(i)) for i in ids_old[0]]])
    assert new_tok.encode(SENTENCES[3])[:20] == ids_new[0].tolist()
    results = []
    for folder, ids in ((src, ids_old), (tmp_path / "out", ids_new)):
        model, _, _ = load_checkpoint(folder)
        model.train()
        opt = torch.optim.AdamW(embedding_param_groups(model, lr=1e-2, weight_decay=0.1))
        optimizer_from_tensors(opt, load_tensors(folder / "train_state.safetensors"), read_json(folder / "train_state.json")["optimizer"])
        frozen = freeze_rows(model.embedding, torch.tensor([ids[0, 0].item()]))
        opt.zero_grad()
        model.loss(ids[:, :-1], ids[:, 1:]).backward()
        opt.step()
        frozen.restore()
        results.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    src_rows = vmap.source
    for name in ("embedding.weight", "head.proj.weight", "head.proj.bias"):
        assert torch.allclose(results[1][name], results[0][name][src_rows], atol=1e-6), name
    assert torch.allclose(results[1]["blocks.0.mlp.fc.weight"], results[0]["blocks.0.mlp.fc.weight"], atol=1e-6)


def test_unsupported_design_refused(bpe_tok, tmp_path):
    from tokembed.model import ModelConfig

    src = make_checkpoint(bpe_tok, tmp_path / "ck")
    cfg = read_json(src / "config.json")
    cfg["model"]["embedding"] = "hashed"
    (src / "config.json").write_text(__import__("json").dumps(cfg))
    with pytest.raises(ArtifactError, match="hashed"):
        load_source(src)
    assert ModelConfig  # the design names come from the model module


def test_fewer_rows_than_tokens(bpe_tok, tmp_path):
    import json

    src = make_checkpoint(bpe_tok, tmp_path / "ck")
    cfg = json.loads((src / "config.json").read_text())
    cfg["model"]["vocab_size"] = bpe_tok.vocab_size - 1
    (src / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ArtifactError, match="rows"):
        load_source(src)


@settings(deadline=None)
@given(st.integers(1, 30), st.data())
def test_apply_rows_matches_a_readable_loop(V, data):
    """Random maps (drops, renumbering, new tokens, padding) against a row-by-row reference."""
    keep = data.draw(st.lists(st.booleans(), min_size=V, max_size=V))
    n_new = data.draw(st.integers(0, 4))
    kept = [i for i in range(V) if keep[i]]
    new_size = len(kept) + n_new
    order = data.draw(st.permutations(range(new_size)))
    old_to_new = [-1] * V
    for i, j in zip(kept, order):
        old_to_new[i] = j
    new = [NewToken(j, f"t{j}", [kept[0]] if kept else []) for j in order[len(kept):]]
    m = VocabMap(old_size=V, new_size=new_size, old_to_new=old_to_new, new_tokens=new, pad_to_multiple_of=data.draw(st.integers(1, 8)))
    table = torch.randn(V + data.draw(st.integers(0, 3)), 3)
    out = m.apply_rows(table, init="compose")
    assert out.shape[0] % m.pad_to_multiple_of == 0 and out.shape[0] >= new_size
    for i, j in enumerate(old_to_new):
        if j >= 0:
            assert torch.equal(out[j], table[i])
    for t in new:
        assert torch.allclose(out[t.id], table[t.pieces].double().mean(0).float() if t.pieces else table[:V].double().mean(0).float())
    assert out[new_size:].abs().sum() == 0
