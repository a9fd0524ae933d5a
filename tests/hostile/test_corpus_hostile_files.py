"""Hostile corpora (issue 12): one enormous line, and a corpus folder that also holds a model."""

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import tokembed.corpus as corpus_mod
from tokembed.corpus import Corpus, CorpusWarning, iter_file_lines

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_long_line_comes_in_bounded_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_mod, "MAX_LINE_BYTES", 64)
    text = "short\n" + "héllo wörld 東京 " * 40 + "\nend\n" + "é" * 100  # no spaces in the last line
    p = tmp_path / "c.txt"
    p.write_text(text, encoding="utf-8")
    with pytest.warns(CorpusWarning, match=r"c.txt:2: line longer than 64 bytes"):
        lines = list(iter_file_lines(p))
    assert "".join(lines) == text  # nothing lost, nothing added
    assert all(len(ln.encode()) <= 64 for ln in lines)
    assert lines[0] == "short\n" and "end\n" in lines
    assert all(ln.endswith(" ") for ln in lines[1:5])  # cut at spaces
    with pytest.warns(CorpusWarning):
        assert list(Corpus([str(p)]).documents()) == [text]  # chunks of a line join back into its document


def _peak_mb(path: Path) -> float:
    code = (
        "import sys, warnings; warnings.simplefilter('ignore')\n"
        "from tokembed.tokenizers import train_tokenizer\n"
        f"train_tokenizer('bytebpe', [{str(path)!r}], 600, progress=False)\n"
        "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) / 1024)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": SRC}, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return float(r.stdout.split()[-1])


@pytest.mark.slow
def test_one_huge_line_trains_in_bounded_memory(tmp_path):
    """3 MB on one line vs the same words on short lines: peak memory of bytebpe training is about
    the same (before the fix, one line cost ~45x its size: +130 MB here, 4.75 GB for 50 MB)."""
    import random

    rng = random.Random(0)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(3000)]
    seq = [rng.choice(words) for _ in range(500_000)]
    one, many = tmp_path / "one.txt", tmp_path / "many.txt"
    one.write_text(" ".join(seq))
    many.write_text("\n".join(" ".join(seq[i : i + 20]) for i in range(0, len(seq), 20)))
    assert _peak_mb(one) < _peak_mb(many) + 50


def test_corpus_folder_skips_binary_files_with_a_note(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello corpus\nsecond line\n")
    header = b'{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}'
    (folder / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(16))
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 4)
    with pytest.warns(CorpusWarning, match=r"skipping 2 binary file\(s\).*model.safetensors"):
        c = Corpus([str(folder)])
    assert [f.name for f in c.files] == ["notes.txt"]
    assert list(c.texts()) == ["hello corpus", "second line"]


def test_folder_of_only_binary_files_is_a_typed_error(tmp_path):
    from tokembed.errors import EmptyCorpusError

    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}" + bytes(8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(EmptyCorpusError, match="no text files"):
            Corpus([str(tmp_path)])


def test_an_explicit_binary_file_is_still_an_error(tmp_path):
    from tokembed.errors import CorpusError

    p = tmp_path / "model.safetensors"
    p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}" + bytes(8))
    with pytest.raises(CorpusError, match="NUL byte"):
        list(Corpus([str(p)]).texts())


def test_cli_notes_skipped_binary_files_in_one_line(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello corpus\nsecond line with more words\n" * 20)
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}" + bytes(8))
    r = subprocess.run([sys.executable, "-m", "tokembed", "tokenizer", "train", "--kind", "byte", "-o", str(tmp_path / "t"), str(folder)],
                       capture_output=True, text=True, env={"PYTHONPATH": SRC}, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines() == [f"note: {folder}: skipping 1 binary file(s) (NUL bytes or not UTF-8): {folder / 'model.safetensors'}"]
