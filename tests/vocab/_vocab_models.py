"""Helpers of the vocabulary-surgery tests: sentences, tiny Hugging Face folders (GPT-2-, Llama- and
BERT-style, random weights from transformers configs) and tokembed checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

from tokembed.corpus import Corpus

SENTENCES = [
    "The cat sat on the mat and looked at the dog.",
    "A dog barked at the cat, and the cat ran away.",
    "Tokenizers split text into tokens; embeddings map tokens to vectors.",
    "The model reads the tokens and predicts the next one.",
    "Numbers like 12345 and 2026 are split into digits or pairs.",
    "Small vocabularies make small embedding tables.",
    "naïve café déjà vu, and a little Unicode: 東京 🙂",
    "The quick brown fox jumps over the lazy dog.",
]
HELD_OUT = ["Dogs and cats are animals that people keep at home.", "Vectors of the tokens live in a table."]


def corpus_of(tmp: Path) -> Corpus:
    f = tmp / "train.txt"
    f.write_text("\n".join(SENTENCES * 3) + "\n", encoding="utf-8")
    return Corpus([str(f)])


def write_hf_tokenizer(tok, folder: Path, *, extra: dict | None = None) -> None:
    """tokenizer.json + tokenizer_config.json + special_tokens_map.json, as transformers writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(tok.engine.to_str(), encoding="utf-8")
    roles = {r: s for r, s in tok.special_tokens.items() if r in ("pad", "bos", "eos", "unk", "cls", "sep", "mask")}
    stm = {f"{r}_token": s for r, s in roles.items()}
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 64, **stm, **(extra or {})}
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(stm), encoding="utf-8")


def hf_model(kind: str, tok, folder: Path, *, rows: int | None = None, tie: bool = True, shard: str | None = None) -> Path:
    import torch
    import transformers

    torch.manual_seed(0)
    V = rows or tok.vocab_size
    ids = {f"{r}_token_id": tok.vocab.special_id(r) for r in ("pad", "bos", "eos") if tok.vocab.special_id(r) is not None}
    if kind == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=V, n_embd=32, n_layer=1, n_head=2, n_positions=64, tie_word_embeddings=tie, **ids)
        model = transformers.GPT2LMHeadModel(cfg)
    elif kind == "llama":
        cfg = transformers.LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                                       tie_word_embeddings=tie, **ids)
        model = transformers.LlamaForCausalLM(cfg)
    else:
        cfg = transformers.BertConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, max_position_embeddings=64, pad_token_id=tok.vocab.special_id("pad"))
        model = transformers.BertForMaskedLM(cfg)
    model.save_pretrained(folder, max_shard_size=shard) if shard else model.save_pretrained(folder)
    write_hf_tokenizer(tok, folder)
    return folder


def make_checkpoint(tok, folder: Path, *, embedding: str = "lookup", head: str = "untied", steps: int = 0) -> Path:
    """A tokembed checkpoint of a tiny model (optionally after a few AdamW steps, with train state)."""
    import torch

    from tokembed.training.checkpoint import optimizer_to_tensors, save_checkpoint
    from tokembed.embeddings.control import embedding_param_groups
    from tokembed.model import ModelConfig, build_model
    from tokembed.training.config import TrainConfig

    mcfg = ModelConfig(vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=2, max_seq_len=64, embedding=embedding,
                       head=head, rank=8 if embedding == "factorized" else None)
    model = build_model(mcfg, seed=0)
    config = TrainConfig(model=mcfg, max_steps=max(1, steps), seq_len=32)
    kw = {}
    if steps:
        opt = torch.optim.AdamW(embedding_param_groups(model, lr=1e-2, weight_decay=0.1))
        ids = torch.tensor([tok.encode(" ".join(SENTENCES))[:48]])
        for _ in range(steps):
            opt.zero_grad()
            model.loss(ids[:, :-1], ids[:, 1:]).backward()
            opt.step()
        tensors, meta = optimizer_to_tensors(opt)
        kw = {"train_tensors": tensors, "train_state": {"step": steps, "optimizer": meta, "config": config.to_dict()}}
    return save_checkpoint(folder, model=model, tokenizer=tok, config=config, **kw)
