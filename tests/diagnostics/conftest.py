"""Fixtures for the diagnostics tests: tiny Hugging Face model folders and a WordPiece tokenizer.json,
built here with ``tokenizers`` and ``transformers``' ``save_pretrained`` (nothing is downloaded)."""

import json
import string

import numpy as np
import pytest

#: the WordPiece vocabulary of the test tokenizer: specials, BERT-style unused slots, letters, pieces, words
WORDS = ["the", "quick", "brown", "fox", "dog", "cat", "run", "jump", "over", "lazy"]
VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + [f"[unused{i}]" for i in range(5)]
    + list(string.ascii_lowercase)
    + [f"##{c}" for c in string.ascii_lowercase]
    + WORDS
    + ["##ing", "##ed", "##ly"]
    + list(string.digits)
    + list(".,!?[]")
)
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_wordpiece_tokenizer():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    tok = Tokenizer(
        models.WordPiece({t: i for i, t in enumerate(VOCAB)}, unk_token="[UNK]", max_input_chars_per_word=100)
    )
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.add_special_tokens(SPECIALS)
    return tok


@pytest.fixture(scope="session")
def tokenizer_json(tmp_path_factory):
    d = tmp_path_factory.mktemp("tokjson")
    build_wordpiece_tokenizer().save(str(d / "tokenizer.json"))
    return d / "tokenizer.json"


def _save(model, folder, tokenizer_json=None, **kw):
    model.save_pretrained(str(folder), **kw)
    if tokenizer_json is not None:
        (folder / "tokenizer.json").write_bytes(tokenizer_json.read_bytes())
    return folder


@pytest.fixture(scope="session")
def hf_models(tmp_path_factory, tokenizer_json):
    """name -> (folder, state dict as numpy): bert (no head), bert_mlm (tied), gpt2 (tied),
    llama_sharded (untied, 4+ shards), llama_tied."""
    import torch
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        BertModel,
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
    )

    torch.manual_seed(0)
    V = len(VOCAB)
    bert_cfg = dict(vocab_size=V, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    llama_cfg = dict(
        vocab_size=V,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    models = {
        "bert": BertModel(BertConfig(**bert_cfg)),
        "bert_mlm": BertForMaskedLM(BertConfig(**bert_cfg)),
        "gpt2": GPT2LMHeadModel(
            GPT2Config(vocab_size=V, n_embd=16, n_layer=1, n_head=2, n_positions=32, bos_token_id=2, eos_token_id=3)
        ),
        "llama_sharded": LlamaForCausalLM(LlamaConfig(**llama_cfg, tie_word_embeddings=False)),
        "llama_tied": LlamaForCausalLM(LlamaConfig(**llama_cfg, tie_word_embeddings=True)),
    }
    out = {}
    for name, m in models.items():
        folder = tmp_path_factory.mktemp(name)
        _save(m, folder, tokenizer_json, **({"max_shard_size": "3KB"} if name == "llama_sharded" else {}))
        out[name] = (folder, {k: v.detach().numpy().copy() for k, v in m.state_dict().items()})
    return out


@pytest.fixture
def matrix_folder(tmp_path):
    """A (len(VOCAB), 8) random matrix as E.npy plus vocab.txt."""
    rng = np.random.default_rng(0)
    E = rng.standard_normal((len(VOCAB), 8)).astype(np.float32)
    np.save(tmp_path / "E.npy", E)
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return tmp_path, E


def write_config(folder, **changes):
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))
