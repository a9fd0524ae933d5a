"""The first hour (issue 12): text without blank lines, a train folder that already holds a run,
``eval --max-tokens`` as a hard cap. Every input is built here."""

import json
import warnings

import pytest

from tokembed.cli import main
from tokembed.corpus import GROUP_LINES, Corpus
from tokembed.tokenizers import ByteTokenizer
from tokembed.training.evaluate import evaluate
from tokembed.training.shards import build_shards

from _torch_threads import single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")

CONFIG = ("seq_len = 16\nbatch_size = 4\nmax_steps = 3\nwarmup_steps = 1\nlr = 0.01\n"
          "[model]\nd_model = 16\nn_layers = 1\nn_heads = 2\nmax_seq_len = 32\n")


def verses(tmp_path, n=300):
    """One verse per line, no blank line anywhere (like kjv.txt)."""
    p = tmp_path / "verses.txt"
    p.write_text("".join(f"{i // 30 + 1}:{i % 30 + 1} And the fox {i * 7} jumped over the dog.\n" for i in range(n)))
    return p


def test_text_without_blank_lines_is_cut_into_line_groups(tmp_path):
    with pytest.warns(UserWarning, match=f"no blank lines.*groups of {GROUP_LINES} lines"):
        docs = list(Corpus([str(verses(tmp_path))]).documents())
    assert [d.count("\n") for d in docs] == [GROUP_LINES] * (300 // GROUP_LINES) + [300 % GROUP_LINES]


def test_huge_block_in_a_file_with_paragraphs_is_bounded(tmp_path):
    from tokembed.corpus import DOC_MAX_BYTES

    p = tmp_path / "c.txt"
    p.write_text("intro\n\n" + "x" * 100 + "\n" + ("word " * 20 + "\n") * 2000)
    with pytest.warns(UserWarning, match="cut into documents"):
        docs = list(Corpus([str(p)]).documents())
    assert len(docs) > 2 and max(len(d) for d in docs) <= DOC_MAX_BYTES + 200


def test_validation_split_is_never_empty(tmp_path):
    docs = ["one small document\n", "another one\n", "a third\n"]
    with pytest.warns(UserWarning, match="last document is held out"):
        s = build_shards(ByteTokenizer(), docs, tmp_path / "d", val_fraction=0.01, workers=1)
    assert s["val"].n_docs == 1 and s["train"].n_docs == 2


def test_train_on_verses_writes_a_held_out_eval_and_says_why(tmp_path, capsys):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG)
    rc = main(["train", "--config", str(cfg), "-o", str(tmp_path / "run"), str(verses(tmp_path)), "--workers", "1",
               "--quiet", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["val_bits_per_byte"] > 0 and (tmp_path / "run" / "eval.json").is_file()


def test_train_on_an_existing_run_refuses_then_force_replaces(tmp_path, capsys):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG)
    args = ["train", "--config", str(cfg), "-o", str(tmp_path / "run"), str(verses(tmp_path)), "--workers", "1", "--quiet"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(args) == 0
        capsys.readouterr()
        before = (tmp_path / "run" / "checkpoint" / "model.safetensors").read_bytes()
        assert main(args + ["lr=0.02"]) == 2
        err = capsys.readouterr().err
        assert "already holds a run" in err and "--resume" in err and "--force" in err
        assert (tmp_path / "run" / "checkpoint" / "model.safetensors").read_bytes() == before
        assert main(args + ["lr=0.02", "--force"]) == 0
    assert (tmp_path / "run" / "checkpoint" / "model.safetensors").read_bytes() != before
    assert not (tmp_path / "run" / "checkpoint.prev").exists()  # the old run is not kept as a fallback


def test_eval_max_tokens_is_a_hard_cap(tmp_path):
    from tokembed.model import ModelConfig, build_model

    model = build_model(ModelConfig(vocab_size=259, d_model=16, n_layers=1, n_heads=2, max_seq_len=32))
    doc = "one long document without any break " * 40  # 1,480 bytes = one document of 1,480 tokens
    r = evaluate(model, ByteTokenizer(), [doc], seq_len=16, max_tokens=100)
    assert r.n_tokens == 99 and r.n_bytes == 99
    r = evaluate(model, ByteTokenizer(), ["short\n", doc], seq_len=16, max_tokens=100)
    assert r.n_tokens == 7 and r.n_bytes == 6  # whole documents when one fits


def test_study_on_text_without_blank_lines_runs(tmp_path):
    """``tokembed study --quick kjv.txt`` died with 'cannot convert float NaN to integer' (empty held-out split)."""
    from tokembed.study import StudyConfig, run_study

    cfg = StudyConfig.from_name("tiny", tokenizers=["byte"], designs=["tied"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_study(cfg, Corpus([str(verses(tmp_path, n=400))]), tmp_path / "study", log=lambda m: None,
                        write_report=False)
    assert res.rows and all(r["bits_per_byte"] > 0 for r in res.rows)


def test_study_on_a_one_document_corpus_is_one_line(tmp_path, capsys):
    p = tmp_path / "one.txt"
    p.write_text("a single line of text that is all there is\n")
    assert main(["study", "--quick", str(p), "-o", str(tmp_path / "s"), "--quiet"]) == 2
    assert "holds 1 document" in capsys.readouterr().err
