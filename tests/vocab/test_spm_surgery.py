"""Vocabulary surgery on sentencepiece models: the unigram/bpe/char kinds, morph, and the .model of Hugging Face folders.

Every changed model is loaded by the sentencepiece library itself and compared id for id with
tokembed and with the folder's tokenizer.json."""

from __future__ import annotations

import inspect
import io
import json
import shutil
import textwrap
import warnings

import pytest
import sentencepiece
from _vocab_models import HELD_OUT, SENTENCES, hf_model
from hypothesis import given, settings
from hypothesis import strategies as st

from tokembed.cli import main
from tokembed.errors import TokenizerError
from tokembed.tokenizers import KINDS, MorphTokenizer, SentencePieceTokenizer, load_tokenizer
from tokembed.tokenizers.hf_engine import HFTokenizer
from tokembed.vocab.add import add_tokens, tokens_from_corpus
from tokembed.vocab.surgery import add, transplant, trim
from tokembed.vocab.transplant import transplant_tokenizer
from tokembed.vocab.trim import segmentation_changed, trim_tokenizer

LINES = [line for m in (json, textwrap) for line in inspect.getsource(m).splitlines() if line.strip()] + SENTENCES * 3
TRAIN, HELD = LINES[:80], LINES[200:400]
PROBES = ["Hello, world! naïve café 東京 🙂", "nospacesatallinthistext", "  two  spaces\tand\nlines ", "x", "a </s> b",
          "ÆØÅ ☃ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢", *HELD_OUT]  # fmt: skip


def _engine(blob: bytes):
    return sentencepiece.SentencePieceProcessor(model_proto=blob)


def _proto(tok) -> bytes:
    return tok.subword._proto if isinstance(tok, MorphTokenizer) else tok._proto


@pytest.fixture(scope="module", params=["unigram", "bpe", "char"])
def spm_tok(request):
    return KINDS[request.param].train(LINES, None if request.param == "char" else 700, progress=False)


@pytest.fixture(scope="module")
def morph_tok():
    return MorphTokenizer.train(LINES, 700, progress=False, segmenter_options={"max_types": 400})


# -- tokembed's kinds ---------------------------------------------------------------------------------
def test_trim_keeps_the_corpus_segmentation(spm_tok):
    small, vmap, facts = trim_tokenizer(spm_tok, TRAIN)
    assert type(small) is type(spm_tok) and small.vocab_size < spm_tok.vocab_size
    assert facts["exact"] and segmentation_changed(spm_tok, small, vmap, TRAIN) == []
    assert all(f"<0x{b:02X}>" in small.vocab for b in range(256)) and small.special_tokens == spm_tok.special_tokens
    texts = HELD + PROBES  # any text still has an encoding; sentencepiece runs the rewritten file with tokembed's ids
    assert _engine(small._proto).encode(texts) == small.encode_batch(texts)
    assert [small.decode(ids) for ids in small.encode_batch(texts)] == texts


@settings(max_examples=min(settings.default.max_examples, 25), deadline=None)
@given(st.lists(st.sampled_from(TRAIN), min_size=1, max_size=4))
def test_trim_hypothesis_over_corpus_sentences(bpe_trimmed, picked):
    tok, small, vmap = bpe_trimmed
    text = " ".join(picked)
    assert small.encode(text) == [vmap.new_id(i) for i in tok.encode(text)]


@pytest.fixture(scope="module")
def bpe_trimmed():
    tok = KINDS["bpe"].train(LINES, 700, progress=False)
    small, vmap, _ = trim_tokenizer(tok, TRAIN)
    return tok, small, vmap


def test_add_produces_new_pieces_and_leaves_other_text_alone(spm_tok):
    kind = spm_tok.kind
    tokens = ["☃"] if kind == "char" else [" JSONDecoder", " indentation"]
    new, vmap = add_tokens(spm_tok, tokens)
    forms = [t.token for t in vmap.new_tokens]
    assert new.vocab_size == spm_tok.vocab_size + len(forms) and vmap.old_to_new == list(range(spm_tok.vocab_size))
    produced = new.tokens("x" + "".join(tokens))
    assert all(f.replace(" ", "▁") in produced for f in (t.replace(" ", "▁") for t in tokens))
    other = [t for t in HELD + PROBES if not any(f.replace("▁", " ") in t for f in forms)]
    assert len(other) > 100 and new.encode_batch(other) == spm_tok.encode_batch(other)
    assert _engine(new._proto).encode(other + ["x" + "".join(tokens)]) == new.encode_batch(other + ["x" + "".join(tokens)])


def test_add_scores(spm_tok):
    """Unigram: the new piece scores its old pieces' total + margin; BPE: below every old piece."""
    if spm_tok.kind == "char":
        return
    new, vmap = add_tokens(spm_tok, [" JSONDecoder"])
    old_scores = [s for _, s, t in spm_tok.info.pieces if t == 1]
    piece, score, typ = new.info.pieces[vmap.new_tokens[-1].id]
    if spm_tok.kind == "unigram":
        total = sum(spm_tok.info.pieces[i][1] for i in vmap.new_tokens[-1].pieces)
        assert score == pytest.approx(min(0.0, total + 0.1), abs=1e-5)
    else:
        assert score < min(old_scores)


def test_add_special_and_bad_input(spm_tok):
    new, vmap = add_tokens(spm_tok, ["<mask>"], special=True)
    assert new.special_tokens["extra_0"] == "<mask>" and vmap.new_tokens[0].special
    assert "<mask>" not in new.tokens("a <mask> b") and "<mask>" in new.tokens("a <mask> b", allowed_special="all")
    assert _engine(new._proto).encode("a <mask> b") == new.encode("a <mask> b")  # a control piece: text never makes it
    existing = "<s>" if spm_tok.kind == "char" else new.vocab.token(new.info.pieces.index(next(p for p in new.info.pieces if p[2] == 1 and len(p[0]) > 1)))
    with pytest.raises(TokenizerError, match="already exists"):
        add_tokens(spm_tok, [existing.replace("▁", " ")], special=existing == "<s>")
    with pytest.raises(TokenizerError, match="non-empty"):
        add_tokens(spm_tok, [""])
    if spm_tok.kind == "char":
        with pytest.raises(TokenizerError, match="single characters"):
            add_tokens(spm_tok, ["ab"])


def test_trim_refuses_dropping_specials_and_bytes(spm_tok):
    for name in ("<unk>", "<s>", "<0x41>"):
        with pytest.raises(TokenizerError, match="cannot trim away"):
            trim_tokenizer(spm_tok, TRAIN, drop=[name])


def test_tokens_from_corpus_are_addable(spm_tok):
    texts = ["☃☃ ÆØÅ ☃"] * 3 if spm_tok.kind == "char" else TRAIN  # char: only characters outside the alphabet save tokens
    picked = tokens_from_corpus(spm_tok, texts, 2 if spm_tok.kind == "char" else 5)
    assert len(picked) == (2 if spm_tok.kind == "char" else 5)
    new, vmap = add_tokens(spm_tok, picked)
    assert sum(map(len, new.encode_batch(texts))) < sum(map(len, spm_tok.encode_batch(texts)))


def test_transplant_between_families(spm_tok, bpe_tok):
    moved, vmap, counts = transplant_tokenizer(bpe_tok, spm_tok)
    assert type(moved) is type(spm_tok) and counts["copied"] > 50
    assert set(bpe_tok.special_tokens.values()) <= set(moved.special_tokens.values())
    back, vmap2, counts2 = transplant_tokenizer(spm_tok, bpe_tok)
    assert counts2["copied"] > 50 and back.special_tokens["unk"] == "<unk>"


def test_transplant_refuses_post_processing_it_cannot_carry(spm_tok, wp_tok):
    import copy

    bert = copy.deepcopy(wp_tok)
    from tokembed.vocab.engine_file import engine_doc, rebuild

    doc = engine_doc(bert)
    doc["post_processor"] = {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                             "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [bert.vocab["<s>"]], "tokens": ["<s>"]}}}  # fmt: skip
    with pytest.raises(TokenizerError, match="cannot do"):
        transplant_tokenizer(rebuild(bert, doc), spm_tok)


# -- morph -------------------------------------------------------------------------------------------
def test_morph_trim_and_add(morph_tok, tmp_path):
    small, vmap, facts = trim_tokenizer(morph_tok, TRAIN)
    assert isinstance(small, MorphTokenizer) and small.vocab_size < morph_tok.vocab_size
    assert segmentation_changed(morph_tok, small, vmap, TRAIN) == []
    word = next(c for c in morph_tok.chunks(" ".join(TRAIN)) if c.startswith(" ") and len(morph_tok.encode(c)) > 1)
    new, vmap = add_tokens(morph_tok, [word])
    assert new.encode(word) == [vmap.new_tokens[-1].id]
    other = [t for t in HELD if word not in t]
    assert new.encode_batch(other) == morph_tok.encode_batch(other)
    split = next(w for w in (" " + w for w in " ".join(LINES).split() if w.isalpha()) if len(morph_tok.chunks(w)) > 1)
    with pytest.raises(TokenizerError, match="morph segmenter cuts it"):
        add_tokens(morph_tok, [split])
    new.save(tmp_path / "m")
    again = load_tokenizer(tmp_path / "m")
    assert isinstance(again, MorphTokenizer) and again.encode_batch(HELD) == new.encode_batch(HELD)


# -- Hugging Face folders with a sentencepiece model ----------------------------------------------------
def _spm_blob(model_type: str, **settings_) -> bytes:
    out = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(LINES), model_writer=out, model_type=model_type,
                                             vocab_size=600, byte_fallback=True, minloglevel=2, **settings_)  # fmt: skip
    return out.getvalue()


def _hf_spm_folder(folder, blob: bytes, model_name: str, *, with_json: bool = True):
    """A Llama model folder whose tokenizer is ``blob`` (as ``model_name``), with the tokenizer.json converted from it."""
    tok = SentencePieceTokenizer(blob)
    from tokenizers import Tokenizer as Engine

    hf_tok = HFTokenizer(Engine.from_str(json.dumps(tok._hf_tokenizer_json())), add_special_tokens=False)
    hf_model("llama", hf_tok, folder, tie=False)
    (folder / model_name).write_bytes(blob)
    if not with_json:
        (folder / "tokenizer.json").unlink()
    return folder


@pytest.fixture(scope="module", params=["llama", "t5"])
def spm_hf_dir(request, tmp_path_factory):
    base = tmp_path_factory.mktemp("spm_hf")
    if request.param == "llama":  # BPE, identity, dummy prefix: Llama 2's settings
        blob = _spm_blob("bpe", normalization_rule_name="identity", add_dummy_prefix=True, remove_extra_whitespaces=False)
        return _hf_spm_folder(base / "llama", blob, "tokenizer.model")
    blob = _spm_blob("unigram", normalization_rule_name="nmt_nfkc", add_dummy_prefix=True, remove_extra_whitespaces=True)
    return _hf_spm_folder(base / "t5", blob, "spiece.model")


def _check_pair(out, texts):
    """The written .model (sentencepiece), tokenizer.json (tokembed and transformers) give the same ids."""
    import transformers

    model = next(out.glob("*.model"))
    sp = sentencepiece.SentencePieceProcessor(model_file=str(model))
    tj = load_tokenizer(out / "tokenizer.json", add_special_tokens=False)
    assert sp.get_piece_size() <= tj.vocab_size
    want = sp.encode(texts)
    assert tj.encode_batch(texts) == want
    auto = transformers.AutoTokenizer.from_pretrained(out, split_special_tokens=True)  # "</s>" typed in text is text
    assert auto(texts, add_special_tokens=False)["input_ids"] == want
    assert [auto(t, add_special_tokens=False)["input_ids"] for t in texts[:5]] == want[:5]
    assert auto.eos_token == "</s>" and auto.eos_token_id == tj.vocab["</s>"]


def _loads_without_missing_weights(out):
    import transformers

    model, info = transformers.AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    return model


def test_hf_folder_trim_rewrites_the_model(spm_hf_dir, tmp_path):
    out = tmp_path / "trimmed"
    report = trim(spm_hf_dir, out, TRAIN[:25], held_out=HELD)  # 25 texts: the verification runs the model on each
    assert report["corpus_changed_share"] == 0 and report["verify"]["tokenization_agreement"] == 1.0
    model = next(out.glob("*.model"))
    assert model.name == next(spm_hf_dir.glob("*.model")).name and model.stat().st_size < next(spm_hf_dir.glob("*.model")).stat().st_size
    _check_pair(out, TRAIN + HELD + PROBES)
    _loads_without_missing_weights(out)


def test_hf_folder_add_rewrites_the_model(spm_hf_dir, tmp_path):
    out = tmp_path / "added"
    add(spm_hf_dir, out, ["JSONDecoder", "indentation"])
    _check_pair(out, TRAIN + HELD + PROBES + ["JSONDecoder indentation", "aJSONDecoderindentationz"])
    sp = sentencepiece.SentencePieceProcessor(model_file=str(next(out.glob("*.model"))))
    assert "▁JSONDecoder" in sp.encode("JSONDecoder", out_type=str)
    old = sentencepiece.SentencePieceProcessor(model_file=str(next(spm_hf_dir.glob("*.model"))))
    other = [t for t in HELD if "JSONDecoder" not in t and "indentation" not in t and "ind" not in t and "JSON" not in t]
    assert sp.encode(other) == old.encode(other)
    out3 = tmp_path / "unknown"  # a character outside the vocabulary (byte fallback) becomes a piece first
    add(spm_hf_dir, out3, ["☃snow"])
    _check_pair(out3, HELD + PROBES + ["☃snow", "a ☃snow ☃"])
    assert sentencepiece.SentencePieceProcessor(model_file=str(next(out3.glob("*.model")))).encode("☃snow", out_type=str) == ["▁☃snow"]
    out2 = tmp_path / "special"
    add(spm_hf_dir, out2, ["<extra_id_0>"], special=True)
    _check_pair(out2, HELD + PROBES)
    import transformers

    auto = transformers.AutoTokenizer.from_pretrained(out2)
    assert "<extra_id_0>" in auto.all_special_tokens


def test_hf_folder_with_only_a_model_file(tmp_path):
    blob = _spm_blob("bpe", normalization_rule_name="identity", add_dummy_prefix=True, remove_extra_whitespaces=False)
    src = _hf_spm_folder(tmp_path / "only", blob, "tokenizer.model", with_json=False)
    assert isinstance(load_tokenizer(src), SentencePieceTokenizer)
    out = tmp_path / "out"
    trim(src, out, TRAIN, verify_model=False)  # verify loads the source with AutoTokenizer: transformers needs protobuf for a lone .model
    assert (out / "tokenizer.model").is_file() and (out / "tokenizer.json").is_file()
    _check_pair(out, TRAIN + HELD + PROBES)
    cfg = json.loads((out / "tokenizer_config.json").read_text())
    new = load_tokenizer(out / "tokenizer.model")
    assert {v["content"] for v in cfg["added_tokens_decoder"].values()} == set(new.special_tokens.values())
    _loads_without_missing_weights(out)


def test_stale_model_file_is_left_out(gpt2_dir, tmp_path):
    src = tmp_path / "gpt2"
    shutil.copytree(gpt2_dir, src)
    (src / "spiece.model").write_bytes(_spm_blob("unigram", normalization_rule_name="identity"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trim(src, tmp_path / "out", SENTENCES)
    assert not (tmp_path / "out" / "spiece.model").exists()
    assert any("not the same tokenizer" in str(w.message) for w in caught)
    (src / "spiece.model").write_bytes(b"\x0a\x05junk" + bytes(range(40)))  # not a model at all: left out, no crash
    with pytest.warns(UserWarning, match="spiece.model"):
        trim(src, tmp_path / "out2", SENTENCES, verify_model=False)
    assert not (tmp_path / "out2" / "spiece.model").exists()


# -- CLI ---------------------------------------------------------------------------------------------
def test_cli_on_sentencepiece_kinds(tmp_path, capsys):
    tok = KINDS["unigram"].train(LINES, 700, progress=False)
    tok.save(tmp_path / "uni")
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(TRAIN) + "\n", encoding="utf-8")
    assert main(["vocab", "trim", str(tmp_path / "uni"), "--corpus", str(corpus), "-o", str(tmp_path / "t")]) == 0
    assert main(["vocab", "add", str(tmp_path / "t"), " JSONDecoder", "-o", str(tmp_path / "a")]) == 0
    added = load_tokenizer(tmp_path / "a")
    assert added.kind == "unigram" and "▁JSONDecoder" in added.tokens(" JSONDecoder")
    assert (tmp_path / "a" / "tokenizer.json").is_file() and (tmp_path / "a" / "vocab_map.json").is_file()
    capsys.readouterr()
    assert main(["vocab", "add", str(tmp_path / "a"), " JSONDecoder", "-o", str(tmp_path / "again")]) == 2
    assert "already exists" in capsys.readouterr().err and not (tmp_path / "again").exists()
    tok.save(tmp_path / "uni2")
    assert main(["vocab", "transplant", str(tmp_path / "uni2"), "--tokenizer", str(tmp_path / "a"), "-o", str(tmp_path / "x")]) == 0


def test_surgery_on_a_checkpoint_with_a_sentencepiece_tokenizer(tmp_path):
    from _vocab_models import make_checkpoint

    from tokembed.training.checkpoint import load_checkpoint

    tok = KINDS["bpe"].train(LINES, 700, progress=False)
    src = make_checkpoint(tok, tmp_path / "ckpt")
    report = trim(src, tmp_path / "t", TRAIN[:25])
    assert report["verify"]["tokenization_agreement"] == 1.0 and report["verify"]["max_abs_hidden_diff"] < 1e-5
    model, new_tok, _ = load_checkpoint(tmp_path / "t")
    assert new_tok.kind == "bpe" and model.config.vocab_size == new_tok.vocab_size
    transplant(tmp_path / "t", tmp_path / "x", KINDS["unigram"].train(LINES, 700, progress=False))
    assert load_checkpoint(tmp_path / "x")[1].kind == "unigram"


def test_hf_folder_pair_that_disagrees_writes_nothing(spm_hf_dir, tmp_path, monkeypatch):
    """A rewritten .model that gives other ids than the new tokenizer.json is an error, and no folder appears."""
    import tokembed.tokenizers.spm_hf as spm_hf

    if not next(spm_hf_dir.glob("*.model")).name.startswith("tokenizer"):
        pytest.skip("the Llama-style (BPE) folder is the one whose merges are re-derived")
    monkeypatch.setattr(spm_hf, "spm_merges", lambda pieces: [])  # a tokenizer.json without merges: other ids
    with pytest.raises(TokenizerError, match="other ids than the new tokenizer.json"):
        trim(spm_hf_dir, tmp_path / "out", TRAIN[:10], verify_model=False)
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


def test_add_a_character_to_a_char_model_without_byte_fallback():
    tok = KINDS["char"].train(LINES, byte_fallback=False, progress=False)
    assert tok.tokens("☃") == ["<unk>"]
    new, vmap = add_tokens(tok, ["☃"])
    assert new.tokens("a☃") == ["a", "☃"] and _engine(new._proto).encode("a☃") == new.encode("a☃")


def test_add_keeps_the_ids_of_added_tokens_past_the_pieces(tmp_path):
    """A tokenizer.json whose added tokens follow the model's pieces (a ``<pad>`` after Llama's 32000): new pieces
    go after them, every old id keeps its token (the engine would renumber added tokens absent from the model)."""
    from tokenizers import Tokenizer as Engine

    blob = _spm_blob("bpe", normalization_rule_name="identity", add_dummy_prefix=True, remove_extra_whitespaces=False)
    engine = Engine.from_str(json.dumps(SentencePieceTokenizer(blob)._hf_tokenizer_json()))
    engine.add_special_tokens(["<extra_pad>"])
    hf_tok = HFTokenizer(engine, add_special_tokens=False)
    new, vmap = add_tokens(hf_tok, ["JSONDecoder"])
    assert [new.vocab.token(i) for i in range(hf_tok.vocab_size)] == hf_tok.vocab.tokens
    assert new.vocab["<extra_pad>"] == hf_tok.vocab["<extra_pad>"] and new.encode("JSONDecoder") == [vmap.new_tokens[-1].id]
    src = hf_model("llama", hf_tok, tmp_path / "src", tie=False)
    (src / "tokenizer.model").write_bytes(blob)
    add(src, tmp_path / "out", ["JSONDecoder"])
    _check_pair(tmp_path / "out", HELD + PROBES + ["JSONDecoder x"])
    sp = sentencepiece.SentencePieceProcessor(model_file=str(tmp_path / "out" / "tokenizer.model"))
    assert sp.id_to_piece(hf_tok.vocab["<extra_pad>"]) == "<extra_pad>"


def test_transplant_hf_folders_across_families(spm_hf_dir, gpt2_dir, bpe_tok, tmp_path):
    """A folder with a .model moved to a byte-level BPE leaves the old .model out; a GPT-2 folder moved to a
    sentencepiece tokenizer gets its tokenizer.model and a tokenizer.json with the same ids."""
    import transformers

    with pytest.warns(UserWarning, match="left out of the transplanted folder"):
        transplant(spm_hf_dir, tmp_path / "to_bytebpe", bpe_tok)
    assert not list((tmp_path / "to_bytebpe").glob("*.model"))
    auto = transformers.AutoTokenizer.from_pretrained(tmp_path / "to_bytebpe", split_special_tokens=True)
    assert auto(SENTENCES, add_special_tokens=False)["input_ids"] == load_tokenizer(tmp_path / "to_bytebpe" / "tokenizer.json").encode_batch(SENTENCES)
    uni = KINDS["unigram"].train(LINES, 600, progress=False)
    transplant(gpt2_dir, tmp_path / "to_unigram", uni)
    _check_pair(tmp_path / "to_unigram", SENTENCES + PROBES)
    assert load_tokenizer(tmp_path / "to_unigram" / "tokenizer.model").encode_batch(HELD) == uni.encode_batch(HELD)
    _loads_without_missing_weights(tmp_path / "to_unigram")
