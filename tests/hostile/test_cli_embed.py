"""``tokembed embed`` on hostile Hugging Face folders (issue 12.5 and the tracebacks list):
pickled weights only, a tokenizer with added tokens beyond the embedding rows, NaN rows,
a config.json of the wrong JSON type. Every folder is built here."""

import json

import pytest
import torch

from tokembed.cli import main

transformers = pytest.importorskip("transformers")

WORDS = ["the", "bank", "by", "river"]


def hf_folder(folder, *, added=(), nan_rows=(), safe=True):
    """A tiny BERT (MiniLM-like) folder; ``added`` tokens go into the tokenizer only (not the embedding)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(["[UNK]", "[CLS]", "[SEP]", "[PAD]", *WORDS])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]")
    if added:
        fast.add_tokens(list(added))
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=32)
    model = transformers.BertModel(cfg)
    with torch.no_grad():
        for r in nan_rows:
            model.embeddings.word_embeddings.weight[r] = float("nan")
    model.save_pretrained(folder)
    if not safe:  # the pickled layout of older checkpoints (torch.save of the state dict)
        (folder / "model.safetensors").unlink()
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


def run(capsys, *argv):
    rc = main(["embed", *map(str, argv)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_pickled_weights_are_refused_naming_the_conversion(tmp_path, capsys, monkeypatch):
    d = hf_folder(tmp_path / "m", safe=False)
    assert (d / "pytorch_model.bin").is_file() and not list(d.glob("*.safetensors"))
    calls = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a))  # must never be reached
    rc, _, err = run(capsys, d, "the bank")
    assert rc == 2 and not calls
    assert "pickled (pytorch_model.bin)" in err and "safetensors" in err and "Traceback" not in err


def test_added_tokens_beyond_the_embedding_give_the_mismatch_error(tmp_path, capsys):
    d = hf_folder(tmp_path / "m", added=["riverbank", "banking"])
    rc, _, err = run(capsys, d, "the riverbank by the river")
    assert rc == 2 and "10 tokens but the embedding has 8 rows" in err and "IndexError" not in err


def test_nan_rows_are_named(tmp_path, capsys):
    d = hf_folder(tmp_path / "m", nan_rows=[5, 6])
    rc, _, err = run(capsys, d, "the bank")
    assert rc == 2 and "rows [5, 6]" in err and "word_embeddings" in err


@pytest.mark.parametrize("content", ["[1, 2, 3]", "null"])
def test_config_of_the_wrong_json_type(tmp_path, capsys, content):
    d = hf_folder(tmp_path / "m")
    (d / "config.json").write_text(content)
    rc, _, err = run(capsys, d, "the bank")
    assert rc == 2 and "config.json: holds JSON" in err and "expected an object" in err


def test_a_good_folder_still_embeds(tmp_path, capsys):
    d = hf_folder(tmp_path / "m")
    rc, out, _ = run(capsys, d, "the bank by the river bank", "--json")
    assert rc == 0 and json.loads(out)["tokens"] == ["the", "bank", "by", "the", "river", "bank"]
