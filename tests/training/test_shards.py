import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokembed.training import shards as data_mod
from tokembed.corpus import Corpus
from tokembed.training.shards import build_shards, encode_documents, is_validation, load_shards, token_dtype
from tokembed.errors import ArtifactError, ConfigError, FingerprintMismatchError
from tokembed.tokenizers import ByteTokenizer

EOS = 258  # ByteTokenizer: </s> after the 256 bytes, <pad> and <s>


def docs(n):
    return [f"doc {i} — naïve café {i * 7}\nline two\n" for i in range(n)]


def test_token_dtype_by_vocab_size():
    assert token_dtype(259) == np.uint16
    assert token_dtype(65536) == np.uint16  # ids 0..65535 fit
    assert token_dtype(65537) == np.uint32


def test_shards_hold_documents_separated_by_eos_with_exact_bytes(tmp_path):
    tok = ByteTokenizer()
    d = docs(40)
    shards = build_shards(tok, d, tmp_path / "s", val_fraction=0.25, seed=1, workers=1)
    val_idx = [i for i in range(40) if is_validation(i, seed=1, val_fraction=0.25)]
    train_idx = [i for i in range(40) if i not in val_idx]
    assert 0 < len(val_idx) < 40
    for split, idx in (("train", train_idx), ("val", val_idx)):
        s = shards[split]
        expected = [EOS]
        for i in idx:
            expected += list(d[i].encode("utf-8")) + [EOS]
        assert s.tokens.dtype == np.uint16 and s.tokens.tolist() == expected
        assert s.n_docs == len(idx)
        assert s.n_bytes == sum(len(d[i].encode("utf-8")) for i in idx)
        assert s.fingerprint == tok.fingerprint
        ends = s.doc_index[:, 0]
        assert ends[-1] == len(s) and all(s.tokens[e - 1] == EOS for e in ends)
    assert isinstance(load_shards(tmp_path / "s")["train"].tokens, np.memmap)


def test_split_is_document_level_and_deterministic():
    picks = [is_validation(i, seed=0, val_fraction=0.1) for i in range(5000)]
    assert 0.08 < np.mean(picks) < 0.12
    assert picks == [is_validation(i, seed=0, val_fraction=0.1) for i in range(5000)]
    assert picks != [is_validation(i, seed=1, val_fraction=0.1) for i in range(5000)]


def test_parallel_workers_write_identical_shards(tmp_path, monkeypatch):
    monkeypatch.setattr(data_mod, "BLOCK_DOCS", 7)  # several blocks -> the process pool is used
    tok = ByteTokenizer()
    a = build_shards(tok, docs(60), tmp_path / "a", val_fraction=0.2, workers=1)
    b = build_shards(tok, docs(60), tmp_path / "b", val_fraction=0.2, workers=2)
    for split in ("train", "val"):
        assert np.array_equal(a[split].tokens, b[split].tokens)
        assert np.array_equal(a[split].doc_index, b[split].doc_index)
        assert a[split].n_bytes == b[split].n_bytes


def test_corpus_documents_are_blank_line_blocks(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("first doc\nstill first\n\nsecond\n\n\nthird\n", encoding="utf-8")
    s = build_shards(ByteTokenizer(), Corpus([str(p)]), tmp_path / "s", val_fraction=0.0)
    assert s["train"].n_docs == 3 and s["val"].n_docs == 0 and len(s["val"]) == 1
    assert s["train"].n_bytes == len("first doc\nstill first\n") + len("second\n") + len("third\n")


def test_prefix_cuts_at_document_boundaries():
    tokens, index, n = encode_documents(ByteTokenizer(), ["ab", "cde", "f"])
    assert tokens.tolist() == [EOS, 97, 98, EOS, 99, 100, 101, EOS, 102, EOS]
    from tokembed.training.shards import Shard

    s = Shard(tokens=tokens, n_bytes=n, n_docs=3, fingerprint="", doc_index=index)
    assert s.prefix(None) == (10, 6)
    assert s.prefix(8) == (8, 5)  # two whole documents
    assert s.prefix(7) == (4, 2)
    assert s.prefix(1) == (4, 2)  # at least one document


def test_fingerprint_mismatch_and_corruption_raise(tmp_path):
    build_shards(ByteTokenizer(), docs(5), tmp_path / "s", workers=1)
    other = ByteTokenizer(special_tokens={"pad": "[PAD]", "eos": "[EOS]"})
    with pytest.raises(FingerprintMismatchError, match="rebuild the shards"):
        load_shards(tmp_path / "s", tokenizer=other)
    with open(tmp_path / "s" / "train.bin", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactError, match="expected"):
        load_shards(tmp_path / "s")
    with pytest.raises(ConfigError, match="no 'eos'"):
        build_shards(ByteTokenizer(special_tokens={"pad": "<pad>"}), docs(2), tmp_path / "t")


@settings(max_examples=int(os.environ.get("TOKEMBED_HYPOTHESIS_EXAMPLES", "100")) // 4 or 1)
@given(st.lists(st.text(st.characters(exclude_categories=("Cs",))), min_size=1, max_size=8))
def test_shard_round_trip_documents(tmp_path_factory, documents):
    tok = ByteTokenizer()
    s = build_shards(tok, documents, tmp_path_factory.mktemp("h"), val_fraction=0.0, workers=1)["train"]
    ids = s.tokens.tolist()
    assert ids[0] == EOS and ids[-1] == EOS
    parts, cur = [], []
    for i in ids[1:]:
        if i == EOS:
            parts.append(tok.decode(cur))
            cur = []
        else:
            cur.append(i)
    assert parts == documents  # '</s>' inside a document stays text: the eos id only separates
    assert s.n_bytes == sum(len(d.encode("utf-8")) for d in documents)
