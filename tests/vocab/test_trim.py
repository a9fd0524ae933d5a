"""trim: the corpus keeps its segmentation, models keep their hidden states, and every table follows."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open

from tokembed.errors import EmptyCorpusError, TokenizerError
from tokembed.vocab.map import VocabMap
from tokembed.vocab.surgery import trim
from tokembed.vocab.trim import segmentation_changed, trim_tokenizer

from _vocab_models import HELD_OUT, SENTENCES, make_checkpoint

CORPUS = SENTENCES[:4]


@pytest.fixture(scope="module")
def trimmed_bpe(bpe_tok):
    return trim_tokenizer(bpe_tok, CORPUS)


@pytest.fixture(scope="module")
def trimmed_wp(wp_tok):
    return trim_tokenizer(wp_tok, CORPUS)


@settings(max_examples=min(settings.default.max_examples, 12), deadline=None)
@given(st.lists(st.sampled_from(SENTENCES), min_size=1, max_size=3, unique=True))
def test_trim_keeps_every_corpus_segmentation(bpe_tok, wp_tok, corpus):
    """Whatever the trimming corpus, each of its texts encodes to the same pieces (ids renumbered)."""
    for old in (bpe_tok, wp_tok):
        new, vmap, _ = trim_tokenizer(old, corpus)
        assert new.vocab_size < old.vocab_size
        for text in corpus:
            assert new.tokens(text) == old.tokens(text)
            assert new.encode(text) == [vmap.new_id(i) for i in old.encode(text)]


def test_trim_keeps_specials_alphabet_and_shrinks(trimmed_bpe, trimmed_wp, bpe_tok, wp_tok):
    new, vmap, facts = trimmed_bpe
    assert new.vocab_size < bpe_tok.vocab_size and facts["exact"]
    assert new.special_tokens == bpe_tok.special_tokens
    assert new.decode(new.encode("any text ✓ at all")) == "any text ✓ at all"  # 256 bytes kept: no OOV
    assert new.fast_path is not None  # still tiktoken-compatible (merges in id order)
    wnew, wmap, _ = trimmed_wp
    assert wnew.vocab.special_id("unk") is not None and wnew.vocab_size < wp_tok.vocab_size


def test_trim_held_out_changes_but_stays_lossless(trimmed_bpe, bpe_tok):
    new, vmap, _ = trimmed_bpe
    changed = segmentation_changed(bpe_tok, new, vmap, HELD_OUT)
    assert changed  # the held-out text used dropped tokens
    assert all(new.decode(new.encode(t)) == t for t in HELD_OUT)


def test_trim_bad_input(bpe_tok, wp_tok, tmp_path):
    with pytest.raises(EmptyCorpusError):
        trim_tokenizer(bpe_tok, ["", ""])
    with pytest.raises(TokenizerError, match="special"):
        trim_tokenizer(bpe_tok, CORPUS, drop=["</s>"])
    with pytest.raises(TokenizerError, match="special"):
        trim_tokenizer(wp_tok, CORPUS, drop=["[UNK]"])
    with pytest.raises(EmptyCorpusError):
        trim(make_checkpoint(bpe_tok, tmp_path / "ck"), tmp_path / "out", [""])
    assert not (tmp_path / "out").exists()


def test_trim_checkpoint_hidden_states_and_tables(bpe_tok, tmp_path):
    src = make_checkpoint(bpe_tok, tmp_path / "ck", steps=2)
    rep = trim(src, tmp_path / "out", CORPUS, held_out=HELD_OUT)
    assert rep["verify"]["tokenization_agreement"] == 1.0
    assert rep["verify"]["max_abs_hidden_diff"] < 1e-5
    assert 0 < rep["verify"]["dropped_probability_mass"] < 1
    assert rep["corpus_changed_share"] == 0.0 and rep["held_out_changed_share"] > 0
    vmap = VocabMap.load(tmp_path / "out")
    assert vmap.old_fingerprint == bpe_tok.fingerprint and vmap.new_fingerprint
    old = safe_open(str(src / "model.safetensors"), "pt")
    new = safe_open(str(tmp_path / "out" / "model.safetensors"), "pt")
    keep = vmap.source
    for name in ("embedding.weight", "head.proj.weight", "head.proj.bias"):
        assert torch.equal(new.get_tensor(name), old.get_tensor(name)[keep])
    st_old = safe_open(str(src / "train_state.safetensors"), "pt")
    st_new = safe_open(str(tmp_path / "out" / "train_state.safetensors"), "pt")
    moved = [k for k in st_new.keys() if st_new.get_tensor(k).shape != st_old.get_tensor(k).shape]
    assert len(moved) >= 6  # exp_avg + exp_avg_sq of the embedding, head weight and head bias
    for k in moved:
        assert torch.equal(st_new.get_tensor(k), st_old.get_tensor(k)[keep])
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["model"]["vocab_size"] == vmap.new_size


def test_trim_hf_gpt2_tied_and_interop(gpt2_dir, bpe_tok, tmp_path):
    import transformers

    out = tmp_path / "gpt2"
    rep = trim(gpt2_dir, out, CORPUS)
    assert rep["verify"]["tokenization_agreement"] == 1.0 and rep["verify"]["max_abs_hidden_diff"] < 1e-5
    cfg = json.loads((out / "config.json").read_text())
    vmap = VocabMap.load(out)
    assert cfg["vocab_size"] == vmap.new_size
    assert cfg["eos_token_id"] == vmap.new_id(bpe_tok.vocab.special_id("eos"))
    model = transformers.AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    model, info = model
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()  # tied stays tied
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    assert hf_tok(CORPUS[0])["input_ids"] == trim_tokenizer(bpe_tok, CORPUS)[0].encode(CORPUS[0])


def test_trim_hf_llama_sharded_untouched_bytes(llama_dir, tmp_path):
    out = tmp_path / "llama"
    trim(llama_dir, out, CORPUS)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    files = sorted(set(index["weight_map"].values()))
    assert len(files) > 1
    vocab_files = {index["weight_map"][k] for k in ("model.embed_tokens.weight", "lm_head.weight")}
    for f in files:
        if f not in vocab_files:
            assert (out / f).read_bytes() == (llama_dir / f).read_bytes()
    old = safe_open(str(llama_dir / index["weight_map"]["model.norm.weight"]), "pt")
    new = safe_open(str(out / index["weight_map"]["model.norm.weight"]), "pt")
    assert torch.equal(old.get_tensor("model.norm.weight"), new.get_tensor("model.norm.weight"))


def test_trim_hf_bert_wordpiece(bert_dir, tmp_path):
    rep = trim(bert_dir, tmp_path / "bert", CORPUS)
    assert rep["verify"]["tokenization_agreement"] == 1.0 and rep["verify"]["max_abs_hidden_diff"] < 1e-5
    assert (tmp_path / "bert" / "tokenizer.json").is_file()
