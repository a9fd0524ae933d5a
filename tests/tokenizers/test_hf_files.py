"""Saved tokenizers load in transformers: tokenizer.json (converted for the sentencepiece kinds and byte),
tokenizer_config.json and special_tokens_map.json, with the same ids and pad/bos/eos/unk set."""

from __future__ import annotations

import inspect
import io
import json
import textwrap

import pytest
import sentencepiece
from hypothesis import given, settings
from hypothesis import strategies as st

from tokembed.corpus import Corpus
from tokembed.tokenizers import KINDS, MorphTokenizer, SentencePieceTokenizer, load_tokenizer

transformers = pytest.importorskip("transformers")

LINES = [line for m in (json, textwrap) for line in inspect.getsource(m).splitlines() if line.strip()]
TEXTS = ["Hello, world! naïve café", "nospacesatallinthistext", "  two  spaces\tand\nlines ", "東京 🙂 ☃ 𝔘𝔫𝔦", "a </s> b <pad>",
         "x", "ﬁ ÆØÅ \x00", *LINES[::40]]  # fmt: skip
ROLE_ATTR = {"pad": "pad_token", "bos": "bos_token", "eos": "eos_token", "unk": "unk_token"}


@pytest.fixture(scope="module", params=["unigram", "bpe", "char", "bytebpe", "wordpiece", "byte"])
def saved(request, tmp_path_factory):
    kind = request.param
    folder = tmp_path_factory.mktemp("hf_files") / kind
    if kind == "byte":
        tok = KINDS[kind]()
    elif kind in ("bytebpe", "wordpiece"):
        corpus = folder.parent / "c.txt"
        corpus.write_text("\n".join(LINES) + "\n", encoding="utf-8")
        tok = KINDS[kind].train(Corpus([str(corpus)]), 400, progress=False)
    else:
        tok = KINDS[kind].train(LINES, None if kind == "char" else 600, progress=False)
    tok.save(folder)
    return tok, folder


def test_files_and_specials(saved):
    tok, folder = saved
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokembed.json"):
        assert (folder / name).is_file(), name
    auto = transformers.AutoTokenizer.from_pretrained(folder)
    for role, attr in ROLE_ATTR.items():
        if role in tok.special_tokens:
            assert getattr(auto, attr) == tok.special_tokens[role]
            assert getattr(auto, attr + "_id") == tok.vocab[tok.special_tokens[role]]
    assert load_tokenizer(folder).fingerprint == tok.fingerprint  # tokembed still loads its own engine file


def test_same_ids_single_and_batch(saved):
    tok, folder = saved
    auto = transformers.AutoTokenizer.from_pretrained(folder)
    want = tok.encode_batch(TEXTS)
    assert auto(TEXTS, add_special_tokens=False)["input_ids"] == want
    assert [auto(t, add_special_tokens=False)["input_ids"] for t in TEXTS] == want
    assert auto("a </s> b", add_special_tokens=False)["input_ids"] == tok.encode("a </s> b")  # specials in text are text
    if tok.lossless:
        assert [auto.decode(ids) for ids in want[:5]] == TEXTS[:5]


def test_tokenizers_library_loads_the_json(saved):
    from tokenizers import Tokenizer as Engine

    tok, folder = saved
    engine = Engine.from_file(str(folder / "tokenizer.json"))
    engine.encode_special_tokens = True
    assert [e.ids for e in engine.encode_batch(TEXTS, add_special_tokens=False)] == tok.encode_batch(TEXTS)


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def spm_engines(request):
    from tokenizers import Tokenizer as Engine

    tok = KINDS[request.param].train(LINES, 600, progress=False)
    engine = Engine.from_str(json.dumps(tok._hf_tokenizer_json()))
    engine.encode_special_tokens = True
    return tok, engine


@settings(max_examples=min(settings.default.max_examples, 60), deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\u2581"), max_size=40)
       | st.text(alphabet="ab c\tdefg<>/s_ﬁ東🙂", max_size=40))
def test_converted_model_matches_sentencepiece_on_any_text(spm_engines, text):
    tok, engine = spm_engines
    assert engine.encode(text, add_special_tokens=False).ids == tok.encode(text)


@pytest.mark.parametrize("model_type, norm", [("bpe", "identity"), ("unigram", "nmt_nfkc"), ("bpe", "nmt_nfkc")])
def test_loaded_model_files_convert(model_type, norm, tmp_path):
    """A loaded .model with a dummy prefix, NFKC and whitespace collapsing (T5/ALBERT style) converts too."""
    out = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(LINES), model_writer=out, model_type=model_type, vocab_size=500,
                                             byte_fallback=True, minloglevel=2, normalization_rule_name=norm,
                                             add_dummy_prefix=True, remove_extra_whitespaces=norm != "identity")  # fmt: skip
    tok = SentencePieceTokenizer(out.getvalue())
    tok.save(tmp_path / "t")
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path / "t")
    sp = sentencepiece.SentencePieceProcessor(model_proto=out.getvalue())
    assert auto(TEXTS, add_special_tokens=False)["input_ids"] == sp.encode(TEXTS)


def test_model_types_without_an_equivalent_write_no_json(tmp_path):
    out = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(LINES), model_writer=out, model_type="word", vocab_size=300, minloglevel=2)
    tok = SentencePieceTokenizer(out.getvalue())
    with pytest.warns(UserWarning, match="no tokenizer.json"):
        tok.save(tmp_path / "w")
    assert not (tmp_path / "w" / "tokenizer.json").exists() and not (tmp_path / "w" / "tokenizer_config.json").exists()
    assert load_tokenizer(tmp_path / "w").encode("the") == tok.encode("the")


def test_morph_writes_no_tokenizer_json(tmp_path):
    """morph's ids come from its segmenter, which no tokenizer.json can run (docs/tokenizers-spm.md)."""
    tok = MorphTokenizer.train(LINES, 600, progress=False, segmenter_options={"max_types": 300})
    tok.save(tmp_path / "m")
    assert not (tmp_path / "m" / "tokenizer.json").exists() and not (tmp_path / "m" / "tokenizer_config.json").exists()
    sp = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "m" / "spm.model"))
    text = "the decoders are unhappily indented"
    assert [i for c in tok.chunks(text) for i in sp.encode(c)] == tok.encode(text)  # the subword model, chunk by chunk


def test_loaded_bert_vocab_keeps_its_post_processor(tmp_path):
    """A loaded file's [CLS] ... [SEP] stays: transformers adds them as tokembed does."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz", *("##" + c for c in "abcdefghijklmnopqrstuvwxyz"), "the", "cat"]
    (tmp_path / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    tok = load_tokenizer(tmp_path / "vocab.txt")
    tok.save(tmp_path / "saved")
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert auto(["the cats", "a b"])["input_ids"] == tok.encode_batch(["the cats", "a b"]) and tok.encode("the cats")[0] == tok.vocab["[CLS]"]
    assert (auto.cls_token, auto.sep_token, auto.mask_token, auto.pad_token_id) == ("[CLS]", "[SEP]", "[MASK]", 0)
