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


# -- a multilingual study end to end ---------------------------------------------------------------

_WORDS = {
    "en": "the river runs past the old mill and the children watch the boats".split(),
    "fi": "joki virtaa vanhan myllyn ohi ja lapset katsovat veneitä rannalla".split(),
    "ko": "강물이 오래된 방앗간을 지나 흐르고 아이들이 배를 바라본다".split(),
}


def _write_languages(tmp_path, n=120):
    specs = []
    for k, (lang, words) in enumerate(_WORDS.items()):
        docs = [" ".join(words[(i * 3 + j * (k + 2)) % len(words)] for j in range(8 + i % 7)) + f" {i}.\n" for i in range(n)]
        (tmp_path / f"{lang}.txt").write_text("\n".join(docs), encoding="utf-8")
        specs.append(f"{lang}={tmp_path / f'{lang}.txt'}")
    return specs


@pytest.mark.slow  # one tiny study, 2 runs (~5 s of CPU)
def test_a_multilingual_study_scores_and_budgets_every_language(tmp_path):
    import json

    from tokembed.study import run_study

    specs = _write_languages(tmp_path)
    cfg = StudyConfig.from_name("tiny", val_fraction=0.2, corpus_bytes=0)
    res = run_study(cfg, Corpus(specs), tmp_path / "out", log=lambda m: None)
    data = json.loads((res.out_dir / "results.json").read_text())
    for r in res.rows:
        langs = data["details"][r["id"]]["languages"]
        assert list(langs) == ["en", "fi", "ko"]
        for lang, v in langs.items():
            assert 0 < v["bits_per_byte"] < 12 and v["val_bytes"] > 0 and v["train_bytes"] > 0
            assert v["train_tokens"] > 0 and v["seen_tokens"] > 0
        # every target token the run read belongs to one language (the leading eos aside)
        assert sum(v["seen_tokens"] for v in langs.values()) <= r["tokens_seen"]
        assert sum(v["seen_tokens"] for v in langs.values()) >= r["tokens_seen"] - cfg.batch_size
    # byte tokens: one token per byte plus one eos per document, in every language
    assert all(v["bytes_per_token"] < 1.0 for v in data["details"][res.rows[0]["id"]]["languages"].values())
    page = res.report.read_text()
    assert "<h2>Languages</h2>" in page and "Recommendations per language" in page and "ko bpb" in page


def test_an_unknown_language_tag_is_refused_before_any_training(tmp_path):
    from tokembed.errors import ConfigError
    from tokembed.study import run_study

    (tmp_path / "a.txt").write_text("Some text here.\n\nMore text.\n", encoding="utf-8")
    cfg = StudyConfig.from_name("tiny", corpus_bytes=0)
    with pytest.raises(ConfigError, match="'english1' is not a BCP-47-like tag"):
        run_study(cfg, Corpus([f"english1={tmp_path / 'a.txt'}"]), tmp_path / "out", log=lambda m: None)
    assert not (tmp_path / "out" / "tokenizers").exists()


def test_a_language_without_documents_is_an_error_naming_it(tmp_path):
    from tokembed.study.languages import language_documents

    specs = _write_languages(tmp_path, n=5)
    (tmp_path / "sv.txt").write_text("\n\n\n", encoding="utf-8")  # no text at all: the corpus names the file
    with pytest.raises(EmptyCorpusError, match="sv.txt holds no text"):
        language_documents(Corpus(specs + [f"sv={tmp_path / 'sv.txt'}"]))


def test_languages_are_interleaved_so_any_prefix_mixes_them(tmp_path):
    from tokembed.study.languages import language_documents

    (tmp_path / "en.txt").write_text("e1\n\ne2\n\ne3\n", encoding="utf-8")
    (tmp_path / "fi.txt").write_text("f1\n", encoding="utf-8")
    docs, langs = language_documents(Corpus([f"en={tmp_path / 'en.txt'}", f"fi={tmp_path / 'fi.txt'}"]))
    assert docs == ["e1\n", "f1\n", "e2\n", "e3\n"] and langs == ["en", "fi", "en", "en"]
    assert language_documents(Corpus([str(tmp_path / "en.txt")])) is None


@pytest.mark.parametrize("n_docs, val_fraction", [(40, 0.2), (3, 0.01)])
def test_document_languages_follow_the_shard_split(tmp_path, n_docs, val_fraction):
    """split_languages mirrors build_shards (hash split, and the held-out last document when none hashed to val)."""
    import warnings

    from tokembed.study.languages import language_counts, split_languages
    from tokembed.tokenizers import ByteTokenizer
    from tokembed.training.shards import build_shards

    docs = [f"doc {i} " * (1 + i % 4) + "\n" for i in range(n_docs)]
    langs = ["en" if i % 3 else "fi" for i in range(n_docs)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shards = build_shards(ByteTokenizer(), docs, tmp_path / "s", val_fraction=val_fraction, workers=1)
    split = split_languages(langs, seed=0, val_fraction=val_fraction)
    for name in ("train", "val"):
        assert len(split[name]) == shards[name].n_docs
        counts = language_counts(shards[name], split[name])
        assert sum(c["bytes"] for c in counts.values()) == shards[name].n_bytes
