import json

import pytest
from _spm_data import any_text, training_lines
from hypothesis import given

from tokembed.errors import EmptyCorpusError, TokenizerError, TokenizerFileError
from tokembed.tokenizers import DictSegmenter, MorfessorSegmenter, MorphTokenizer, load_tokenizer, train_tokenizer
from tokembed.tokenizers.morph import morph_chunks


@pytest.fixture(scope="module")
def morph():
    return MorphTokenizer.train(training_lines(), 340, segmenter_options={"max_types": 200})


def test_chunks_known_answer():
    seg = DictSegmenter({"unhappiness": ["un", "happi", "ness"], "cats": ["cat", "s"]})
    assert list(morph_chunks(" cats\tunhappiness!", seg.segment)) == [" cat", "s", "\t", "un", "happi", "ness", "!"]


def test_pieces_never_cross_morph_boundaries():
    seg = DictSegmenter({"unhappiness": ["un", "happi", "ness"]})
    tok = MorphTokenizer.train(["the unhappiness of it"] * 50 + training_lines(3), 330, segmenter=seg)
    pieces = tok.tokens("the unhappiness")
    assert "".join(pieces).replace("▁", " ") == "the unhappiness"
    # a boundary after "un" and after "happi": some piece ends exactly there
    ends, pos = set(), 0
    for p in pieces:
        pos += len(p)
        ends.add(pos)
    assert {len("the un"), len("the unhappi")} <= ends


@given(any_text)
def test_round_trip(morph, text):
    ids = morph.encode(text)
    assert morph.decode(ids) == text
    assert ids == morph._encode_reference(text)  # the cached per-word fast path equals chunk-by-chunk encoding


def test_round_trip_marker_like_text(morph):
    for text in ["▁un▁happy", "un\thappy  ", " ", "a▁", "\x00x\x00", "ǅungle ﬁne", "e\u0301te"]:
        assert morph.decode(morph.encode(text)) == text


def test_save_load_identical_ids_without_pickle(morph, tmp_path):
    morph.save(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["segmenter.json", "spm.model", "tokembed.json"]
    state = json.loads((tmp_path / "m" / "segmenter.json").read_text())
    assert state["name"] == "morfessor" and state["state"]["analyses"]
    back = load_tokenizer(tmp_path / "m")
    assert isinstance(back, MorphTokenizer) and back.fingerprint == morph.fingerprint
    # words never seen in training go through Viterbi on the rebuilt Morfessor lexicon
    text = "The unhappily reconstructed quartzes, jumping boxes; Grüße zurück " + " ".join(training_lines(1))
    assert back.encode(text) == morph.encode(text)
    assert back.segmenter.segment("rejudgements") == morph.segmenter.segment("rejudgements")


def test_timing_share_reported(morph):
    t = morph.options["timing_s"]
    assert 0.0 <= morph.options["segmenter_share"] <= 1.0
    assert t["total"] >= t["segmenter_train"] >= 0.0
    assert morph.options["segmenter"] == "morfessor" and morph.options["subword"] == "unigram"


def test_plugin_segmenter_and_bpe_subword(tmp_path):
    class Halves:
        """A toy analyzer: splits words of 6+ letters in the middle (not registered: cannot be saved)."""

        def segment(self, word):
            return [word[: len(word) // 2], word[len(word) // 2 :]] if len(word) >= 6 else [word]

        def train(self, words_with_counts):
            self.seen = sum(1 for _ in words_with_counts)

    seg = Halves()
    tok = MorphTokenizer.train(training_lines(), 340, segmenter=seg, subword="bpe")
    assert seg.seen > 10 and tok.options["subword"] == "bpe"
    text = "quartz sphinx judge"
    assert tok.chunks(text) == ["qua", "rtz", " sph", "inx", " judge"]
    assert tok.decode(tok.encode(text)) == text
    with pytest.raises(TokenizerError, match="register_segmenter"):
        tok.save(tmp_path / "x")


def test_bad_segmenter_output_is_typed():
    class Liar:
        def segment(self, word):
            return [word, "x"]

        def train(self, words_with_counts):
            pass

    with pytest.raises(TokenizerError, match="join to the word"):
        MorphTokenizer.train(training_lines(), 340, segmenter=Liar())


def test_morph_empty_corpus(tmp_path):
    empty = tmp_path / "e.txt"
    empty.write_text("\n \n")
    with pytest.raises(EmptyCorpusError):
        train_tokenizer("morph", [str(empty)], 300)


def test_damaged_segmenter_file(morph, tmp_path):
    morph.save(tmp_path / "m")
    (tmp_path / "m" / "segmenter.json").write_text('{"name": "nope", "state": {}}')
    with pytest.raises(TokenizerFileError, match="not registered"):
        load_tokenizer(tmp_path / "m")


def test_morfessor_deterministic():
    words = [(w, 3) for line in training_lines(2) for w in line.split() if w.isalpha()]
    a, b = MorfessorSegmenter(), MorfessorSegmenter()
    a.train(words)
    b.train(words)
    assert a.analyses == b.analyses


def test_morph_long_word_and_repeats(morph):
    """Letter runs over MAX_WORD_CHARS skip the segmenter (bounded time); the subword model covers them."""
    for text in ["c" * 1_000_000, "a" * 100_000, "ab\x00cd\x00 x"]:
        assert morph.decode(morph.encode(text)) == text
    tok = MorphTokenizer.train(["a" * 100_000, "b b b"], 262, segmenter_options={"max_types": 10})
    assert tok.decode(tok.encode("a" * 1000)) == "a" * 1000


def test_morph_special_strings_plain(morph):
    ids = morph.encode("a</s>b")
    assert morph.vocab["</s>"] not in ids and morph.decode(ids) == "a</s>b"
    assert morph.vocab["</s>"] in morph.encode("a</s>b", allowed_special={"</s>"})


def test_morph_deterministic_fingerprint(morph):
    again = MorphTokenizer.train(training_lines(), 340, segmenter_options={"max_types": 200})
    assert again.fingerprint == morph.fingerprint
    assert again.segmenter.analyses == morph.segmenter.analyses


def test_batch_equals_single(morph):
    texts = training_lines(2) + ["", " ", "unhappiness▁x", "東京 🙂", "a" * 200]
    fresh = MorphTokenizer(morph.segmenter, morph.subword)  # empty caches
    assert fresh.encode_batch(texts) == [morph._encode_reference(t) for t in texts]


@given(any_text)
def test_units_cut_like_word_re(text):
    """The one-regex fast cut equals the WORD_RE reference cut (words with their space, runs between)."""
    from tokembed.tokenizers.morph import WORD_RE, _units

    ref, pos = [], 0
    for m in WORD_RE.finditer(text):
        if m.start() > pos:
            ref.append(text[pos : m.start()])
        ref.append(m.group())
        pos = m.end()
    if pos < len(text):
        ref.append(text[pos:])
    assert _units(text) == ref


class _MustNotTrain(DictSegmenter):
    name = "must_not_train"

    def train(self, words_with_counts):
        raise AssertionError("the segmenter was trained before the vocab size was checked")


def test_impossible_vocab_size_fails_before_segmenter_training(tmp_path):
    from tokembed.errors import VocabSizeError

    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat\n" * 50)
    with pytest.raises(VocabSizeError, match=r"morph: vocab size 5000 is more than this corpus can fill: at most \d+"):
        train_tokenizer("morph", [str(corpus)], 5000, segmenter=_MustNotTrain())
    with pytest.raises(AssertionError, match="was trained"):  # a possible size goes on to train the segmenter
        train_tokenizer("morph", [str(corpus)], 270, segmenter=_MustNotTrain())
