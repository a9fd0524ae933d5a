"""load_embeddings: Hugging Face folders of three families (tied, untied, sharded), matrices, vectors, bad input."""

import shutil

import numpy as np
import pytest
from conftest import VOCAB, write_config

from tokembed.sources import find_embedding_tensors, load_embeddings
from tokembed.errors import EmbeddingSourceError, HubIdError


def test_bert_base_model_has_no_head_and_reads_the_word_embeddings(hf_models):
    folder, sd = hf_models["bert"]
    src = load_embeddings(folder)
    assert src.family == "bert" and src.kind == "hf"
    assert src.output is None and not src.tied
    np.testing.assert_array_equal(src.input, sd["embeddings.word_embeddings.weight"])
    assert src.vocab.tokens == VOCAB  # from tokenizer.json through the tokembed HF tokenizer
    assert src.special_tokens["unk"] == "[UNK]" and src.special_tokens["pad"] == "[PAD]"
    assert src.tokenizer is not None and src.fingerprint == src.vocab.fingerprint


def test_bert_mlm_is_tied_because_its_decoder_is_not_stored(hf_models):
    folder, sd = hf_models["bert_mlm"]
    src = load_embeddings(folder)
    assert src.tied and src.output is src.input
    np.testing.assert_array_equal(src.input, sd["bert.embeddings.word_embeddings.weight"])


def test_gpt2_tied(hf_models):
    folder, sd = hf_models["gpt2"]
    src = load_embeddings(folder)
    assert (src.family, src.tied, src.names["input"]) == ("gpt2", True, "transformer.wte.weight")
    np.testing.assert_array_equal(src.input, sd["transformer.wte.weight"])


def test_llama_untied_sharded_reads_both_matrices_from_their_shards(hf_models):
    folder, sd = hf_models["llama_sharded"]
    assert (folder / "model.safetensors.index.json").is_file() and len(list(folder.glob("*.safetensors"))) > 2
    src = load_embeddings(folder)
    assert (src.family, src.tied) == ("llama", False)
    np.testing.assert_array_equal(src.input, sd["model.embed_tokens.weight"])
    np.testing.assert_array_equal(src.output, sd["lm_head.weight"])
    assert not np.array_equal(src.input, src.output)


def test_llama_tied(hf_models):
    folder, sd = hf_models["llama_tied"]
    src = load_embeddings(folder)
    assert src.tied and src.output is src.input


def test_sharded_without_index_file_is_found_by_scanning_headers(hf_models, tmp_path):
    folder, sd = hf_models["llama_sharded"]
    copy = tmp_path / "m"
    shutil.copytree(folder, copy)
    (copy / "model.safetensors.index.json").unlink()
    src = load_embeddings(copy)
    np.testing.assert_array_equal(src.output, sd["lm_head.weight"])


def test_config_that_disagrees_with_tensor_shapes(hf_models, tmp_path):
    folder, _ = hf_models["gpt2"]
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    write_config(bad, vocab_size=len(VOCAB) + 7)
    with pytest.raises(
        EmbeddingSourceError,
        match=rf"vocab_size={len(VOCAB) + 7} but tensor 'transformer.wte.weight'.*{len(VOCAB)} rows",
    ):
        load_embeddings(bad)
    write_config(bad, vocab_size=len(VOCAB), n_embd=32)
    with pytest.raises(EmbeddingSourceError, match="hidden size 32 but tensor"):
        load_embeddings(bad)


def test_folder_without_embeddings(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EmbeddingSourceError, match=r"no \*\.safetensors file"):
        load_embeddings(tmp_path)
    from safetensors.numpy import save_file

    save_file({"encoder.layer.0.weight": np.zeros((4, 4), dtype=np.float32)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(EmbeddingSourceError, match="no input-embedding tensor among 1 tensors"):
        load_embeddings(tmp_path)


def test_missing_shard_named(hf_models, tmp_path):
    folder, _ = hf_models["llama_sharded"]
    copy = tmp_path / "m"
    shutil.copytree(folder, copy)
    shard = sorted(copy.glob("model-*.safetensors"))[-1]
    shard.unlink()
    with pytest.raises(EmbeddingSourceError, match=f"shard '{shard.name}', which is missing"):
        load_embeddings(copy)


def test_padded_rows_beyond_the_tokenizer_get_placeholder_names(hf_models, tmp_path):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    V = len(VOCAB) + 3
    GPT2LMHeadModel(
        GPT2Config(vocab_size=V, n_embd=8, n_layer=1, n_head=2, n_positions=16, bos_token_id=2, eos_token_id=3)
    ).save_pretrained(str(tmp_path))
    (tmp_path / "tokenizer.json").write_bytes((hf_models["gpt2"][0] / "tokenizer.json").read_bytes())
    src = load_embeddings(tmp_path)
    assert src.vocab.tokens[-3:] == [f"<row_{len(VOCAB)}>", f"<row_{len(VOCAB) + 1}>", f"<row_{len(VOCAB) + 2}>"]
    assert any("3 embedding rows beyond" in n for n in src.notes)
    del torch


def test_vocab_txt_only_folder(hf_models, tmp_path):
    folder, sd = hf_models["bert"]
    copy = tmp_path / "m"
    shutil.copytree(folder, copy)
    (copy / "tokenizer.json").unlink()
    (copy / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    src = load_embeddings(copy)
    assert src.vocab.tokens == VOCAB and src.special_tokens["mask"] == "[MASK]"
    assert src.tokenizer.encode("The foxes") == [VOCAB.index(t) for t in ("the", "fox", "##e", "##s")]
    (copy / "vocab.txt").unlink()
    with pytest.raises(EmbeddingSourceError, match="no tokenizer.json or vocab.txt"):
        load_embeddings(copy)


def test_matrix_with_vocab_txt(matrix_folder):
    d, E = matrix_folder
    src = load_embeddings(d / "E.npy", vocab=d / "vocab.txt")
    np.testing.assert_array_equal(src.input, E)
    assert src.kind == "matrix" and src.output is None and src.vocab.token(5) == "[unused0]"


def test_matrix_with_tokenizer_json_gets_a_tokenizer(matrix_folder, tokenizer_json):
    d, E = matrix_folder
    src = load_embeddings(d / "E.npy", vocab=tokenizer_json)
    assert src.tokenizer is not None and src.tokenizer.encode("the fox") == [VOCAB.index("the"), VOCAB.index("fox")]


def test_vocab_length_differs_from_rows(matrix_folder):
    d, E = matrix_folder
    (d / "short.txt").write_text("\n".join(VOCAB[:-2]) + "\n", encoding="utf-8")
    with pytest.raises(EmbeddingSourceError, match=rf"{len(VOCAB) - 2} lines .* the matrix has {len(VOCAB)} rows"):
        load_embeddings(d / "E.npy", vocab=d / "short.txt")


def test_matrix_needs_a_vocab_and_refuses_pickles(matrix_folder):
    d, E = matrix_folder
    with pytest.raises(EmbeddingSourceError, match="pass its vocabulary as vocab="):
        load_embeddings(d / "E.npy")
    np.save(d / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(EmbeddingSourceError, match="without unpickling"):
        load_embeddings(d / "obj.npy", vocab=d / "vocab.txt")


def test_safetensors_matrix_with_several_tensors_needs_tensor(matrix_folder):
    from safetensors.numpy import save_file

    d, E = matrix_folder
    save_file({"a": E, "b": E * 2}, str(d / "m.safetensors"))
    with pytest.raises(EmbeddingSourceError, match="choose one by name with tensor=NAME"):
        load_embeddings(d / "m.safetensors", vocab=d / "vocab.txt")
    src = load_embeddings(d / "m.safetensors", vocab=d / "vocab.txt", tensor="b")
    np.testing.assert_array_equal(src.input, E * 2)


def test_word2vec_text_file(tmp_path):
    p = tmp_path / "v.vec"
    p.write_text("3 2\nthe 1 0\ncat 0 1\ndog 0.5 0.5\n", encoding="utf-8")
    src = load_embeddings(p)
    assert src.kind == "vectors" and src.vocab.tokens == ["the", "cat", "dog"]
    np.testing.assert_allclose(src.input[2], [0.5, 0.5])


def test_hub_id_and_missing_path(tmp_path):
    with pytest.raises(HubIdError, match="local path"):
        load_embeddings("bert-base/uncased-x")
    with pytest.raises(EmbeddingSourceError, match="no such file"):
        load_embeddings(tmp_path / "nope.npy")


def test_find_embedding_tensors_prefers_shortest_input_name():
    got = find_embedding_tensors(["decoder.embed_tokens.weight", "shared.weight", "model.embed_tokens.weight"])
    assert got["input"] == "model.embed_tokens.weight" and got["family"] == "llama"
    assert (
        find_embedding_tensors(["embeddings.word_embeddings.weight"], {"architectures": ["BertModel"]})["tied"] is False
    )
