"""The study keeps each document's language (LANG=PATH) through corpus sampling."""

import pytest

from tokembed.corpus import Corpus
from tokembed.errors import EmptyCorpusError
from tokembed.study import StudyConfig
from tokembed.study.run import _prepare_corpus


def _docs(prefix: str, n: int) -> list[str]:
    return [f"{prefix} document {i}, first line.\n{prefix} document {i}, second line, a little longer.\n" for i in range(n)]


def test_sampling_keeps_language_tags(tmp_path):
    en, fi = _docs("English", 300), _docs("Suomalainen", 100)
    (tmp_path / "en.txt").write_text("\n".join(en), encoding="utf-8")
    (tmp_path / "fi.txt").write_text("\n".join(fi), encoding="utf-8")
    cfg = StudyConfig.from_name("tiny", corpus_bytes=8192)
    log: list[str] = []
    corpus = Corpus([f"en={tmp_path / 'en.txt'}", f"fi={tmp_path / 'fi.txt'}"])
    sample, info = _prepare_corpus(corpus, cfg, tmp_path / "out", log.append)
    assert info["sampled"] and sample.languages == ["en", "fi"]
    got_en, got_fi = list(sample.documents("en")), list(sample.documents("fi"))
    assert got_en and got_fi and set(got_en) <= set(en) and set(got_fi) <= set(fi)
    assert sorted(p.name for p in (tmp_path / "out" / "data").iterdir()) == ["en.txt", "fi.txt"]
    assert sum(info["languages"].values()) == info["bytes"] and info["languages"]["en"] > info["languages"]["fi"]
    again, _ = _prepare_corpus(corpus, cfg, tmp_path / "again", log.append)  # seeded: the same sample
    assert list(again.documents("fi")) == got_fi


def test_a_language_with_no_document_after_sampling(tmp_path):
    (tmp_path / "en.txt").write_text("\n".join(_docs("English", 400)), encoding="utf-8")
    (tmp_path / "fi.txt").write_text("Yksi lyhyt dokumentti.\n", encoding="utf-8")
    cfg = StudyConfig.from_name("tiny", corpus_bytes=2048)
    corpus = Corpus([f"en={tmp_path / 'en.txt'}", f"fi={tmp_path / 'fi.txt'}"])
    with pytest.raises(EmptyCorpusError, match="language 'fi' has no text after sampling") as e:
        _prepare_corpus(corpus, cfg, tmp_path / "out", lambda m: None)
    assert e.value.param == "corpus_bytes"
