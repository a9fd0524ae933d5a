"""One ``--quiet`` and one ``--json`` on every command (issue 12, "Progress"), table-driven over the parser,
and what they do: JSON on stdout, nothing on stderr but errors."""

import json

import pytest

from tokembed.cli import COMMANDS, build_parser, leaf_parsers, main


def leaves():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in COMMANDS:
        for leaf in leaf_parsers(sub.choices[name]):
            yield leaf.prog.removeprefix("tokembed ").removeprefix(parser.prog + " "), leaf


LEAVES = dict(leaves())


def test_every_command_is_in_the_table():
    assert {"train", "eval", "embed", "study", "inspect", "neighbors", "compress", "tokenizer train",
            "tokenizer compare", "vectors info", "vectors convert"} <= set(LEAVES)


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_quiet_and_json_everywhere(name):
    opts = LEAVES[name]._option_string_actions
    assert "--quiet" in opts, f"tokembed {name} has no --quiet"
    assert "--json" in opts, f"tokembed {name} has no --json"


def test_inspect_help_does_not_claim_a_default_corpus(capsys):
    with pytest.raises(SystemExit):
        main(["inspect", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    corpus_help = out[out.index("--corpus CORPUS [CORPUS ...] text"):]
    assert "default: the built-in corpus" not in corpus_help[:300] and "frequency sections are left out" in corpus_help


def test_tokenizer_train_json_and_quiet(tmp_path, capsys):
    c = tmp_path / "c.txt"
    c.write_text("hello world\n\nthe quick brown fox\n")
    assert main(["tokenizer", "train", "--kind", "bytebpe", "--vocab-size", "400", str(c), "-o", str(tmp_path / "t"),
                 "--json", "--quiet"]) == 0
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert out["kind"] == "bytebpe" and out["vocab_size"] < 400 and cap.err == ""  # the "note: asked for" is quiet


def test_study_json_prints_the_results(tmp_path, capsys, monkeypatch):
    import tokembed.study as study
    from tokembed.study.run import StudyResult

    def fake(config, corpus, out_dir, *, log=None):
        log("a progress line")
        return StudyResult(out_dir=tmp_path, rows=[{"run_id": "r0", "bits_per_byte": 2.5}], details={}, skipped=[],
                           config=config, corpus={}, seconds=1.0, report=tmp_path / "report.html")

    monkeypatch.setattr(study, "run_study", fake)
    assert main(["study", "--quick", "--json", "-o", str(tmp_path)]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["rows"][0]["bits_per_byte"] == 2.5 and "a progress line" in cap.err
    assert main(["study", "--quick", "--json", "--quiet", "-o", str(tmp_path)]) == 0
    assert capsys.readouterr().err == ""


def test_warnings_are_one_line_and_quiet_silences_them(capsys):
    import warnings

    from tokembed.cli import _output_mode

    with _output_mode("train", quiet=False):
        warnings.warn("something to say")
    assert capsys.readouterr().err == "tokembed train: warning: something to say\n"
    with _output_mode("train", quiet=True):
        warnings.warn("something to say")
    assert capsys.readouterr().err == ""


def test_quiet_disables_progress_bars_of_an_imported_tqdm():
    from tqdm.auto import tqdm

    from tokembed.cli import _output_mode

    with _output_mode("compress", quiet=True):
        assert tqdm(total=3).disable
    assert not tqdm(total=3, file=open("/dev/null", "w")).disable
