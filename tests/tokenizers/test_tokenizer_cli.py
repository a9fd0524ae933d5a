"""`tokembed tokenizer` train/info/encode/compare for the HF kinds and loaded files."""

import base64
import json

from tokembed.cli import main
from tokembed.tokenizers import load_tokenizer


def _run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_train_info_encode_bytebpe(tmp_path, capsys, small_corpus):
    out = tmp_path / "bb"
    rc, stdout, _ = _run(capsys, "tokenizer", "train", "--kind", "bytebpe", "--vocab-size", "300", "--seed", "3",
                         "--alpha", "0.5", "--option", "pattern=gpt2", "--option", "min_frequency=1", "-o", str(out),
                         str(small_corpus))  # fmt: skip
    assert rc == 0 and "saved bytebpe tokenizer, 300 tokens" in stdout
    tok = load_tokenizer(out)
    assert tok.options["pattern"] == "gpt2" and tok.options["seed"] == 3 and tok.options["alpha"] == 0.5
    rc, stdout, _ = _run(capsys, "tokenizer", "info", str(out), "--json")
    info = json.loads(stdout)
    assert info["fingerprint"] == tok.fingerprint and info["kind"] == "bytebpe" and info["lossless"] is True
    rc, stdout, _ = _run(capsys, "tokenizer", "encode", str(out), "fox <s>", "--json")
    assert json.loads(stdout) == {"ids": tok.encode("fox <s>"), "tokens": tok.tokens("fox <s>")}
    rc, stdout, _ = _run(capsys, "tokenizer", "encode", str(out), "fox <s>", "--json", "--allow-special")
    assert json.loads(stdout)["ids"][-1] == tok.vocab["<s>"]


def test_train_wordpiece_lowercase_flag(tmp_path, capsys, small_corpus):
    rc, _, _ = _run(capsys, "tokenizer", "train", "--kind", "wordpiece", "--vocab-size", "300", "--no-lowercase",
                    "-o", str(tmp_path / "wp"), str(small_corpus))  # fmt: skip
    assert rc == 0
    tok = load_tokenizer(tmp_path / "wp")
    assert tok.options["lowercase"] is False and tok.decode(tok.encode("The Sphinx")) == "The Sphinx"


def test_compare_json_per_language(tmp_path, capsys, small_corpus):
    (tmp_path / "de.txt").write_text("Käse und Grüße\n" * 10, encoding="utf-8")
    assert _run(capsys, "tokenizer", "train", "--kind", "bytebpe", "--vocab-size", "300", "-o", str(tmp_path / "bb"),
                str(small_corpus))[0] == 0  # fmt: skip
    assert _run(capsys, "tokenizer", "train", "--kind", "byte", "-o", str(tmp_path / "byte"))[0] == 0
    rc, stdout, _ = _run(capsys, "tokenizer", "compare", str(tmp_path / "bb"), str(tmp_path / "byte"), "--corpus",
                         f"en={small_corpus}", f"de={tmp_path / 'de.txt'}", "--json")  # fmt: skip
    rows = json.loads(stdout)
    assert rc == 0 and [r["language"] for r in rows] == ["en", "de", "en", "de"]
    assert all(r["round_trip"] == 1.0 and r["unk_rate"] == 0.0 for r in rows)
    rc, stdout, _ = _run(capsys, "tokenizer", "compare", str(tmp_path / "bb"), "--corpus", str(small_corpus))
    assert rc == 0 and "fertility" in stdout.splitlines()[0] and len(stdout.splitlines()) == 2


def test_tiktoken_file_with_pattern(tmp_path, capsys):
    path = tmp_path / "bytes.tiktoken"
    path.write_text("".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(256)))
    rc, stdout, _ = _run(capsys, "tokenizer", "encode", str(path), "hi", "--pattern", "gpt2", "--json")
    assert rc == 0 and json.loads(stdout)["ids"] == [104, 105]
    rc, _, err = _run(capsys, "tokenizer", "info", str(path))
    assert rc == 2 and "pattern=" in err and err.count("\n") == 1
    _run(capsys, "tokenizer", "train", "--kind", "byte", "-o", str(tmp_path / "byte"))
    rc, stdout, _ = _run(capsys, "tokenizer", "compare", str(path), str(tmp_path / "byte"), "--pattern", "gpt2", "--json",
                         "--corpus", str(path))  # fmt: skip
    rows = json.loads(stdout)
    assert rc == 0 and rows[0]["n_tokens"] == rows[1]["n_tokens"]  # 256-byte ranks == byte tokenizer


def test_user_errors_one_line(tmp_path, capsys):
    for argv in (
        ["tokenizer", "info", "bert-base-uncased"],
        ["tokenizer", "train", "--kind", "bytebpe", "--vocab-size", "10", "-o", str(tmp_path / "x")],
        ["tokenizer", "train", "--kind", "bytebpe", "--option", "nokey", "-o", str(tmp_path / "x")],
        ["tokenizer", "compare", str(tmp_path / "missing")],
    ):
        rc, _, err = _run(capsys, *argv)
        assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, argv
