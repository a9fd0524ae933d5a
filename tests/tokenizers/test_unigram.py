import pytest
from hypothesis import given

from tokembed.corpus import Corpus
from tokembed.errors import ConfigError, VocabSizeError
from tokembed.tokenizers import UnigramTokenizer, load_tokenizer, train_tokenizer

from _spm_data import any_text, training_lines


@pytest.fixture(scope="module")
def uni():
    return UnigramTokenizer.train(training_lines(), 360)


def test_train_exact_vocab_size_and_specials(uni):
    assert uni.kind == "unigram" and uni.vocab_size == 360 and uni.lossless
    assert [uni.vocab.token(i) for i in range(4)] == ["<unk>", "<s>", "</s>", "<pad>"]
    assert uni.special_tokens == {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"}
    # byte fallback tokens are in the vocab, right after the specials
    assert uni.vocab.token(4) == "<0x00>" and uni.vocab.token(259) == "<0xFF>"


def test_save_load_same_ids(uni, tmp_path):
    uni.save(tmp_path / "u")
    assert (tmp_path / "u" / "spm.model").is_file()
    back = load_tokenizer(tmp_path / "u")
    assert type(back) is UnigramTokenizer and back.fingerprint == uni.fingerprint
    text = "The lazy fox, 東京 ▁ and\ttabs\n"
    assert back.encode(text) == uni.encode(text)
    assert back.options == uni.options


def test_deterministic_fingerprint(small_corpus):
    a = train_tokenizer("unigram", [str(small_corpus)], 320)
    b = train_tokenizer("unigram", Corpus([str(small_corpus)]), 320)
    assert a.fingerprint == b.fingerprint


@given(any_text)
def test_round_trip(uni, text):
    assert uni.decode(uni.encode(text)) == text


def test_batch_equals_single(uni):
    texts = training_lines(2) + ["", " ", "a▁b", "東京🙂"]
    assert uni.encode_batch(texts) == [uni.encode(t) for t in texts]


def test_vocab_too_small_and_too_large():
    with pytest.raises(VocabSizeError, match=r"tokens are needed.*pass vocab_size >"):
        UnigramTokenizer.train(training_lines(), 100)
    with pytest.raises(VocabSizeError, match=r"at most \d+"):
        UnigramTokenizer.train(training_lines(2), 5000)


def test_unknown_option():
    with pytest.raises(ConfigError, match="unknown option"):
        UnigramTokenizer.train(training_lines(), 400, coverage=1.0)


def test_language_smoothing_reaches_training(tmp_path):
    """LANG=PATH corpora are sampled p_l ∝ n_l^α: with α=0 a tiny language's letters make the alphabet."""
    en, xx = tmp_path / "en.txt", tmp_path / "xx.txt"
    en.write_text("\n".join(training_lines(60)) + "\n")
    xx.write_text("ÆØÅ æøå ÞÐ þð\n")
    specs = [f"en={en}", f"xx={xx}"]
    proportional = train_tokenizer("unigram", specs, 360, alpha=1.0)
    uniform = train_tokenizer("unigram", specs, 360, alpha=0.0)
    assert "Æ" not in proportional.vocab and "Æ" in uniform.vocab
    assert uniform.options["alpha"] == 0.0
