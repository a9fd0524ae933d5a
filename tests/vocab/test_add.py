"""add: new tokens that encode produces, old segmentations unchanged, rows initialised, bad input refused."""

from __future__ import annotations

import json

import pytest
import torch
from _vocab_models import HELD_OUT, SENTENCES, make_checkpoint
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open

from tokembed.errors import TokenizerError
from tokembed.vocab.add import add_tokens, tokens_from_corpus
from tokembed.vocab.map import VocabMap
from tokembed.vocab.surgery import add

NEW_BPE = [" tokembed", " vocabulary", "surgery"]
NEW_WP = ["tokembed", "vocabulary"]


@pytest.fixture(scope="module")
def added_bpe(bpe_tok):
    return add_tokens(bpe_tok, NEW_BPE)


@pytest.fixture(scope="module")
def added_wp(wp_tok):
    return add_tokens(wp_tok, NEW_WP)


def test_new_tokens_are_produced(added_bpe, added_wp):
    new, vmap = added_bpe
    assert new.tokens(" tokembed does vocabulary surgery")[:1] == ["Ġtokembed"]
    assert "Ġvocabulary" in new.tokens(" tokembed does vocabulary surgery")
    assert {t.token for t in vmap.new_tokens} >= {"Ġtokembed", "Ġvocabulary", "surgery"}
    wnew, _ = added_wp
    assert wnew.tokens("tokembed vocabulary")[:2] == ["tokembed", "vocabulary"]


def _text(token: str) -> str:
    from tokembed.vocab.transplant import marker_key

    return marker_key(token)[1] if token.startswith(("Ġ", "##")) else token


@settings(deadline=None)
@given(st.text(max_size=60) | st.sampled_from(SENTENCES + HELD_OUT))
def test_old_segmentations_unchanged(added_bpe, added_wp, bpe_tok, wp_tok, text):
    for old, (new, vmap) in ((bpe_tok, added_bpe), (wp_tok, added_wp)):
        if all(_text(t.token).lower() not in text.lower() for t in vmap.new_tokens):
            assert new.encode(text) == old.encode(text)


def test_unigram_pieces_with_scores():
    from tokenizers import Tokenizer, models, pre_tokenizers

    from tokembed.tokenizers import HFTokenizer

    vocab = [("<unk>", 0.0)] + [(c, -2.0) for c in "abcdefghijklmnopqrstuvwxyz"] + [("▁", -1.0), ("▁ab", -1.5)]
    eng = Tokenizer(models.Unigram(vocab, unk_id=0))
    eng.pre_tokenizer = pre_tokenizers.Metaspace()
    tok = HFTokenizer(eng)
    new, vmap = add_tokens(tok, ["cab"])
    assert new.tokens("cab abc") == ["▁cab", "▁ab", "c"]
    assert new.encode("abc dd") == tok.encode("abc dd")


def test_bad_input(bpe_tok, wp_tok, tmp_path):
    with pytest.raises(TokenizerError, match="already exists"):
        add_tokens(bpe_tok, [" the"])
    with pytest.raises(TokenizerError, match="non-empty"):
        add_tokens(bpe_tok, [""])
    with pytest.raises(TokenizerError, match=r"special=True"):
        add_tokens(bpe_tok, [" two words"])
    with pytest.raises(TokenizerError, match=r"special=True"):
        add_tokens(wp_tok, ["a-b"])
    with pytest.raises(TokenizerError, match="already exists"):
        add_tokens(bpe_tok, ["</s>"], special=True)
    with pytest.raises(TokenizerError):
        add(make_checkpoint(bpe_tok, tmp_path / "ck"), tmp_path / "out", [" the"])
    assert not (tmp_path / "out").exists()


def test_special_tokens(bpe_tok):
    new, vmap = add_tokens(bpe_tok, ["<|tool|>"], special=True)
    assert new.encode("<|tool|>", allowed_special={"<|tool|>"}) == [bpe_tok.vocab_size]
    assert new.encode("x<|tool|>") == bpe_tok.encode("x<|tool|>")  # plain text unless allowed
    assert vmap.new_tokens[0].special


def test_from_corpus_picks_savings(bpe_tok):
    picked = tokens_from_corpus(bpe_tok, SENTENCES * 5, 3)
    assert len(picked) == 3 and all(len(bpe_tok.encode(w)) > 1 for w in picked)


@pytest.mark.parametrize("init", ["compose", "mean", "mean-cov", "random"])
def test_add_checkpoint_rows(bpe_tok, tmp_path, init):
    src = make_checkpoint(bpe_tok, tmp_path / "ck", head="tied_bias")
    rep = add(src, tmp_path / "out", [" tokembed"], init=init, verify_texts=SENTENCES[:2])
    vmap = VocabMap.load(tmp_path / "out")
    E = safe_open(str(src / "model.safetensors"), "pt").get_tensor("embedding.weight")
    E2 = safe_open(str(tmp_path / "out" / "model.safetensors"), "pt").get_tensor("embedding.weight")
    assert torch.equal(E2[: len(E)], E)
    new = vmap.new_tokens[-1]
    if init == "compose":
        assert torch.allclose(E2[new.id], E[new.pieces].mean(0), atol=1e-6)
    elif init == "mean":
        assert torch.allclose(E2[new.id], E.mean(0), atol=1e-6)
    else:
        assert not torch.allclose(E2[new.id], E.mean(0), atol=1e-9) or init == "mean-cov"
    assert rep["verify"]["tokenization_agreement"] == 1.0  # verify texts hold no new token
    assert "head.embedding.weight" not in safe_open(str(tmp_path / "out" / "model.safetensors"), "pt").keys()  # tied: stored once


def test_add_fills_padding_rows_first(llama_padded_dir, bpe_tok, tmp_path):
    import transformers

    add(llama_padded_dir, tmp_path / "out", [" tokembed"])
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["vocab_size"] == bpe_tok.vocab_size + 16  # the new rows went into the padding
    vmap = VocabMap.load(tmp_path / "out")
    new_id = vmap.new_tokens[-1].id
    assert new_id < cfg["vocab_size"]
    model, info = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out", output_loading_info=True)
    assert not info["missing_keys"]
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    assert new_id in hf_tok(" tokembed")["input_ids"]


def test_add_hf_pad_to_multiple_and_interop(gpt2_dir, bert_dir, tmp_path):
    import transformers

    add(gpt2_dir, tmp_path / "g", [" tokembed"], pad_to_multiple_of=64, verify_texts=HELD_OUT)
    cfg = json.loads((tmp_path / "g" / "config.json").read_text())
    assert cfg["vocab_size"] % 64 == 0
    model, info = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "g", output_loading_info=True)
    assert not info["missing_keys"] and model.lm_head.weight.shape[0] == cfg["vocab_size"]
    add(bert_dir, tmp_path / "b", ["tokembed"], special=False)
    model, info = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "b", output_loading_info=True)
    assert not info["missing_keys"]
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "b")
    assert hf_tok.convert_ids_to_tokens(hf_tok("tokembed")["input_ids"]) == ["[CLS]", "tokembed", "[SEP]"] or \
        "tokembed" in hf_tok.convert_ids_to_tokens(hf_tok("tokembed")["input_ids"])
