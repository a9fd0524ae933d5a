"""Loaded tokenizer.json files (BPE/ByteLevel, WordPiece/BERT, Unigram, WordLevel) vs tokenizers and transformers."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _hf_data import disputed

from tokembed.errors import ConfigError, SpecialTokenError, TokenizerError
from tokembed.tokenizers import HFTokenizer, load_tokenizer
from tokembed.tokenizers.hf_engine import detect_roles

TEXTS = [
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "Käse, Straße und Grüße — naïve café; 東京とソウル. 🙂",
    "  leading and trailing spaces  ",
    "",
    "tabs\tand\nnewlines\r\n",
]
TRAIN = (
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.\n"
    "Sphinx of black quartz, judge my vow. Käse, Straße und Grüße — naïve café; 東京とソウル.\n"
) * 30


def _build(kind: str):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if kind == "bpe":
        eng = Tokenizer(models.BPE())
        eng.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        eng.decoder = decoders.ByteLevel()
        tr = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "</s>", "<pad>"],
                                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        eng.train_from_iterator(TRAIN.splitlines(), trainer=tr)
        eng.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", special_tokens=[("<s>", eng.token_to_id("<s>")), ("</s>", eng.token_to_id("</s>"))]
        )
    elif kind == "wordpiece":
        eng = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        eng.normalizer = normalizers.BertNormalizer(lowercase=True)
        eng.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        eng.decoder = decoders.WordPiece()
        tr = trainers.WordPieceTrainer(vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                                       show_progress=False)
        eng.train_from_iterator(TRAIN.splitlines(), trainer=tr)
        eng.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", eng.token_to_id("[CLS]")), ("[SEP]", eng.token_to_id("[SEP]"))]
        )
    elif kind == "unigram":
        eng = Tokenizer(models.Unigram())
        eng.pre_tokenizer = pre_tokenizers.Metaspace()
        eng.decoder = decoders.Metaspace()
        tr = trainers.UnigramTrainer(vocab_size=150, special_tokens=["<unk>", "<s>", "</s>"], unk_token="<unk>",
                                     show_progress=False)
        eng.train_from_iterator(TRAIN.splitlines(), trainer=tr)
    else:  # wordlevel
        eng = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2, "!": 3}, unk_token="[UNK]"))
        eng.pre_tokenizer = pre_tokenizers.Whitespace()
        eng.add_special_tokens(["[UNK]"])
    eng.enable_truncation(max_length=6)  # stored in the file; must not apply to a single encode
    eng.enable_padding(length=40, pad_id=0, pad_token=eng.id_to_token(0))
    return eng


@pytest.fixture(scope="module", params=["bpe", "wordpiece", "unigram", "wordlevel"])
def built(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    _build(request.param).save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
    return request.param, folder


def _raw(folder):
    from tokenizers import Tokenizer

    eng = Tokenizer.from_file(str(folder / "tokenizer.json"))
    eng.no_truncation()
    eng.no_padding()
    return eng


def test_ids_equal_tokenizers_and_transformers(built):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    kind, folder = built
    tok = load_tokenizer(folder)
    assert isinstance(tok, HFTokenizer) and tok.kind == "hf"
    raw = _raw(folder)
    fast = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(str(folder))
    for text in TEXTS:
        ids = tok.encode(text)
        assert ids == raw.encode(text).ids, (kind, text)
        assert ids == fast(text)["input_ids"] == auto.encode(text), (kind, text)
        assert tok.encode_batch([text, text]) == [ids, ids]
    if kind in ("bpe", "wordpiece"):  # the post-processor's specials are added, and can be left out
        first, last = ("<s>", "</s>") if kind == "bpe" else ("[CLS]", "[SEP]")
        ids = tok.encode("hello")
        assert tok.vocab.token(ids[0]) == first and tok.vocab.token(ids[-1]) == last
        assert tok.encode("hello", add_special_tokens=False) == ids[1:-1]


def test_stored_truncation_and_padding_only_when_asked(built):
    kind, folder = built
    tok = load_tokenizer(folder)
    long = "hello world " * 20
    assert len(tok.encode(long)) > 6
    assert len(tok.encode(long, truncation=True)) == 6
    assert len(tok.encode("hello", padding=True)) == 40


def test_special_strings_are_plain_unless_allowed(built):
    from transformers import PreTrainedTokenizerFast

    kind, folder = built
    tok = load_tokenizer(folder)
    fast = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    special = sorted(set(tok.special_tokens.values()))[0]
    text = f"hello {special} world"
    # transformers' split_special_tokens=True is tokembed's default rule
    fast_plain = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), split_special_tokens=True)
    assert tok.encode(text) == fast_plain(text)["input_ids"]
    # allowed: same as HF's default matching of added tokens
    assert tok.encode(text, allowed_special={special}) == fast(text)["input_ids"]
    with pytest.raises(SpecialTokenError, match="allowed_special"):
        tok.encode(text, disallowed_special="raise")


def test_offsets_point_into_text(built):
    kind, folder = built
    tok = load_tokenizer(folder)
    text = "hello world, Käse"
    ids, offsets = tok.encode_with_offsets(text)
    assert len(ids) == len(offsets)
    raw = _raw(folder).encode(text)
    assert offsets == [tuple(o) for o in raw.offsets]
    special = sorted(set(tok.special_tokens.values()))[0]
    ids2, off2 = tok.encode_with_offsets("hello " + special, allowed_special="all", add_special_tokens=False)
    assert off2[-1] == (6, 6 + len(special)) and ids2[-1] == tok.vocab[special]


def test_save_as_tokembed_folder_and_reload(built, tmp_path):
    kind, folder = built
    tok = load_tokenizer(folder)
    tok.save(tmp_path / "t")
    back = load_tokenizer(tmp_path / "t")
    assert back.fingerprint == tok.fingerprint and back.special_tokens == tok.special_tokens
    assert back.encode(TEXTS[1]) == tok.encode(TEXTS[1])
    assert len(back.encode("hello world " * 20, truncation=True)) == 6  # stored settings survive


def test_roles():
    from tokenizers import Tokenizer, models

    eng = Tokenizer(models.WordLevel({"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "<|im_start|>": 3}, unk_token="[UNK]"))
    eng.add_special_tokens(["[CLS]", "[SEP]", "<|im_start|>"])
    assert detect_roles(eng) == {
        "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "extra_0": "<|im_start|>", "bos": "[CLS]", "eos": "[SEP]"
    }


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=50))
def test_byte_level_bpe_file_round_trip_and_tiktoken_engine(tmp_path_factory, text):
    tok = _bytelevel_tok(tmp_path_factory)  # GPT-2 layout: ByteLevel pre-tokenizer with its own regex
    ids = tok.encode(text, add_special_tokens=False)
    assert ids == tok.engine.encode(text).ids  # tiktoken path == HF engine
    if not disputed(text):
        assert ids == tok.fast_path.bpe.reference().encode(text)  # == the pure-Python reference
    assert tok.decode(ids) == text


_CACHE = {}


def _bytelevel_tok(tmp_path_factory):
    if "t" not in _CACHE:
        eng = _build("bpe")
        eng.post_processor = None
        eng.no_truncation()
        eng.no_padding()
        p = tmp_path_factory.mktemp("bl") / "tokenizer.json"
        eng.save(str(p))
        _CACHE["t"] = load_tokenizer(p)
        assert _CACHE["t"].fast_path is not None and _CACHE["t"].lossless
    return _CACHE["t"]


def test_options_errors(built):
    kind, folder = built
    tok = load_tokenizer(folder)
    with pytest.raises(TokenizerError, match="subword regularization"):
        tok.encode("hello", dropout=0.1)
    eng = _raw(folder)
    bare = HFTokenizer(eng)
    with pytest.raises(ConfigError, match="stores no truncation"):
        bare.encode("hello", truncation=True)


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40), max_size=4))
def test_any_text_equals_raw_engine_every_model_type(tmp_path_factory, texts):
    for kind in ("bpe", "wordpiece", "unigram", "wordlevel"):
        tok, raw = _loaded(tmp_path_factory, kind)
        want = [e.ids for e in raw.encode_batch(texts)]
        assert tok.encode_batch(texts) == want == [tok.encode(t) for t in texts], kind


def _loaded(tmp_path_factory, kind):
    if kind not in _CACHE:
        folder = tmp_path_factory.mktemp("any_" + kind)
        eng = _build(kind)
        eng.save(str(folder / "tokenizer.json"))
        raw = _raw(folder)
        raw.encode_special_tokens = True  # tokembed's rule: special strings are plain text
        _CACHE[kind] = (load_tokenizer(folder), raw)
    return _CACHE[kind]
