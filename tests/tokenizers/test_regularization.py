import pytest
from _spm_data import training_lines

from tokembed.errors import ConfigError, TokenizerError
from tokembed.tokenizers import BPETokenizer, CharTokenizer, MorphTokenizer, UnigramTokenizer
from tokembed.tokenizers.regularization import derived_seed, sample_segmentations

LONG = " ".join(training_lines(2))  # ~1,000 chars


@pytest.fixture(scope="module")
def uni():
    return UnigramTokenizer.train(training_lines(), 380)


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(training_lines(), 600)


def test_unigram_sampling_seeded_reproducible_and_exact(uni):
    plain = uni.encode(LONG)
    a = uni.encode(LONG, alpha=0.1, seed=1)
    assert a == uni.encode(LONG, alpha=0.1, seed=1)  # same seed -> same ids
    assert a != uni.encode(LONG, alpha=0.1, seed=2)  # another seed -> another segmentation
    assert a != plain
    assert uni.decode(a) == LONG
    # n-best sampling stays inside the n best segmentations: nbest=1 is the plain one
    assert uni.encode(LONG, alpha=0.1, nbest=1, seed=3) == plain
    nb = uni.encode(LONG, alpha=0.1, nbest=8, seed=3)
    assert nb == uni.encode(LONG, alpha=0.1, nbest=8, seed=3) and uni.decode(nb) == LONG


def test_bpe_dropout_seeded_reproducible_and_exact(bpe):
    plain = bpe.encode(LONG)
    a = bpe.encode(LONG, dropout=0.1, seed=1)
    assert a == bpe.encode(LONG, dropout=0.1, seed=1)
    assert a != bpe.encode(LONG, dropout=0.1, seed=2)
    assert len(a) > len(plain)  # dropping merges can only give more, shorter pieces
    assert bpe.decode(a) == LONG
    assert bpe.encode(LONG, dropout=0.0, seed=1) == plain


def test_sampling_is_off_by_default(uni, bpe):
    assert uni.encode(LONG) == uni.encode(LONG) and bpe.encode(LONG) == bpe.encode(LONG)


def test_sample_segmentations(uni):
    segs = sample_segmentations(uni, LONG, 5, seed=7, alpha=0.1)
    assert len(segs) == 5 and len({tuple(s) for s in segs}) == 5
    assert all(uni.decode(s) == LONG for s in segs)
    assert segs == sample_segmentations(uni, LONG, 5, seed=7, alpha=0.1)
    assert segs[0] == uni.encode(LONG, alpha=0.1, seed=derived_seed(7, 0))
    assert sample_segmentations(uni, LONG, 2) == [uni.encode(LONG)] * 2


def test_sample_segmentations_generic_over_any_tokenizer():
    class Fake:
        """Any tokenizer whose encode takes sampling kwargs and a seed."""

        def encode(self, text, *, seed=0, dropout=0.0):
            return [seed % 5, len(text), int(dropout * 10)]

    assert sample_segmentations(Fake(), "abc", 2, seed=0, dropout=0.2) == [
        [derived_seed(0, 0) % 5, 3, 2],
        [derived_seed(0, 1) % 5, 3, 2],
    ]
    with pytest.raises(ConfigError, match="n=0"):
        sample_segmentations(Fake(), "abc", 0)


def test_morph_sampling(uni):
    tok = MorphTokenizer.train(training_lines(), 340, segmenter_options={"max_types": 100})
    a = tok.encode(LONG, alpha=0.1, seed=4)
    assert a == tok.encode(LONG, alpha=0.1, seed=4) and a != tok.encode(LONG, alpha=0.1, seed=5)
    assert tok.decode(a) == LONG


def test_wrong_sampling_options(uni, bpe):
    with pytest.raises(TokenizerError, match="BPE-dropout is for the bpe kind"):
        uni.encode("abc", dropout=0.1)
    with pytest.raises(TokenizerError, match="dropout=p"):
        bpe.encode("abc", alpha=0.1)
    with pytest.raises(ConfigError, match="outside"):
        bpe.encode("abc", dropout=1.5)
    with pytest.raises(ConfigError, match="nbest"):
        uni.encode("abc", alpha=0.1, nbest=0)
    with pytest.raises(ConfigError, match="seed"):
        uni.encode("abc", alpha=0.1, seed=-1)
    char = CharTokenizer.train(training_lines(1))
    with pytest.raises(TokenizerError, match="not available"):
        char.encode("abc", alpha=0.1)
