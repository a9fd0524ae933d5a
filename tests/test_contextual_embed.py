import json

import numpy as np
import pytest
import torch

from tokembed.training.checkpoint import save_checkpoint
from tokembed.cli import main
from tokembed.contextual import contextual_embeddings, parse_layers
from tokembed.errors import ConfigError, EmbeddingSourceError, HubIdError
from tokembed.model import ModelConfig
from tokembed.tokenizers import ByteTokenizer
from tokembed.training.checkpoint import load_checkpoint
from tokembed.training.config import TrainConfig

TEXT = "the bank by the river bank"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tokembed checkpoint (untrained weights are enough to test the plumbing)."""
    from tokembed.model import build_model

    cfg = TrainConfig(model=ModelConfig(vocab_size=259, d_model=16, n_layers=2, n_heads=2, max_seq_len=64), seq_len=32, max_steps=1)
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint"
    save_checkpoint(path, model=build_model(cfg.model), tokenizer=ByteTokenizer(), config=cfg)
    return path


def test_tokembed_checkpoint_layers_are_the_hidden_states(checkpoint):
    ce = contextual_embeddings(checkpoint, TEXT)
    assert ce.tokens == ByteTokenizer().tokens(TEXT) and ce.layer_ids == [0, 1, 2]
    model, tok, _ = load_checkpoint(checkpoint)
    hs = model(torch.tensor([tok.encode(TEXT)]), output_hidden_states=True).hidden_states
    for got, want in zip(ce.layers, hs):
        np.testing.assert_allclose(got, want[0].detach().numpy(), rtol=1e-6)
    summary = ce.to_json()["summary"]
    # RoPE adds nothing to e_t: at layer 0 every occurrence of a byte is the same vector
    assert summary["same_token_cosine"][0] == pytest.approx(1.0)
    b = next(r for r in summary["repeated"] if r["token"] == "<0x62>")  # 'b' of bank, bank, by
    assert b["positions"] == [4, 9, 22] and len(b["cosine"]) == 3


def test_cli_json_shape(checkpoint, capsys):
    assert main(["embed", str(checkpoint), "bank bank", "--layers", "0,-1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["tokens"]) == 9 and out["layer_ids"] == [0, 2]
    assert np.asarray(out["layers"]).shape == (2, 9, 16)  # layers × tokens × D
    assert set(out["summary"]) == {"layer_ids", "repeated", "same_token_cosine", "other_token_cosine"}
    assert main(["embed", str(checkpoint), "bank bank"]) == 0
    assert "same token" in capsys.readouterr().out


def _hf_tokenizer(folder, words):
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(["[UNK]", "[CLS]", "[SEP]", "[PAD]", *words])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]")
    fast.save_pretrained(folder)
    return len(vocab)


@pytest.mark.parametrize("arch", ["gpt2", "bert"])
def test_local_hugging_face_folder(tmp_path, arch):
    transformers = pytest.importorskip("transformers")
    V = _hf_tokenizer(tmp_path, ["the", "bank", "by", "river"])
    torch.manual_seed(0)
    if arch == "gpt2":
        config = transformers.GPT2Config(vocab_size=V, n_embd=16, n_layer=2, n_head=2, n_positions=32)
        model = transformers.GPT2Model(config)
    else:
        config = transformers.BertConfig(vocab_size=V, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=32, max_position_embeddings=32)
        model = transformers.BertModel(config)
    model.save_pretrained(tmp_path)
    ce = contextual_embeddings(tmp_path, TEXT)
    assert ce.tokens == ["the", "bank", "by", "the", "river", "bank"] and ce.layer_ids == [0, 1, 2]
    with torch.no_grad():
        ref = model.eval()(torch.tensor([[4, 5, 6, 4, 7, 5]]), output_hidden_states=True).hidden_states
    np.testing.assert_allclose(ce.layers[-1], ref[-1][0].numpy(), rtol=1e-5, atol=1e-6)
    bank = next(r for r in ce.to_json()["summary"]["repeated"] if r["token"] == "bank")
    assert bank["positions"] == [1, 5]


def test_bad_sources_and_layers():
    with pytest.raises(HubIdError, match="offline"):
        contextual_embeddings("bert-base-uncased", TEXT)
    with pytest.raises(HubIdError):
        contextual_embeddings("sentence-transformers/all-MiniLM-L6-v2", TEXT)
    with pytest.raises(EmbeddingSourceError, match="no such file"):
        contextual_embeddings("./no/such/folder", TEXT)
    with pytest.raises(ConfigError, match="out of range"):
        parse_layers("5", 3)
    with pytest.raises(ConfigError, match="not an integer"):
        parse_layers("last", 3)
    assert main(["embed", "org/model", "x"]) == 2
