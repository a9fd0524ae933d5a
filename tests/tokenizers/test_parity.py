"""Parity across languages: premium, parity, byte/UNK fallback, per-script coverage, the α sweep, bad input."""

import json

import pytest
from _ko_data import EN_TEXT, FI_TEXT, KO_TEXT
from hypothesis import given
from hypothesis import strategies as st

from tokembed import metrics
from tokembed.cli import main
from tokembed.corpus import Corpus
from tokembed.errors import ConfigError, EmptyCorpusError
from tokembed.tokenizers import ByteTokenizer, train_tokenizer
from tokembed.tokenizers.parity import (
    alpha_sweep,
    compare_languages,
    fallback_flags,
    fallback_positions,
    parse_alphas,
    script_coverage,
    script_of,
)


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("langs")
    (d / "en.txt").write_text(EN_TEXT * 30, encoding="utf-8")
    (d / "fi.txt").write_text(FI_TEXT * 30, encoding="utf-8")
    (d / "ko.txt").write_text(KO_TEXT * 3, encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def en_bytebpe(corpus_files):
    """A byte-level BPE that saw only English: Korean falls back to byte tokens."""
    return train_tokenizer("bytebpe", [str(corpus_files / "en.txt")], 300)


def specs(d, langs=("en", "fi", "ko")):
    return [f"{lang}={d / (lang + '.txt')}" for lang in langs]


def test_script_of_known_answers():
    assert [script_of(c) for c in "aÅЖ東한ㅋあア1 .ｱＡ"] == [
        "Latin", "Latin", "Cyrillic", "Han", "Hangul", "Hangul", "Hiragana", "Katakana", "Common", "Common", "Common",
        "Katakana", "Latin",
    ]  # fmt: skip


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_byte_tokenizer_falls_back_on_every_non_ascii_character(text):
    """Known answer: the byte tokenizer gives a character a token of its own exactly when it is one byte."""
    assert fallback_flags(ByteTokenizer(), text) == [ord(c) >= 0x80 for c in text]


@pytest.fixture(scope="module")
def en_wordpiece(corpus_files):
    """A WordPiece that saw only English: Hangul words become [UNK]."""
    return train_tokenizer("wordpiece", [str(corpus_files / "en.txt")], 200)


mixed_text = st.text(
    alphabet=st.one_of(st.characters(blacklist_categories=("Cs",)), st.sampled_from("한국어 the ab\t\n")), max_size=40
)


@given(mixed_text)
def test_fast_fallback_positions_equal_the_reference(en_bytebpe, en_wordpiece, text):
    """The one-pass-over-tokens path marks exactly the characters the per-character reference marks."""
    for tok in (ByteTokenizer(), en_bytebpe, en_wordpiece):
        flags = fallback_flags(tok, text)
        assert fallback_positions(tok, text) == {k for k, f in enumerate(flags) if f}


def test_premium_parity_fallback_coverage(en_bytebpe, corpus_files):
    rows = compare_languages({"bb": en_bytebpe}, Corpus(specs(corpus_files)))
    by = {r.stats.language: r for r in rows}
    assert list(by) == ["en", "fi", "ko"] and all(r.reference == "en" and r.unit == "byte" for r in rows)
    for r in rows:  # premium = tokens / bytes, parity = premium / premium of en
        assert r.premium == pytest.approx(r.stats.n_tokens / r.stats.n_bytes)
        assert r.parity == pytest.approx(r.premium / by["en"].premium)
    assert by["en"].parity == 1.0 and by["ko"].parity > by["fi"].parity > 1.0  # unseen scripts cost more
    assert by["en"].fallback == 0.0 and by["ko"].fallback > 0.3
    assert by["ko"].coverage["Hangul"] < 0.5 and by["ko"].coverage["Common"] == 1.0 and by["en"].coverage["Latin"] == 1.0
    # the fallback share is the characters without a token of their own, counted independently here
    ko_lines = KO_TEXT.splitlines()
    n_fb = sum(sum(fallback_flags(en_bytebpe, t)) for t in ko_lines * 3)
    assert by["ko"].fallback == pytest.approx(n_fb / sum(len(t) for t in ko_lines * 3))


def test_unk_counts_as_fallback(en_wordpiece):
    cov, n_fallback, n_chars = script_coverage(en_wordpiece, ["한국어 word"])
    assert cov["Hangul"] == (0, 3) and n_fallback == 3 and metrics.fallback_share(n_fallback=n_fallback, n_chars=n_chars) == 3 / 8


def test_parallel_premium_per_sentence_and_reference(en_bytebpe, corpus_files, tmp_path):
    for lang, text in (("en", EN_TEXT), ("fi", FI_TEXT), ("ko", "\n".join(KO_TEXT.splitlines()[:4]) + "\n")):
        (tmp_path / f"{lang}.txt").write_text(text, encoding="utf-8")
    rows = compare_languages({"bb": en_bytebpe}, Corpus(specs(tmp_path)), parallel=True, reference="fi")
    by = {r.stats.language: r for r in rows}
    assert all(r.unit == "sentence" and r.reference == "fi" for r in rows) and by["fi"].parity == 1.0
    assert by["ko"].premium == pytest.approx(by["ko"].stats.n_tokens / 4)
    with pytest.raises(ConfigError, match=r"same number of non-blank lines .*'en': 120"):
        compare_languages({"bb": en_bytebpe}, Corpus(specs(corpus_files)), parallel=True)


def test_reference_not_among_the_languages(en_bytebpe, corpus_files):
    with pytest.raises(ConfigError, match=r"reference language 'de' is not among the corpus languages \['en', 'fi'\]"):
        compare_languages({"bb": en_bytebpe}, Corpus(specs(corpus_files, ("en", "fi"))), reference="de")
    with pytest.raises(ConfigError, match="LANG=PATH"):
        compare_languages({"bb": en_bytebpe}, Corpus([str(corpus_files / "en.txt")]))


@pytest.mark.parametrize("tag", ["english", "e", "en_", "en--US", "en-toolongsubtag"])
def test_unknown_language_tag(tag, corpus_files):
    with pytest.raises(ConfigError, match=f"language tag '{tag}' is not a BCP-47-like tag"):
        Corpus([f"{tag}={corpus_files / 'en.txt'}"])


@pytest.mark.parametrize("tag", ["en", "fil", "pt-BR", "zh_Hant", "sr-Latn-RS"])
def test_bcp47_like_tags_accepted(tag, corpus_files):
    assert Corpus([f"{tag}={corpus_files / 'en.txt'}"]).languages == [tag]


def test_language_with_no_text_after_sampling(corpus_files, tmp_path):
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    c = Corpus([f"en={corpus_files / 'en.txt'}", f"ko={tmp_path / 'empty.txt'}"])
    with pytest.raises(EmptyCorpusError, match="language 'ko' has no text after sampling"):
        list(c.training_texts())
    # a one-line language that sampling (ratio < 1) drops: the seed decides; some seed drops it
    (tmp_path / "big.txt").write_text("x" * 60_000 + "\n", encoding="utf-8")  # one line (under the 64 KiB line limit)
    c = Corpus([f"en={tmp_path / 'big.txt'}", f"fi={corpus_files / 'fi.txt'}"])
    errors = 0
    for seed in range(20):
        try:
            list(c.training_texts(alpha=0.1, seed=seed))
        except EmptyCorpusError as e:
            assert "language 'en' has no text after sampling" in str(e)
            errors += 1
    assert 0 < errors < 20


def test_alpha_sweep_moves_fertility(corpus_files):
    """A small language (ko, 1 KB) gets more of the vocab, so lower fertility, at α=0.1 than at α=1; the large one the reverse."""
    toks = alpha_sweep("bytebpe", Corpus(specs(corpus_files, ("en", "ko"))), 400, [0.1, 1.0])
    assert list(toks) == ["bytebpe@alpha=0.1", "bytebpe@alpha=1"]
    rows = compare_languages(toks, Corpus(specs(corpus_files, ("en", "ko"))))
    fert = {(r.stats.name, r.stats.language): r.stats.fertility for r in rows}
    assert fert["bytebpe@alpha=0.1", "ko"] < fert["bytebpe@alpha=1", "ko"]
    assert fert["bytebpe@alpha=0.1", "en"] > fert["bytebpe@alpha=1", "en"]
    assert toks["bytebpe@alpha=0.1"].options["alpha"] == 0.1
    with pytest.raises(ConfigError, match="LANG=PATH"):
        alpha_sweep("bytebpe", Corpus([str(corpus_files / "en.txt")]), 300, [0.3])


def test_parse_alphas_bad_values():
    assert parse_alphas("0.1,0.3,0.5,1.0") == [0.1, 0.3, 0.5, 1.0]
    with pytest.raises(ConfigError, match="outside"):
        parse_alphas("0.3,1.5")
    with pytest.raises(ConfigError, match="'x' in '0.3,x' is not a number"):
        parse_alphas("0.3,x")


def _run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_compare_columns_and_sweep(en_bytebpe, corpus_files, tmp_path, capsys):
    en_bytebpe.save(tmp_path / "bb")
    rc, out, _ = _run(capsys, "tokenizer", "compare", str(tmp_path / "bb"), "--corpus", *specs(corpus_files), "--json")
    rows = json.loads(out)
    assert rc == 0 and [r["language"] for r in rows] == ["en", "fi", "ko"]
    assert {"premium", "parity", "fallback", "coverage", "fertility"} <= set(rows[0]) and rows[0]["parity"] == 1.0
    rc, out, _ = _run(capsys, "tokenizer", "compare", "--corpus", *specs(corpus_files, ("en", "ko")), "--alpha", "0.1,1",
                      "--kind", "bytebpe", "--train-vocab-size", "300", "--reference", "ko")  # fmt: skip
    header = out.splitlines()[0].split()
    assert rc == 0 and header[:4] == ["tokenizer", "lang", "kind", "vocab"] and {"premium", "parity", "fallback", "coverage"} <= set(header)
    assert "fertility of en by alpha  α=0.1:" in out and "bytebpe@alpha=1  " in out and "ko*" in out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--reference", "de"], "reference language 'de' is not among"),
        (["--alpha", "0.3"], "pass --kind"),
        (["--alpha", "0.3,2", "--kind", "unigram"], "outside [0, 1]"),
        (["--kind", "unigram"], "pass --alpha too"),
    ],
)
def test_cli_compare_bad_input_one_line_exit_2(en_bytebpe, corpus_files, tmp_path, capsys, extra, message):
    en_bytebpe.save(tmp_path / "bb")
    rc, _, err = _run(capsys, "tokenizer", "compare", str(tmp_path / "bb"), "--corpus", *specs(corpus_files), *extra)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


def test_cli_unknown_tag_and_no_tokenizer(tmp_path, capsys, corpus_files):
    rc, _, err = _run(capsys, "tokenizer", "compare", "--corpus", f"english={corpus_files / 'en.txt'}", "--alpha", "0.3", "--kind", "unigram")
    assert rc == 2 and "language tag 'english'" in err
    rc, _, err = _run(capsys, "tokenizer", "compare", "--corpus", str(corpus_files / "en.txt"))
    assert rc == 2 and "nothing to compare" in err


def test_language_budget_and_trades_for_the_study():
    """The per-language helpers the multilingual study report uses (definitions in tokembed.metrics)."""
    budget = metrics.language_budget(n_bytes={"en": 600, "ko": 400}, n_tokens={"en": 150, "ko": 250})
    assert budget["ko"]["token_share"] == 0.625 and budget["ko"]["byte_share"] == 0.4  # ko pays a premium
    bpb = {"base": {"en": 1.0, "fi": 1.2, "ko": 1.5}, "d1": {"en": 0.9, "fi": 1.21, "ko": 1.6}, "d2": {"en": 1.0, "fi": 1.2, "ko": 1.4}}
    trades = metrics.language_trades(bpb, baseline="base", noise=0.05)
    assert trades == {"d1": {"better": ["en"], "worse": ["ko"]}, "d2": {"better": ["ko"], "worse": []}}
    with pytest.raises(ConfigError, match="baseline design 'nope'"):
        metrics.language_trades(bpb, baseline="nope", noise=0.05)
