"""Path traversal: a model folder may only make tokembed read files inside itself.

Before the fix, a ``model.safetensors.index.json`` naming ``../secret/x.safetensors`` was followed
(neighbours came from the outside file) and ``/proc/self/environ`` gave a traceback.
"""

import json
import os

import numpy as np
import pytest
from _hostile import EMBEDDING, TOKENS, assert_one_line_error, tiny_hf_folder

from tokembed.sources import load_embeddings
from tokembed.errors import EmbeddingSourceError


def _index(folder, target):
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {EMBEDDING: target}}))
    (folder / "model.safetensors").unlink()


@pytest.fixture
def secret(tmp_path):
    """A valid shard outside the model folder, with other weights than the model's."""
    return tiny_hf_folder(tmp_path / "secret", seed=99, shard="x.safetensors") / "x.safetensors"


@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_index_naming_a_shard_outside_the_folder_is_refused(hf_folder, secret, cli, how):
    _index(hf_folder, "../secret/x.safetensors" if how == "relative" else str(secret))
    with pytest.raises(EmbeddingSourceError, match="outside the model folder"):
        load_embeddings(hf_folder)
    rc, out, err = cli("neighbors", hf_folder, "king")
    assert_one_line_error(rc, err, "outside the model folder", "x.safetensors")
    assert out == ""  # no neighbours computed from the outside file


def test_index_naming_proc_self_environ_is_refused(hf_folder, cli):
    _index(hf_folder, "/proc/self/environ")
    rc, _, err = cli("neighbors", hf_folder, "king")
    assert_one_line_error(rc, err, "/proc/self/environ", "outside the model folder")
    assert "PATH=" not in err  # the environment is not echoed


def test_index_naming_a_shard_inside_the_folder_still_loads(hf_folder):
    (hf_folder / "model.safetensors").rename(hf_folder / "shard-1.safetensors")
    (hf_folder / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {EMBEDDING: "./sub/../shard-1.safetensors"}})
    )
    (hf_folder / "sub").mkdir()
    assert load_embeddings(hf_folder).shape == (len(TOKENS), 8)


def test_symlinked_shard_leading_out_of_the_folder_is_refused(hf_folder, secret):
    (hf_folder / "model.safetensors").unlink()
    os.symlink(secret, hf_folder / "model.safetensors")  # found by the header scan, no index file
    with pytest.raises(EmbeddingSourceError, match="outside the model folder"):
        load_embeddings(hf_folder)
    os.symlink(secret, hf_folder / "link.safetensors")
    _index(hf_folder, "link.safetensors")  # and through an index entry
    with pytest.raises(EmbeddingSourceError, match="outside the model folder"):
        load_embeddings(hf_folder)


def test_hub_cache_snapshot_symlinks_into_its_blobs_are_followed(tmp_path):
    """The Hugging Face cache layout: snapshots/<rev>/model.safetensors -> ../../blobs/<hash>."""
    repo = tmp_path / "models--org--tiny"
    snap = tiny_hf_folder(repo / "snapshots" / "abc123")
    (repo / "blobs").mkdir()
    (snap / "model.safetensors").rename(repo / "blobs" / "f00d")
    os.symlink("../../blobs/f00d", snap / "model.safetensors")
    src = load_embeddings(snap)
    assert src.shape == (len(TOKENS), 8) and np.isfinite(src.input).all()


def test_index_entry_that_is_not_a_string_is_a_typed_error(hf_folder):
    (hf_folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {EMBEDDING: ["a"]}}))
    with pytest.raises(EmbeddingSourceError, match="expected a shard file name"):
        load_embeddings(hf_folder)


def test_vector_file_read_from_proc_does_not_echo_its_content(cli):
    rc, _, err = cli("neighbors", "/proc/self/environ", "the")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert len(err) < 400 and "PATH=" not in err
