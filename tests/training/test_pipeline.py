"""The one pipeline (prepare -> train -> evaluate) of ``tokembed train`` and the study."""

import pytest
import torch

from tokembed.corpus import Corpus
from tokembed.errors import ConfigError
from tokembed.model import ModelConfig
from tokembed.training.checkpoint import load_checkpoint
from tokembed.training.config import TrainConfig
from tokembed.training.evaluate import evaluate
from tokembed.training.pipeline import prepare_tokenizer, train_and_evaluate
from tokembed.training.shards import build_shards

from _torch_threads import single_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("single_thread")


def test_train_returns_the_model_it_trained_and_eval_scores_it_in_memory(tmp_path):
    (tmp_path / "c.txt").write_text("\n".join(f"Document {i} says hello to the world.\n" for i in range(60)))
    corpus = Corpus([str(tmp_path / "c.txt")])
    tok = prepare_tokenizer("byte", corpus)
    shards = build_shards(tok, corpus, tmp_path / "data", val_fraction=0.3, seed=0, workers=1, progress=False)
    cfg = TrainConfig(model=ModelConfig(vocab_size=0, d_model=16, n_layers=1, n_heads=2, max_seq_len=32),
                      seq_len=16, batch_size=2, max_steps=3, device="cpu")
    run = train_and_evaluate(cfg, tokenizer=tok, shards=shards, out_dir=tmp_path / "run", progress=False)
    saved, _, _ = load_checkpoint(run.train.checkpoint)
    for (name, a), (_, b) in zip(run.train.model.state_dict().items(), saved.state_dict().items()):
        assert torch.equal(a, b), name  # the model in memory is the one written
    again = evaluate(saved, tok, shards["val"], seq_len=16, batch_size=2)
    assert run.eval is not None and run.eval.bits_per_byte == again.bits_per_byte and run.eval.band_loss == again.band_loss


def test_prepare_tokenizer_names_the_parameter_for_an_unknown_kind(tmp_path):
    with pytest.raises(ConfigError, match="tokenizer='nosuch' is neither a kind") as e:
        prepare_tokenizer("nosuch", None)
    assert e.value.param == "tokenizer"
