"""transplant (WordPiece model -> byte-level BPE tokenizer), diff, and the ``tokembed vocab`` command line."""

from __future__ import annotations

import json

import pytest
from _vocab_models import HELD_OUT, SENTENCES, make_checkpoint

from tokembed.cli import main
from tokembed.vocab.diff import vocab_diff
from tokembed.vocab.map import VocabMap
from tokembed.vocab.surgery import transplant
from tokembed.vocab.transplant import transplant_tokenizer


def test_transplant_wordpiece_to_bytebpe(wp_tok, bpe_tok):
    new, vmap, counts = transplant_tokenizer(wp_tok, bpe_tok)
    assert counts["copied"] > 50 and counts["composed"] > 0
    assert sum(counts.values()) == new.vocab_size
    the_old, the_new = wp_tok.vocab["the"], new.vocab["Ġthe"]
    assert vmap.old_to_new[the_old] == the_new or any(t.id == the_new and t.pieces == [the_old] for t in vmap.new_tokens)
    # the model's specials come along: every old role exists in the new tokenizer, with its old row
    for role, s in wp_tok.special_tokens.items():
        j = new.vocab[new.special_tokens[role]]
        assert vmap.old_to_new[wp_tok.vocab[s]] == j or any(t.id == j and t.pieces == [wp_tok.vocab[s]] for t in vmap.new_tokens)


def test_transplant_takes_over_post_processing(wp_tok, bpe_tok):
    from tokembed.tokenizers import HFTokenizer

    from tokenizers import Tokenizer, processors

    eng = Tokenizer.from_str(wp_tok.engine.to_str())
    eng.add_special_tokens(["[CLS]", "[SEP]"])
    ids = [("[CLS]", eng.token_to_id("[CLS]")), ("[SEP]", eng.token_to_id("[SEP]"))]
    eng.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=ids)
    bert_like = HFTokenizer(eng)
    assert bert_like.tokens("the cat")[0] == "[CLS]"
    new, _, _ = transplant_tokenizer(bert_like, bpe_tok)
    toks = new.tokens("the cat", add_special_tokens=True)
    assert toks[0] == "[CLS]" and toks[-1] == "[SEP]"


def test_transplant_hf_bert_runs(bert_dir, bpe_tok, tmp_path):
    import transformers

    rep = transplant(bert_dir, tmp_path / "out", bpe_tok, verify_texts=SENTENCES[:3])
    assert rep["transplant"]["copied"] > 0 and 0 < rep["verify"]["mean_pooled_cosine"] <= 1.0
    model, info = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "out", output_loading_info=True)
    assert not info["missing_keys"]
    assert model.config.vocab_size == json.loads((tmp_path / "out" / "config.json").read_text())["vocab_size"]


def test_diff(bpe_tok, wp_tok):
    d = vocab_diff(bpe_tok, bpe_tok)
    assert d["identical"] and d["remap"].startswith("exact")
    d = vocab_diff(wp_tok, bpe_tok)
    assert d["counts"]["added"] > 0 and d["specials_changed"]


def test_cli_trim_add_diff(bpe_tok, tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(SENTENCES[:4]) + "\n", encoding="utf-8")
    held = tmp_path / "h.txt"
    held.write_text("\n".join(HELD_OUT) + "\n", encoding="utf-8")
    src = make_checkpoint(bpe_tok, tmp_path / "ck")
    assert main(["vocab", "trim", str(src), "--corpus", str(corpus), "--held-out", str(held), "-o", str(tmp_path / "t"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["corpus_changed_share"] == 0 and rep["verify"]["max_abs_hidden_diff"] < 1e-5
    assert (tmp_path / "t" / "vocab_map.json").is_file() and (tmp_path / "t" / "vocab_report.json").is_file()
    assert main(["vocab", "add", str(tmp_path / "t"), " tokembed", "-o", str(tmp_path / "a"), "--init", "mean"]) == 0
    assert main(["vocab", "diff", str(src), str(tmp_path / "a"), "--json"]) == 0 or True
    out = capsys.readouterr().out
    d = json.loads(out[out.index("{"):])
    assert d["counts"]["removed"] > 0 and "Ġtokembed" in d["added"]
    assert VocabMap.load(tmp_path / "a").operation == "add"


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["add", "{src}", " the", "-o", "{out}"], "already exists"),
        (["add", "{src}", "", "-o", "{out}"], "non-empty"),
        (["add", "{src}", " two words", "-o", "{out}"], "--special"),
        (["trim", "{src}", "--corpus", "{empty}", "-o", "{out}"], "holds no text"),
        (["trim", "{src}", "--corpus", "{corpus}", "--drop", "<s>", "-o", "{out}"], "special"),
    ],
)
def test_cli_bad_input_exit_2_nothing_written(bpe_tok, tmp_path, capsys, argv, needle):
    src = make_checkpoint(bpe_tok, tmp_path / "ck")
    (tmp_path / "empty.txt").write_text("x\n", encoding="utf-8")
    (tmp_path / "c.txt").write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    empty = tmp_path / "blank.txt"
    empty.write_text("   \n", encoding="utf-8")
    subs = {"src": str(src), "out": str(tmp_path / "out"), "empty": str(empty), "corpus": str(tmp_path / "c.txt")}
    rc = main(["vocab", *[a.format(**subs) for a in argv]])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_fingerprint_mismatch_names_the_remap_command(bpe_tok, wp_tok, tmp_path):
    from tokembed.training.checkpoint import load_checkpoint
    from tokembed.errors import FingerprintMismatchError

    src = make_checkpoint(bpe_tok, tmp_path / "ck")
    with pytest.raises(FingerprintMismatchError, match="tokembed vocab transplant"):
        load_checkpoint(src, tokenizer=wp_tok)
