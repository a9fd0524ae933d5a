"""Resumable shard building: an interrupted build keeps one record per finished input file; the rerun skips
those files and writes the same bytes as an uninterrupted build; stale records are redone, hostile ones refused."""

import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tokembed.corpus import Corpus
from tokembed.errors import ArtifactError
from tokembed.tokenizers import ByteTokenizer
from tokembed.training import shard_progress
from tokembed.training import shards as shards_mod
from tokembed.training.shard_progress import Staging, staging_path
from tokembed.training.shards import build_shards

SRC = str(Path(__file__).resolve().parents[2] / "src")
OUTPUTS = ("train.bin", "train.docs.bin", "train.json", "val.bin", "val.docs.bin", "val.json")


class Interrupted(Exception):
    pass


def make_corpus(folder: Path, n_files: int = 5, docs_per_file: int = 30) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n_files):
        p = folder / f"part{k}.txt"
        p.write_text("\n".join(f"file {k} doc {i}: naïve café {i * k}\nsecond line {i}\n" for i in range(docs_per_file)))
        paths.append(p)
    return paths


def outputs(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in OUTPUTS}


def build(corpus_dir: Path, out: Path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_shards(ByteTokenizer(), Corpus([str(corpus_dir)]), out, val_fraction=kw.pop("val_fraction", 0.2), **kw)


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(shards_mod, "BLOCK_DOCS", 7)  # several blocks per file: the pool and the back-pressure run


@pytest.fixture
def files_read(monkeypatch):
    """The input files the build reads documents from (in this process)."""
    seen: list[str] = []
    real = Corpus.file_documents

    def spy(self, path):
        seen.append(Path(path).name)
        return real(self, path)

    monkeypatch.setattr(Corpus, "file_documents", spy)
    return seen


def interrupt_after_records(monkeypatch, n: int) -> None:
    """Make the build fail right after its n-th progress record (as a kill between two files would)."""
    real, count = Staging.record, [0]

    def record(self, *a, **kw):
        real(self, *a, **kw)
        count[0] += 1
        if count[0] == n:
            raise Interrupted

    monkeypatch.setattr(Staging, "record", record)


def test_one_and_two_workers_write_the_same_bytes(tmp_path, small_blocks):
    make_corpus(tmp_path / "c")
    build(tmp_path / "c", tmp_path / "w1", workers=1)
    build(tmp_path / "c", tmp_path / "w2", workers=2)
    assert outputs(tmp_path / "w1") == outputs(tmp_path / "w2")
    assert not staging_path(tmp_path / "w2").exists()  # published: no staging folder left


def test_interrupted_build_skips_finished_files_and_matches(tmp_path, monkeypatch, small_blocks, files_read):
    make_corpus(tmp_path / "c")
    build(tmp_path / "c", tmp_path / "ref", workers=1)
    files_read.clear()
    with monkeypatch.context() as m:
        interrupt_after_records(m, 3)
        with pytest.raises(Interrupted):
            build(tmp_path / "c", tmp_path / "s", workers=2)
    assert not (tmp_path / "s").exists()  # the output folder appears only when complete
    staging = staging_path(tmp_path / "s")
    assert sorted(p.name for p in (staging / "progress").iterdir()) == ["000000.json", "000001.json", "000002.json"]
    files_read.clear()
    build(tmp_path / "c", tmp_path / "s", workers=2)
    assert files_read == ["part3.txt", "part4.txt"]  # files 0-2 were not read again
    assert outputs(tmp_path / "s") == outputs(tmp_path / "ref")
    assert not staging.exists()


PROBE = """
import os, signal, sys
from tokembed.corpus import Corpus
from tokembed.tokenizers import ByteTokenizer
from tokembed.training import shards

writes = [0]
real = shards._SplitWriter.write

def write(self, part):  # SIGKILL in the middle of a file: the split files hold more than the last record says
    real(self, part)
    writes[0] += 1
    if writes[0] == int(sys.argv[3]):
        self.f.flush(); self.fi.flush()
        os.kill(os.getpid(), signal.SIGKILL)

if __name__ == "__main__":
    shards.BLOCK_DOCS = 7
    shards._SplitWriter.write = write
    shards.build_shards(ByteTokenizer(), Corpus([sys.argv[1]]), sys.argv[2], val_fraction=0.2, workers=2)
"""


def test_sigkill_mid_file_then_rerun_gives_identical_shards(tmp_path, monkeypatch, small_blocks, files_read):
    make_corpus(tmp_path / "c")
    build(tmp_path / "c", tmp_path / "ref", workers=1)
    (tmp_path / "probe.py").write_text(PROBE)
    # 5 files x 30 docs in blocks of 7: 5 blocks per file, 2 splits each -> write 25 is in file 2
    p = subprocess.run([sys.executable, str(tmp_path / "probe.py"), str(tmp_path / "c"), str(tmp_path / "s"), "25"],
                       env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    staging = staging_path(tmp_path / "s")
    records = sorted(p.name for p in (staging / "progress").iterdir())
    assert records == ["000000.json", "000001.json"]
    rec = json.loads((staging / "progress" / "000001.json").read_text())
    assert (staging / "train.bin").stat().st_size > rec["splits"]["train"]["tokens"][1] * 2  # torn file 2 on disk
    files_read.clear()
    build(tmp_path / "c", tmp_path / "s", workers=2)
    assert files_read == ["part2.txt", "part3.txt", "part4.txt"]
    assert outputs(tmp_path / "s") == outputs(tmp_path / "ref")


def test_a_changed_input_file_is_encoded_again(tmp_path, monkeypatch, files_read):
    paths = make_corpus(tmp_path / "c")
    with monkeypatch.context() as m:
        interrupt_after_records(m, 4)
        with pytest.raises(Interrupted):
            build(tmp_path / "c", tmp_path / "s", workers=1)
    with open(paths[1], "a") as f:  # file 1 grows: its record (and the document indices after it) are stale
        f.write("\n\na new document in file 1\n")
    build(tmp_path / "c", tmp_path / "ref", workers=1)
    files_read.clear()
    build(tmp_path / "c", tmp_path / "s", workers=1)
    assert files_read == ["part1.txt", "part2.txt", "part3.txt", "part4.txt"]
    assert outputs(tmp_path / "s") == outputs(tmp_path / "ref")


def test_same_size_and_mtime_but_other_bytes_is_caught_by_the_hash(tmp_path, monkeypatch, files_read):
    paths = make_corpus(tmp_path / "c", n_files=3)
    with monkeypatch.context() as m:
        interrupt_after_records(m, 2)
        with pytest.raises(Interrupted):
            build(tmp_path / "c", tmp_path / "s", workers=1)
    st = paths[0].stat()
    data = paths[0].read_bytes()
    paths[0].write_bytes(data.replace(b"doc 1:", b"doc X:"))  # same size
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    files_read.clear()
    build(tmp_path / "c", tmp_path / "s", workers=1)
    assert files_read == ["part0.txt", "part1.txt", "part2.txt"]
    build(tmp_path / "c", tmp_path / "ref", workers=1)
    assert outputs(tmp_path / "s") == outputs(tmp_path / "ref")


def test_held_out_last_document_is_redone_when_the_corpus_grows(tmp_path, monkeypatch, files_read):
    # one document per file and val_fraction 0.01: none hashes into validation, so the corpus's last one is held out
    paths = make_corpus(tmp_path / "c", n_files=3, docs_per_file=1)
    with monkeypatch.context() as m:
        m.setattr(Staging, "publish", lambda self: (_ for _ in ()).throw(Interrupted()))
        with pytest.raises(Interrupted):
            build(tmp_path / "c", tmp_path / "s", workers=1, val_fraction=0.01)
    assert json.loads((staging_path(tmp_path / "s") / "progress" / "000002.json").read_text())["forced"]
    (tmp_path / "c" / "part3.txt").write_text("a fourth file, now the last document\n")
    build(tmp_path / "c", tmp_path / "ref", workers=1, val_fraction=0.01)
    files_read.clear()
    build(tmp_path / "c", tmp_path / "s", workers=1, val_fraction=0.01)
    assert files_read == ["part2.txt", "part3.txt"]  # part2's last document is no longer held out
    assert outputs(tmp_path / "s") == outputs(tmp_path / "ref")
    assert len(paths) == 3


def _staged(tmp_path, monkeypatch) -> Path:
    if not (tmp_path / "c").exists():
        make_corpus(tmp_path / "c", n_files=3)
    with monkeypatch.context() as m:
        interrupt_after_records(m, 2)
        with pytest.raises(Interrupted):
            build(tmp_path / "c", tmp_path / "s", workers=1)
    return staging_path(tmp_path / "s")


@pytest.mark.parametrize("edit, match", [
    (lambda r: r["splits"]["train"].update(file="../../outside.bin"), "never a path outside"),
    (lambda r: r["splits"]["val"].update(file="/etc/passwd"), "never a path outside"),
    (lambda r: r.update(index=7), "index 7"),
    (lambda r: r["splits"]["train"].update(tokens=[5, 3]), "not a range"),
    (lambda r: r["splits"]["train"].update(tokens=[0, 10**12]), "starts at 0"),
    (lambda r: r.update(docs="all"), "expected list"),
])
def test_hostile_records_get_a_typed_error(tmp_path, monkeypatch, edit, match):
    staging = _staged(tmp_path, monkeypatch)
    p = staging / "progress" / "000001.json"
    rec = json.loads(p.read_text())
    edit(rec)
    p.write_text(json.dumps(rec))
    with pytest.raises(ArtifactError, match=match):
        build(tmp_path / "c", tmp_path / "s", workers=1)
    assert not (tmp_path / "s").exists()


def test_links_in_the_staging_folder_are_refused(tmp_path, monkeypatch):
    staging = _staged(tmp_path, monkeypatch)
    outside = tmp_path / "outside.json"
    rec = staging / "progress" / "000001.json"
    outside.write_text(rec.read_text())
    rec.unlink()
    rec.symlink_to(outside)
    with pytest.raises(ArtifactError, match="symbolic link"):
        build(tmp_path / "c", tmp_path / "s", workers=1)
    rec.unlink()
    (staging / "train.bin").rename(tmp_path / "victim.bin")  # a split file that links outside: never written through
    (staging / "train.bin").symlink_to(tmp_path / "victim.bin")
    victim = (tmp_path / "victim.bin").read_bytes()
    build(tmp_path / "c", tmp_path / "ref", workers=1)
    build(tmp_path / "c", tmp_path / "s", workers=1)
    assert (tmp_path / "victim.bin").read_bytes() == victim
    assert outputs(tmp_path / "s") == outputs(tmp_path / "ref")
    staging = _staged(tmp_path, monkeypatch)
    os.rename(staging / "progress", tmp_path / "records")
    (staging / "progress").symlink_to(tmp_path / "records")
    with pytest.raises(ArtifactError, match="is a link"):
        build(tmp_path / "c", tmp_path / "s", workers=1)
    shutil.rmtree(staging)
    staging = _staged(tmp_path, monkeypatch)
    os.rename(staging, tmp_path / "elsewhere")
    staging.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ArtifactError, match="is a link or a file"):
        build(tmp_path / "c", tmp_path / "s", workers=1)


def test_a_second_builder_is_locked_out(tmp_path):
    make_corpus(tmp_path / "c", n_files=1)
    with Staging(tmp_path / "s", {"any": "key"}):
        with pytest.raises(ArtifactError, match="another build"):
            build(tmp_path / "c", tmp_path / "s", workers=1)


def test_another_tokenizer_or_split_rule_starts_over(tmp_path, monkeypatch, files_read):
    _staged(tmp_path, monkeypatch)
    files_read.clear()
    build(tmp_path / "c", tmp_path / "s", workers=1, val_fraction=0.3, seed=1)
    assert files_read == ["part0.txt", "part1.txt", "part2.txt"]
    build(tmp_path / "c", tmp_path / "ref", workers=1, val_fraction=0.3, seed=1)
    assert outputs(tmp_path / "s") == outputs(tmp_path / "ref")
    assert shard_progress.PROGRESS_FORMAT == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_an_unreadable_file_keeps_the_files_before_it(tmp_path, small_blocks, files_read, workers):
    paths = make_corpus(tmp_path / "c", n_files=4)
    good = paths[2].read_bytes()
    paths[2].write_bytes(b"caf\xe9\n" + good)  # invalid UTF-8 on the first line of file 2: file 1 may still be in flight
    corpus = Corpus([str(p) for p in paths])  # files passed one by one are not sniffed for binary content
    from tokembed.errors import DecodeError

    with pytest.raises(DecodeError, match="part2.txt"):
        build_shards(ByteTokenizer(), corpus, tmp_path / "s", val_fraction=0.2, workers=workers)
    staging = staging_path(tmp_path / "s")
    assert sorted(p.name for p in (staging / "progress").iterdir()) == ["000000.json", "000001.json"]
    paths[2].write_bytes(good)
    files_read.clear()
    build_shards(ByteTokenizer(), corpus, tmp_path / "s", val_fraction=0.2, workers=workers)
    assert files_read == ["part2.txt", "part3.txt"]
    build_shards(ByteTokenizer(), corpus, tmp_path / "ref", val_fraction=0.2, workers=1)
    assert outputs(tmp_path / "s") == outputs(tmp_path / "ref")


def test_an_empty_corpus_is_an_error_naming_it(tmp_path):
    from tokembed.errors import EmptyCorpusError

    (tmp_path / "blank.txt").write_text("\n\n  \n")
    with pytest.raises(EmptyCorpusError, match="blank.txt holds no text"):
        build_shards(ByteTokenizer(), Corpus([str(tmp_path / "blank.txt")]), tmp_path / "s")
    assert not (tmp_path / "s").exists()
