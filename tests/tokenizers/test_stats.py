"""stats: the counts behind `tokenizer compare`, per tokenizer and per language."""

import math

import pytest

from tokembed.corpus import Corpus
from tokembed.tokenizers import ByteTokenizer, train_tokenizer
from tokembed.tokenizers.stats import compare_tokenizers, tokenizer_stats


def test_known_counts_byte_tokenizer():
    s = tokenizer_stats(ByteTokenizer(), ["ab c", "é"], name="byte")
    # 4 + 2 bytes, 3 words; every byte is a token; ids seen: a b space c 0xC3 0xA9
    assert (s.n_tokens, s.n_words, s.n_bytes, s.n_seen, s.n_exact, s.n_unk) == (6, 3, 6, 6, 2, 0)
    assert s.fertility == 2.0 and s.bytes_per_token == 1.0 and s.round_trip == 1.0
    assert s.vocab_utilisation == 6 / 259 and s.unk_rate == 0.0
    d = s.to_dict()
    assert d["fertility"] == 2.0 and d["name"] == "byte" and d["mb_per_s"] > 0


def test_per_language_rows_and_unk(tmp_path):
    en = tmp_path / "en.txt"
    en.write_text("the cat sat on the mat\nthe dog sat on the log\n" * 30)
    ru = tmp_path / "ru.txt"
    ru.write_text("кошка сидит на ковре\n" * 5)
    corpus = Corpus([f"en={en}", f"ru={ru}"])
    wp = train_tokenizer("wordpiece", [str(en)], 200, progress=False)  # never saw Cyrillic
    bb = train_tokenizer("bytebpe", corpus, 300, progress=False)
    rows = compare_tokenizers({"wp": wp, "bb": bb}, corpus)
    assert [(r.name, r.language) for r in rows] == [("wp", "en"), ("wp", "ru"), ("bb", "en"), ("bb", "ru")]
    by = {(r.name, r.language): r for r in rows}
    assert by["wp", "ru"].unk_rate == 1.0 and by["wp", "en"].unk_rate == 0.0
    assert by["bb", "ru"].round_trip == 1.0 and by["bb", "ru"].n_unk == 0
    assert by["wp", "en"].round_trip == 1.0  # lowercase ASCII words with single spaces round-trip
    assert by["bb", "en"].n_lines == 60 and by["bb", "ru"].n_lines == 5
    rows = compare_tokenizers({"bb": bb}, corpus, max_lines=3)
    assert [r.n_lines for r in rows] == [3, 3]


def test_post_processor_tokens_not_counted(tmp_path):
    from tokembed.tokenizers.formats import load_vocab_txt

    p = tmp_path / "vocab.txt"
    p.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world"]) + "\n")
    tok = load_vocab_txt(p)
    assert tok.encode("hello world") == [2, 4, 5, 3]
    s = tokenizer_stats(tok, ["hello world", "hello moon"])
    assert s.n_tokens == 4 and s.n_unk == 1 and s.unk_rate == 0.25


def test_empty_text_list_gives_nan():
    s = tokenizer_stats(ByteTokenizer(), [])
    assert math.isnan(s.fertility) and math.isnan(s.round_trip)


def test_empty_corpus_raises(tmp_path):
    from tokembed.errors import EmptyCorpusError

    (tmp_path / "e.txt").write_text("\n")
    with pytest.raises(EmptyCorpusError):
        compare_tokenizers({"b": ByteTokenizer()}, [str(tmp_path / "e.txt")])
