"""The verification's table of inits (add / transplant): one row per init, measured on the same texts.

The chosen init is the written model; every other init's rows are swapped into the loaded model in
memory. These tests check the table's shape for each kind of model, that a swapped init gives
exactly what writing that init gives, that compose beats mean and random where it must (a model
trained on text using the new word's pieces), and that ``--no-verify`` skips it all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from _vocab_models import HELD_OUT, SENTENCES, hf_model, make_checkpoint, write_hf_tokenizer
from tokembed.cli import main
from tokembed.corpus import Corpus
from tokembed.model import ModelConfig, build_model
from tokembed.tokenizers import train_tokenizer
from tokembed.training.checkpoint import save_checkpoint
from tokembed.training.config import TrainConfig
from tokembed.vocab.map import INITS
from tokembed.vocab.surgery import REPORT_MD, add, transplant, trim

CATS = ["The cats sat on the mat.", "Two cats and a dog looked at the cats.", "The cats ran away from the dog."]


def _table(rep: dict, *, chosen: str, metric: str) -> list[dict]:
    v = rep["verify"]
    assert v["metric"] == metric
    rows = v["inits"]
    assert [r["init"] for r in rows] == list(INITS)
    assert [r["init"] for r in rows if r["chosen"]] == [chosen]
    for r in rows:
        assert -1.0 <= r["mean_pooled_cosine"] <= 1.0 + 1e-6
        if metric == "loss_change":
            assert r["loss_change"] == pytest.approx(r["loss_nats_per_byte"] - v["loss_nats_per_byte"][0])
        else:
            assert "loss_change" not in r
    row = next(r for r in rows if r["chosen"])  # the chosen row is the written model's verification
    assert row["mean_pooled_cosine"] == v["mean_pooled_cosine"]
    if metric == "loss_change":
        assert row["loss_nats_per_byte"] == v["loss_nats_per_byte"][1]
    return rows


def _by_init(rows: list[dict], key: str) -> dict[str, float]:
    return {r["init"]: r[key] for r in rows}


def test_gpt2_table_and_swap_equals_written(gpt2_dir, tmp_path):
    """Causal loss per init; the swapped random/mean rows give exactly what writing that init gives."""
    rep = add(gpt2_dir, tmp_path / "c", [" tokembed"], verify_texts=HELD_OUT + [" tokembed tokembed"], seed=3)
    rows = _table(rep, chosen="compose", metric="loss_change")
    assert len({round(r["loss_change"], 6) for r in rows if r["init"] != "mean-cov"}) == 3  # the inits really differ
    md = (tmp_path / "c" / REPORT_MD).read_text(encoding="utf-8")
    assert "| compose * |" in md and "| random |" in md
    assert json.loads((tmp_path / "c" / "vocab_report.json").read_text())["verify"]["inits"] == rows
    for init in ("random", "mean"):
        other = add(gpt2_dir, tmp_path / init, [" tokembed"], init=init, verify_texts=HELD_OUT + [" tokembed tokembed"], seed=3)
        assert _by_init(_table(other, chosen=init, metric="loss_change"), "loss_change")[init] == \
            pytest.approx(_by_init(rows, "loss_change")[init], abs=1e-6)


def test_llama_padded_untied_table(llama_padded_dir, tmp_path):
    """New rows in the old padding rows, untied head: both tables get each init's rows."""
    rep = add(llama_padded_dir, tmp_path / "out", [" tokembed"], init="random", verify_texts=HELD_OUT + [" tokembed"])
    rows = _table(rep, chosen="random", metric="loss_change")
    assert _by_init(rows, "loss_change")["compose"] != _by_init(rows, "loss_change")["random"]


@pytest.fixture(scope="module")
def bert_mlm_dir(wp_tok, tmp_path_factory):
    """BertForMaskedLM whose tokenizer has [CLS] $A [SEP] and a [MASK] token (tokembed's wordpiece has none)."""
    from tokenizers import Tokenizer, processors

    from tokembed.tokenizers import HFTokenizer

    eng = Tokenizer.from_str(wp_tok.engine.to_str())
    eng.add_special_tokens(["[CLS]", "[SEP]", "[MASK]"])
    cls_sep = [("[CLS]", eng.token_to_id("[CLS]")), ("[SEP]", eng.token_to_id("[SEP]"))]
    eng.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=cls_sep)
    return hf_model("bert", HFTokenizer(eng), tmp_path_factory.mktemp("mlm") / "bert")


def test_bert_masked_lm_table(bert_mlm_dir, tmp_path):
    """A model with a masked-LM head: the masked loss (every position predicted once) per init."""
    rep = add(bert_mlm_dir, tmp_path / "out", ["tokembed"], verify_texts=SENTENCES[:3] + ["tokembed is here"])
    rows = _table(rep, chosen="compose", metric="loss_change")
    assert rep["verify"]["new_token_share"] > 0
    assert all(r["loss_nats_per_byte"] > 0 for r in rows)
    assert len({round(r["loss_change"], 6) for r in rows if r["init"] != "mean-cov"}) == 3


def test_encoder_without_head_table_is_cosine(wp_tok, bpe_tok, tmp_path):
    """An encoder-only model without a head: the cosine of mean-pooled sentence vectors per init."""
    import transformers

    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=wp_tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                  num_attention_heads=2, max_position_embeddings=64, pad_token_id=wp_tok.vocab.special_id("pad"))
    transformers.BertModel(cfg).save_pretrained(tmp_path / "enc")
    write_hf_tokenizer(wp_tok, tmp_path / "enc")
    rep = transplant(tmp_path / "enc", tmp_path / "out", bpe_tok, verify_texts=SENTENCES[:3])
    rows = _table(rep, chosen="compose", metric="mean_pooled_cosine")
    assert "loss_nats_per_byte" not in rep["verify"]
    assert len({round(r["mean_pooled_cosine"], 6) for r in rows}) > 1


def test_transplant_bert_table(bert_mlm_dir, bpe_tok, tmp_path):
    rep = transplant(bert_mlm_dir, tmp_path / "out", bpe_tok, init="mean", verify_texts=SENTENCES[:3])
    _table(rep, chosen="mean", metric="loss_change")
    assert rep["verify"]["new_token_share"] > 0


@pytest.mark.parametrize("head", ["untied", "tied_bias"])
def test_checkpoint_table(bpe_tok, tmp_path, head):
    src = make_checkpoint(bpe_tok, tmp_path / "ck", head=head)
    rep = add(src, tmp_path / "out", [" tokembed"], verify_texts=HELD_OUT + [" tokembed"])
    rows = _table(rep, chosen="compose", metric="loss_change")
    other = add(src, tmp_path / "r", [" tokembed"], init="random", verify_texts=HELD_OUT + [" tokembed"])
    assert _by_init(_table(other, chosen="random", metric="loss_change"), "loss_change")["random"] == \
        pytest.approx(_by_init(rows, "loss_change")["random"], abs=1e-6)


def test_adaptive_checkpoint_table_swap_equals_written(bpe_tok, tmp_path):
    from test_tables import adaptive_checkpoint

    src = adaptive_checkpoint(bpe_tok, tmp_path / "ck", head="adaptive")
    texts = SENTENCES[:2] + [" tokembed here"]
    rows = _table(add(src, tmp_path / "c", [" tokembed"], verify_texts=texts), chosen="compose", metric="loss_change")
    other = _table(add(src, tmp_path / "r", [" tokembed"], init="random", verify_texts=texts), chosen="random", metric="loss_change")
    assert _by_init(other, "loss_change")["random"] == pytest.approx(_by_init(rows, "loss_change")["random"], abs=1e-6)
    assert _by_init(other, "loss_change")["compose"] == pytest.approx(_by_init(rows, "loss_change")["compose"], abs=1e-6)


def test_compressed_table_is_cosine(bpe_tok, tmp_path):
    from tokembed.compress.apply import CompressOptions, compress_source

    compress_source(make_checkpoint(bpe_tok, tmp_path / "ck"), CompressOptions(method="int8"), out_dir=tmp_path / "int8")
    rep = add(tmp_path / "int8", tmp_path / "out", [" tokembed"], verify_texts=[" tokembed and the cat"])
    rows = _table(rep, chosen="compose", metric="mean_pooled_cosine")
    cos = _by_init(rows, "mean_pooled_cosine")
    assert cos["compose"] != cos["random"]


def test_trim_and_no_new_tokens_have_no_table(bpe_tok, tmp_path):
    src = make_checkpoint(bpe_tok, tmp_path / "ck")
    assert "inits" not in trim(src, tmp_path / "t", SENTENCES[:3])["verify"]
    assert not (tmp_path / "t" / REPORT_MD).exists()


def test_cli_prints_table_and_no_verify_skips(bpe_tok, tmp_path, capsys):
    src = make_checkpoint(bpe_tok, tmp_path / "ck")
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(HELD_OUT + [" tokembed"]) + "\n", encoding="utf-8")
    assert main(["vocab", "add", str(src), " tokembed", "-o", str(tmp_path / "a"), "--verify", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert "| compose * |" in out and "| mean-cov |" in out and (tmp_path / "a" / REPORT_MD).is_file()
    assert main(["vocab", "add", str(src), " tokembed", "-o", str(tmp_path / "n"), "--verify", str(corpus), "--no-verify", "--json"]) == 0
    assert "verify" not in json.loads(capsys.readouterr().out)
    assert not (tmp_path / "n" / REPORT_MD).exists()
    assert "verify" not in add(src, tmp_path / "lib", [" tokembed"], corpus_texts=HELD_OUT, verify_model=False)
    new_tok = train_tokenizer("bytebpe", Corpus([str(corpus)]), 280, progress=False)
    new_tok.save(tmp_path / "newtok")
    assert main(["vocab", "transplant", str(src), "--tokenizer", str(tmp_path / "newtok"), "-o", str(tmp_path / "tr"),
                 "--verify", str(corpus), "--no-verify", "--json"]) == 0
    assert "verify" not in json.loads(capsys.readouterr().out)


def _trained_checkpoint(folder: Path, text_dir: Path, seed: int) -> Path:
    """A 1-layer model trained 30 AdamW steps on text that uses ' cats' (pieces ' cat' + 's') a lot."""
    f = text_dir / "tok.txt"
    f.write_text("\n".join(SENTENCES * 3) + "\n", encoding="utf-8")  # the tokenizer never saw ' cats': 2 pieces
    tok = train_tokenizer("bytebpe", Corpus([str(f)]), 300, progress=False)
    assert tok.tokens(" cats") == ["Ġcat", "s"]
    cfg = ModelConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=2, max_seq_len=64, head="untied")
    model = build_model(cfg, seed=seed)
    ids = torch.tensor(tok.encode(" ".join(SENTENCES + CATS * 4)))  # (N,)
    x = torch.stack([ids[i : i + 33] for i in range(0, len(ids) - 33, 16)])  # (B, 33)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 32-wide model: one thread is fastest on a loaded machine
    try:
        for _ in range(30):
            opt.zero_grad()
            model.loss(x[:, :-1], x[:, 1:]).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return save_checkpoint(folder, model=model, tokenizer=tok, config=TrainConfig(model=cfg, max_steps=30, seq_len=32))


@pytest.mark.parametrize("seed", [0, 1])
def test_compose_beats_mean_and_random_on_a_trained_model(tmp_path, seed):
    """The model learned ' cat' 's'; the new token ' cats' composed from those rows keeps most of that.

    Measured (seeds 0-3): compose +0.04..+0.07 nats/byte, random +0.13..+0.20, mean +0.20..+0.23."""
    src = _trained_checkpoint(tmp_path / "ck", tmp_path, seed)
    rep = add(src, tmp_path / "out", [" cats"], verify_texts=CATS)
    loss = _by_init(_table(rep, chosen="compose", metric="loss_change"), "loss_change")
    assert rep["verify"]["new_token_share"] > 0.05  # 4 of 45 tokens
    assert loss["compose"] < 0.7 * loss["random"] and loss["compose"] < 0.7 * loss["mean"]
