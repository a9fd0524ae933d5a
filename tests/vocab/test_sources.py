"""Other sources: a tokenizer folder alone, a Unigram tokenizer.json, sharded Llama interop, and lazy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest
from _vocab_models import SENTENCES

from tokembed.tokenizers import HFTokenizer, load_tokenizer
from tokembed.vocab.map import VocabMap
from tokembed.vocab.surgery import add, trim
from tokembed.vocab.trim import trim_tokenizer


def test_tokenizer_folder_alone(bpe_tok, tmp_path):
    bpe_tok.save(tmp_path / "tok")
    trim(tmp_path / "tok", tmp_path / "out", SENTENCES[:3])
    small = load_tokenizer(tmp_path / "out")
    assert small.fingerprint == VocabMap.load(tmp_path / "out").new_fingerprint
    assert small.tokens(SENTENCES[0]) == bpe_tok.tokens(SENTENCES[0])


@pytest.fixture(scope="module")
def unigram_tok():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    eng = Tokenizer(models.Unigram())
    eng.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=150, special_tokens=["<unk>", "<s>", "</s>"], unk_token="<unk>", show_progress=False)
    eng.train_from_iterator(SENTENCES * 4, trainer=trainer)
    return HFTokenizer(eng, add_special_tokens=False)


def test_unigram_trim_and_add(unigram_tok):
    small, vmap, facts = trim_tokenizer(unigram_tok, SENTENCES[:3])
    assert small.vocab_size < unigram_tok.vocab_size
    for t in SENTENCES[:3]:
        assert small.tokens(t) == unigram_tok.tokens(t)
    assert small.vocab.special_id("unk") is not None


def test_llama_sharded_trim_loads_in_transformers(llama_dir, tmp_path):
    import transformers

    trim(llama_dir, tmp_path / "out", SENTENCES[:4])
    model, info = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    assert tok.convert_ids_to_tokens(tok(SENTENCES[0])["input_ids"]) == load_tokenizer(llama_dir).tokens(SENTENCES[0])


def test_add_special_token_hf_files(gpt2_dir, tmp_path):
    import transformers

    add(gpt2_dir, tmp_path / "out", ["<|tool|>"], special=True)
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    assert "<|tool|>" in tok.all_special_tokens
    assert tok("x<|tool|>")["input_ids"][-1] == VocabMap.load(tmp_path / "out").new_tokens[0].id


def test_imports_stay_light():
    """The foundation does not import the surgery, and the surgery does not import transformers."""
    code = ("import sys, tokembed.vocab; assert 'tokembed.vocab.map' not in sys.modules; "
            "import tokembed.vocab.surgery, tokembed.vocab.export, tokembed.cli.vocab; "
            "assert 'transformers' not in sys.modules, 'transformers imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_shard_index_cannot_leave_the_folder(llama_dir, tmp_path):
    import json
    import shutil

    from tokembed.errors import ArtifactError

    src = tmp_path / "src"
    shutil.copytree(llama_dir, src)
    index = json.loads((src / "model.safetensors.index.json").read_text())
    index["weight_map"]["lm_head.weight"] = "../outside.safetensors"
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ArtifactError, match="not a file name"):
        trim(src, tmp_path / "out", SENTENCES[:2], verify_model=False)
    assert not (tmp_path / "out").exists()


def test_corrupt_safetensors_is_a_typed_error(gpt2_dir, tmp_path):
    import shutil

    from tokembed.errors import ArtifactError

    src = tmp_path / "src"
    shutil.copytree(gpt2_dir, src)
    data = (src / "model.safetensors").read_bytes()
    (src / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="safetensors"):
        trim(src, tmp_path / "out", SENTENCES[:2], verify_model=False)
    assert not (tmp_path / "out").exists()
