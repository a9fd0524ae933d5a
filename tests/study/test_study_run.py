"""``tokembed study``: the config (files, presets, bad values), the equal-budget rule, and a tiny study end to end."""

import csv
import json
import math
import re

import pytest
from _chromium import CHROMIUM, NO_CHROMIUM, chromium_check

from tokembed.errors import ConfigError
from tokembed.study import DESIGNS, PRESETS, RESULT_COLUMNS, StudyConfig, design_overrides, steps_for_budget

# -- config ------------------------------------------------------------------------------


def test_defaults_cover_the_issue_grid():
    cfg = StudyConfig()
    assert cfg.tokenizers == ["byte", "bytebpe", "unigram", "wordpiece", "morph"]
    assert cfg.designs == ["untied", "tied", "tied_bias", "factorized", "adaptive"]
    assert cfg.vocab_for("byte") == [None] and cfg.vocab_for("unigram") == [1024]


def test_toml_and_yaml_files_load_the_same_config(tmp_path):
    (tmp_path / "s.toml").write_text(
        '[study]\npreset = "tiny"\ndesigns = ["tied"]\nseeds = [0, 1]\n[study.vocab_size]\ndefault = 300\nbytebpe = 500\n'
    )
    (tmp_path / "s.yaml").write_text("preset: tiny\ndesigns: [tied]\nseeds: [0, 1]\nvocab_size: {default: 300, bytebpe: 500}\n")
    a = StudyConfig.from_file(tmp_path / "s.toml")
    b = StudyConfig.from_file(tmp_path / "s.yaml")
    assert a == b
    assert a.designs == ["tied"] and a.seeds == [0, 1] and a.d_model == PRESETS["tiny"]["d_model"]
    assert a.vocab_for("bytebpe") == [500] and a.vocab_for("unigram") == [300]


def test_file_keys_override_the_cli_preset(tmp_path):
    (tmp_path / "s.toml").write_text("d_model = 48\n")
    cfg = StudyConfig.from_file(tmp_path / "s.toml", preset="quick")
    assert cfg.d_model == 48 and cfg.budget_bytes == PRESETS["quick"]["budget_bytes"]


@pytest.mark.parametrize(
    "text, key",
    [
        ("d_model = 0\n", "d_model"),
        ("d_model = 30\nn_heads = 4\n", "d_model"),
        ('designs = ["tied", "hashed_magic"]\n', "designs"),
        ("budget_bytes = -5\n", "budget_bytes"),
        ("seeds = []\n", "seeds"),
        ("cutoffs = [0.5, 0.25]\n", "cutoffs"),
        ("lr = 2.0\n", "lr"),
        ("[vocab_size]\nbytebpe = 3\n", "vocab_size.bytebpe"),
        ("[vocab_size]\nbytebpe = [300, 300]\n", "vocab_size.bytebpe"),
        ("batch_sise = 3\n", "batch_sise"),
        ('preset = "huge"\n', "preset"),
        ('device = "tpu"\n', "device"),
        ("corpus_bytes = 100\n", "corpus_bytes"),
    ],
)
def test_bad_values_raise_config_error_naming_the_key(tmp_path, text, key):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        StudyConfig.from_file(p)
    assert key in str(e.value) and str(p) in str(e.value)


def test_unparsable_and_unknown_files(tmp_path):
    (tmp_path / "x.toml").write_text("d_model = = 3\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        StudyConfig.from_file(tmp_path / "x.toml")
    (tmp_path / "x.ini").write_text("")
    with pytest.raises(ConfigError, match=r"\.toml, \.yaml"):
        StudyConfig.from_file(tmp_path / "x.ini")
    with pytest.raises(ConfigError, match="not found"):
        StudyConfig.from_file(tmp_path / "missing.toml")


def test_budget_rule_gives_byte_runs_more_steps():
    # 3 bytes per token sees the same bytes in a third of the steps.
    byte = steps_for_budget(budget_bytes=3 * 4096, batch_size=4, seq_len=16, bytes_per_token=1.0)
    bpe = steps_for_budget(budget_bytes=3 * 4096, batch_size=4, seq_len=16, bytes_per_token=3.0)
    assert (byte, bpe) == (192, 64)
    for bpt in (1.0, 2.7, 3.3, 4.9):
        steps = steps_for_budget(budget_bytes=50_000, batch_size=8, seq_len=32, bytes_per_token=bpt)
        assert 50_000 <= steps * 8 * 32 * bpt < 50_000 + 8 * 32 * bpt


def test_every_design_maps_onto_model_config_fields():
    cfg = StudyConfig(rank=8, cutoffs=[0.25, 0.5])
    for d in DESIGNS:
        over = design_overrides(d, cfg, 1000)
        assert over["embedding"] in ("lookup", "factorized", "adaptive") and "head" in over
    assert design_overrides("adaptive", cfg, 1000)["cutoffs"] == [250, 500]


# -- a tiny study end to end --------------------------------------------------------------

WORDS = ("the embedding of a token is a row of the table and the head maps hidden states back to logits "
         "tied heads share the table while untied heads learn their own matrix").split()


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """byte (+ bytebpe when installed) × untied/tied on a ~24 KB corpus of 240 documents, plus an unknown kind."""
    from tokembed.corpus import Corpus
    from tokembed.study import run_study
    from tokembed.tokenizers import KINDS

    root = tmp_path_factory.mktemp("study")
    docs = []
    for i in range(240):
        words = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(12 + i % 9)]
        docs.append(" ".join(words).capitalize() + f". Document {i}.\n")
    (root / "corpus.txt").write_text("\n".join(docs), encoding="utf-8")
    kinds = ["byte"] + [k for k in ("bytebpe",) if k in KINDS] + ["nosuchkind"]
    cfg = StudyConfig.from_name("tiny", tokenizers=kinds, vocab_size={"default": 300, "bytebpe": [280, 320]}, val_fraction=0.2)
    log: list[str] = []
    res = run_study(cfg, Corpus([str(root / "corpus.txt")]), root / "out", log=log.append)
    return res, log, cfg, root


@pytest.mark.slow  # shares one tiny study: ~8 s of CPU on 2 idle cores
def test_tiny_study_writes_results_with_the_schema(tiny_study):
    res, log, cfg, _ = tiny_study
    kinds = [k for k in cfg.tokenizers if k != "nosuchkind"]
    assert [(r["tokenizer"], r["design"]) for r in res.rows] == [(k, d) for k in kinds for _ in cfg.vocab_for(k) for d in cfg.designs]
    if "bytebpe" in kinds:  # one tokenizer per requested V
        assert sorted({r["vocab_size"] for r in res.rows if r["tokenizer"] == "bytebpe"}) == [280, 320]
    with open(res.out_dir / "results.csv", newline="") as f:
        csv_rows = list(csv.DictReader(f))
    assert list(csv_rows[0]) == RESULT_COLUMNS and [r["id"] for r in csv_rows] == [r["id"] for r in res.rows]
    data = json.loads((res.out_dir / "results.json").read_text())
    assert data["columns"] == RESULT_COLUMNS and data["config"]["budget_bytes"] == cfg.budget_bytes
    for r in data["rows"]:
        assert set(r) == set(RESULT_COLUMNS)
        assert 0 < r["bits_per_byte"] < 9 and r["perplexity"] > 1 and 0 <= r["ece"] <= 1
        assert r["total_params"] == r["embedding_params"] + r["head_params"] + r["non_embedding_params"]
    assert set(data["details"]) == {r["id"] for r in res.rows}
    for r in res.rows:
        if r["design"] == "tied":  # tying removes the D×V head matrix (and its bias)
            untied = next(u for u in res.rows if u["tokenizer"] == r["tokenizer"] and u["design"] == "untied"
                          and u["vocab_size"] == r["vocab_size"])
            assert untied["total_params"] - r["total_params"] == r["vocab_size"] * cfg.d_model + r["vocab_size"]


@pytest.mark.slow  # shares one tiny study: ~8 s of CPU on 2 idle cores
def test_equal_budget_and_equal_architecture(tiny_study):
    res, _, cfg, _ = tiny_study
    for r in res.rows:
        batch_bytes = r["bytes_per_token"] * cfg.batch_size * cfg.seq_len
        assert cfg.budget_bytes <= r["bytes_seen"] < cfg.budget_bytes + batch_bytes + 1
        assert r["steps"] == steps_for_budget(budget_bytes=cfg.budget_bytes, batch_size=cfg.batch_size,
                                              seq_len=cfg.seq_len, bytes_per_token=r["bytes_per_token"])
    assert len({r["non_embedding_params"] for r in res.rows}) == 1
    by_kind = {r["tokenizer"]: r for r in res.rows}
    if "bytebpe" in by_kind:  # more bytes per token -> fewer steps for the same bytes
        assert by_kind["bytebpe"]["bytes_per_token"] > 1.0 and by_kind["bytebpe"]["steps"] < by_kind["byte"]["steps"]


@pytest.mark.slow  # shares one tiny study: ~8 s of CPU on 2 idle cores
def test_missing_kind_is_skipped_with_a_message(tiny_study):
    res, log, _, _ = tiny_study
    assert [s["tokenizer"] for s in res.skipped if "tokenizer" in s] == ["nosuchkind"]
    assert any("SKIP tokenizer kind 'nosuchkind'" in line for line in log)
    assert "nosuchkind" in res.report.read_text()


@pytest.mark.slow  # shares one tiny study: ~8 s of CPU on 2 idle cores
def test_report_is_self_contained_and_recommendations_cite_rows(tiny_study):
    res, _, _, _ = tiny_study
    page = res.report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert page.count("data:image/png;base64,") >= 3
    anchors = set(re.findall(r'<tr id="(run-[^"]+)"', page))
    assert anchors == {f"run-{r['id']}" for r in res.rows}
    recs = page[page.index("<h2>Recommendations</h2>"):]
    cited = set(re.findall(r'href="#(run-[^"]+)"', recs))
    assert cited and cited <= anchors
    best = min(res.rows, key=lambda r: r["bits_per_byte"])
    assert f"{best['bits_per_byte']:.4f}" in recs and f'href="#run-{best["id"]}"' in recs


@pytest.mark.slow
@pytest.mark.chromium
@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_real_report_renders_in_chromium(tiny_study, tmp_path):
    res, _, _, _ = tiny_study
    found = chromium_check(res.report, tmp_path)
    assert found["errors"] == [] and found["console"] == [] and found["broken"] == []
    assert found["images"] >= 3 and found["remote"] == 0


@pytest.mark.slow  # shares one tiny study: ~8 s of CPU on 2 idle cores
def test_rerun_reuses_tokenizers_and_runs(tiny_study):
    from tokembed.corpus import Corpus
    from tokembed.study import run_study

    res, _, cfg, root = tiny_study
    log: list[str] = []
    again = run_study(cfg, Corpus([str(root / "corpus.txt")]), res.out_dir, log=log.append, write_report=False)
    assert [r["bits_per_byte"] for r in again.rows] == [r["bits_per_byte"] for r in res.rows]
    n_tokenizers = sum(len(cfg.vocab_for(k)) for k in cfg.tokenizers if k != "nosuchkind")
    assert sum("cached" in line for line in log) == len(res.rows) + n_tokenizers


@pytest.mark.slow  # shares one tiny study: ~8 s of CPU on 2 idle cores
def test_cli_study_and_bad_config(tiny_study, tmp_path, capsys):
    from tokembed.cli import main

    _, _, _, root = tiny_study
    (tmp_path / "bad.toml").write_text('preset = "tiny"\nseq_len = 0\n')
    assert main(["study", "--config", str(tmp_path / "bad.toml"), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seq_len" in err and "bad.toml" in err
    (tmp_path / "ok.toml").write_text('preset = "tiny"\ndesigns = ["tied"]\nval_fraction = 0.2\n')
    assert main(["study", "--config", str(tmp_path / "ok.toml"), str(root / "corpus.txt"), "-o", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert f"report:  {tmp_path / 'o' / 'report.html'}" in out and (tmp_path / "o" / "report.html").is_file()


@pytest.mark.slow  # one more tiny study (~4 s of CPU)
def test_a_failing_run_is_reported_and_the_study_goes_on(tmp_path, monkeypatch):
    import tokembed.study.run as study
    from tokembed.corpus import Corpus
    from tokembed.errors import NonFiniteError

    real = study._execute

    def flaky(spec):
        if spec.design == "tied":
            raise NonFiniteError("loss is nan at step 3 (test)")
        return real(spec)

    monkeypatch.setattr(study, "_execute", flaky)
    (tmp_path / "c.txt").write_text("\n".join(f"Document number {i} says hello to the world.\n" for i in range(200)))
    cfg = StudyConfig.from_name("tiny", val_fraction=0.2)
    log: list[str] = []
    res = study.run_study(cfg, Corpus([str(tmp_path / "c.txt")]), tmp_path / "out", log=log.append)
    assert [r["design"] for r in res.rows] == ["untied"]
    assert res.skipped == [{"run": "byte-tied-V259-s0", "reason": "run byte-tied-V259-s0 failed: NonFiniteError: loss is nan at step 3 (test)"}]
    assert any("FAILED run byte-tied-V259-s0" in line for line in log)
    assert "loss is nan at step 3" in res.report.read_text()


def test_corpus_sample_keeps_whole_documents_deterministically(tmp_path):
    from tokembed.corpus import Corpus
    from tokembed.study.run import _prepare_corpus

    docs = [f"Document {i} line one.\nDocument {i} line two, a little longer.\n" for i in range(400)]
    (tmp_path / "c.txt").write_text("\n".join(docs))
    cfg = StudyConfig.from_name("tiny", corpus_bytes=4096)
    log: list[str] = []
    sample, info = _prepare_corpus(Corpus([str(tmp_path / "c.txt")]), cfg, tmp_path / "a", log.append)
    got = list(sample.documents())
    assert set(got) <= set(docs) and 2048 < info["bytes"] < 8192 and info["sampled"]
    again, _ = _prepare_corpus(Corpus([str(tmp_path / "c.txt")]), cfg, tmp_path / "b", log.append)
    assert list(again.documents()) == got
    (tmp_path / "one.txt").write_text("x" * 10_000 + "\n")  # one huge document: nothing sensible to sample
    whole, info = _prepare_corpus(Corpus([str(tmp_path / "one.txt")]), cfg, tmp_path / "c", log.append)
    assert not info["sampled"] and "too few documents" in log[-1]


@pytest.mark.parametrize("error", [KeyError("band"), "config"])
def test_an_undeclared_failure_stops_the_study_and_names_the_run(tmp_path, monkeypatch, error):
    import tokembed.study.run as study
    from tokembed.corpus import Corpus
    from tokembed.errors import ConfigError

    def broken(spec):
        raise error if isinstance(error, Exception) else ConfigError("lr=7 must be in (0, 1) (test)")

    monkeypatch.setattr(study, "_execute", broken)
    (tmp_path / "c.txt").write_text("\n".join(f"Document number {i} says hello to the world.\n" for i in range(200)))
    cfg = StudyConfig.from_name("tiny", val_fraction=0.2, designs=["tied"])
    if isinstance(error, Exception):  # a bug keeps its type and traceback, with the run named in a note
        with pytest.raises(KeyError) as e:
            study.run_study(cfg, Corpus([str(tmp_path / "c.txt")]), tmp_path / "out", log=lambda m: None)
        assert "in study run byte-tied-V259-s0" in getattr(e.value, "__notes__", ["in study run byte-tied-V259-s0"])
    else:  # a user error is one line naming the run
        with pytest.raises(study.StudyRunError, match="study run byte-tied-V259-s0 failed: ConfigError: lr=7"):
            study.run_study(cfg, Corpus([str(tmp_path / "c.txt")]), tmp_path / "out", log=lambda m: None)


@pytest.mark.slow  # shares one tiny study
def test_timing_table_accounts_for_the_whole_job(tiny_study):
    """results.json and the report carry wall and CPU seconds per phase; the CPU column adds up to the total."""
    res, log, _, _ = tiny_study
    assert json.loads((res.out_dir / "results.json").read_text())["timing"]["phases"]  # (a later test reruns the study)
    timing = res.timing
    phases = {p["phase"]: p for p in timing["phases"]}
    assert {"tokenizer training", "tokenize + shard", "load", "train steps", "eval", "results + report"} <= set(phases)
    assert sum(p["cpu_s"] for p in timing["phases"]) == pytest.approx(timing["total_cpu_s"], abs=0.01)
    assert timing["train_cpu_s"] == phases["train steps"]["cpu_s"] > 0
    assert timing["non_training_cpu_share"] == pytest.approx(1 - timing["train_cpu_s"] / timing["total_cpu_s"], abs=1e-3)
    assert timing["total_wall_s"] >= phases["tokenizer training"]["wall_s"] and timing["workers"] == 1
    assert "Where the time went" in res.report.read_text() and any(line.split("] ", 1)[1].startswith("time: ") for line in log)
    # the study draws every run's frequency bands in its report: no per-run bands.png (matplotlib in every worker)
    assert not list((res.out_dir / "runs").glob("*/bands.png")) and list((res.out_dir / "runs").glob("*/band_stats.json"))


@pytest.mark.slow  # two tiny studies, one of them in 2 spawned workers (~10 s of CPU)
def test_runs_in_workers_while_the_next_tokenizer_trains_give_the_same_rows(tmp_path):
    """The pipelined pool (runs of a tokenizer start while this process trains the next) changes no number."""
    from tokembed.corpus import Corpus
    from tokembed.study import run_study
    from tokembed.tokenizers import KINDS

    if "bytebpe" not in KINDS:
        pytest.skip("needs the bytebpe kind (HF tokenizers)")
    (tmp_path / "c.txt").write_text("\n".join(f"Document {i} says hello to the {WORDS[i % len(WORDS)]} world.\n"
                                              for i in range(300)))
    rows = {}
    for workers in (1, 2):
        cfg = StudyConfig.from_name("tiny", tokenizers=["byte", "bytebpe"], vocab_size={"default": 280},
                                    val_fraction=0.2, workers=workers)
        res = run_study(cfg, Corpus([str(tmp_path / "c.txt")]), tmp_path / f"w{workers}", log=lambda m: None,
                        write_report=False)
        rows[workers] = [{k: v for k, v in r.items() if k not in ("seconds", "train_tokens_per_s", "train_bytes_per_s")}
                         for r in res.rows]
        phases = {p["phase"] for p in res.timing["phases"]}
        assert ("worker start" in phases) == (workers == 2) and res.timing["workers"] == workers
    assert rows[1] == rows[2] and len(rows[1]) == 4
