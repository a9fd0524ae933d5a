"""Sharded checkpoints (tokembed.training.sharded_checkpoint) built by hand from a normal one, then made hostile:
a flipped bit in a shard, offsets out of range, gaps and overlaps, shapes larger than the files, paths out of the
folder, headers that disagree with the layout. Each must be a typed ArtifactError before anything is allocated;
the intact layout reassembles, loads, consolidates and resumes exactly like the normal checkpoint."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from tokembed.artifacts import file_sha256, load_tensors, read_json, save_tensors, write_json
from tokembed.errors import ArtifactError
from tokembed.tokenizers import ByteTokenizer
from tokembed.training.checkpoint import MANIFEST, load_checkpoint, verify_checkpoint, write_manifest
from tokembed.training.loop import train
from tokembed.training.shard_layout import ShardedReader
from tokembed.training.sharded_checkpoint import consolidate

from _torch_threads import single_thread  # noqa: F401  (fixture)
from test_checkpoint_integrity import DOCS, shards, tiny  # noqa: F401  (shards: a fixture)

pytestmark = pytest.mark.usefixtures("single_thread")

WORLD = 3  # 259 byte-token rows -> 87 + 87 + 85 (torch.chunk, as FSDP)


def shard_by_hand(src: Path, dst: Path, world: int) -> Path:
    """``src`` (a normal checkpoint) as a sharded one: rank r's ``torch.chunk`` rows of every tensor in its own
    model-/optim- file, 0-d tensors with rank 0, and the layout written here (not by the code under test)."""
    shutil.copytree(src, dst)
    (dst / "model.safetensors").unlink()
    state = load_tensors(src / "train_state.safetensors")
    groups = {"model": load_tensors(src / "model.safetensors"),
              "optim": {k[len("optim."):]: v for k, v in state.items() if k.startswith("optim.")}}
    save_tensors(dst / "train_state.safetensors", {k: v for k, v in state.items() if not k.startswith("optim.")})
    layout = {"format": 1, "world_size": world, "files": {}, "tensors": {}}
    for kind, tensors in groups.items():
        files = [{} for _ in range(world)]
        for key, t in tensors.items():
            spec = layout["tensors"][f"{kind}.{key}"] = {"shape": list(t.shape), "dtype": str(t.dtype)[6:], "shards": []}
            pieces = [t] if t.ndim == 0 else torch.chunk(t, world)
            offset = 0
            for r, piece in enumerate(pieces):
                name = f"{kind}-rank{r:05d}-of-{world:05d}.safetensors"
                files[r][key] = piece.clone()
                rows = 1 if t.ndim == 0 else piece.shape[0]
                spec["shards"].append({"file": name, "offset": offset, "rows": rows})
                offset += rows
        for r, data in enumerate(files):
            name = f"{kind}-rank{r:05d}-of-{world:05d}.safetensors"
            save_tensors(dst / name, data)
            layout["files"][name] = {"sha256": file_sha256(dst / name), "bytes": (dst / name).stat().st_size}
    write_json(dst / "shards.json", layout)
    (dst / MANIFEST).unlink()
    write_manifest(dst)
    return dst


@pytest.fixture(scope="module")
def run(tmp_path_factory, shards):
    """A finished 6-step run, and a copy whose checkpoint/ (step 6) and checkpoint.prev/ (step 3) are sharded."""
    out = tmp_path_factory.mktemp("run")
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # as the tests (single_thread): a resume compares bit for bit
    try:
        train(tiny(), tokenizer=ByteTokenizer(), shards=shards, out_dir=out / "plain", progress=False)
    finally:
        torch.set_num_threads(n)
    (out / "sharded").mkdir()
    for name in ("checkpoint", "checkpoint.prev"):
        shard_by_hand(out / "plain" / name, out / "sharded" / name, WORLD)
    return out


def test_a_hand_made_layout_reassembles_loads_and_consolidates_to_the_normal_checkpoint(run, tmp_path):
    plain, sharded = run / "plain" / "checkpoint", verify_checkpoint(run / "sharded" / "checkpoint")
    reader = ShardedReader(sharded)
    ref = load_tensors(plain / "model.safetensors")
    full = reader.full_tensors("model.")
    assert full.keys() == ref.keys() and all(torch.equal(full[k], ref[k]) for k in ref)
    assert torch.equal(reader.read("model.embedding.weight", 80, 180), ref["embedding.weight"][80:180])  # across 2 shards
    a, _, _ = load_checkpoint(plain)
    b, _, _ = load_checkpoint(sharded)
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    out = consolidate(run / "sharded", tmp_path / "whole")
    verify_checkpoint(out)
    for name in ("model.safetensors", "train_state.safetensors"):
        x, y = load_tensors(plain / name), load_tensors(out / name)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    with pytest.raises(ArtifactError, match="not a sharded checkpoint"):
        consolidate(plain, tmp_path / "again")


def test_one_process_resumes_a_sharded_checkpoint_bit_exactly(run, shards, tmp_path):
    for name in ("plain", "sharded"):
        shutil.copytree(run / name, tmp_path / name)
        train(tiny(max_steps=9), tokenizer=ByteTokenizer(), shards=shards, out_dir=tmp_path / name, resume=True,
              progress=False)
    a = load_tensors(tmp_path / "plain" / "checkpoint" / "model.safetensors")
    b = load_tensors(tmp_path / "sharded" / "checkpoint" / "model.safetensors")  # one process writes a normal one
    assert all(torch.equal(a[k], b[k]) for k in a)


def _hostile(run, tmp_path, edit) -> Path:
    """A copy of the sharded checkpoint with ``edit(layout)`` applied to shards.json (manifest.json rewritten to match)."""
    ckpt = tmp_path / "ckpt"
    shutil.copytree(run / "sharded" / "checkpoint", ckpt)
    layout = read_json(ckpt / "shards.json")
    edit(layout)
    (ckpt / "shards.json").write_text(json.dumps(layout))
    (ckpt / MANIFEST).unlink()
    write_manifest(ckpt)
    return ckpt


EMB = "model.embedding.weight"


def _set(path, value):
    def edit(layout):
        cur = layout
        for p in path[:-1]:
            cur = cur[p]
        cur[path[-1]] = value
    return edit


HOSTILE = {
    "offset out of range": (_set(["tensors", EMB, "shards", 1, "offset"], 10**15), r"do not continue the shards"),
    "gap": (_set(["tensors", EMB, "shards", 1, "offset"], 88), r"rows \[88, 175\) do not continue .* at row 87"),
    "overlap": (_set(["tensors", EMB, "shards", 1, "offset"], 86), r"rows \[86, 173\) do not continue"),
    "rows past the end": (_set(["tensors", EMB, "shards", 2, "rows"], 86), r"rows \[174, 260\) do not continue .* 259 rows"),
    "too few rows": (_set(["tensors", EMB, "shards", 2, "rows"], 84), r"cover rows \[0, 258\) of 259"),
    "negative rows": (_set(["tensors", EMB, "shards", 0, "rows"], -1), r"do not continue"),
    "shape larger than the files": (
        lambda L: (_set(["tensors", EMB, "shape"], [2**40, 16])(L), _set(["tensors", EMB, "shards", 2, "rows"], 2**40 - 174)(L)),
        r"need \d+ bytes but the file has \d+"),
    "bool in a shape": (_set(["tensors", EMB, "shape"], [True, 16]), r"is not a list of at most 8 sizes"),
    "too many dims": (_set(["tensors", EMB, "shape"], [1] * 9), r"is not a list of at most 8 sizes"),
    "unknown dtype": (_set(["tensors", EMB, "dtype"], "object"), r"dtype 'object' is not one of"),
    "path out of the folder": (
        lambda L: L["files"].__setitem__("../model-rank00000-of-00003.safetensors", L["files"]["model-rank00000-of-00003.safetensors"]),
        r"is not a shard file name"),
    "rank beyond the world": (
        lambda L: L["files"].__setitem__("model-rank00007-of-00003.safetensors", L["files"]["model-rank00000-of-00003.safetensors"]),
        r"'model-rank00007-of-00003.safetensors' is not a shard file name of a world of 3"),
    "shard in an unlisted file": (_set(["tensors", EMB, "shards", 0, "file"], "model-rank00000-of-00003.safetensors.x"),
                                  r"is not in \['files'\]"),
    "a name without its group": (lambda L: L["tensors"].__setitem__("embedding", L["tensors"][EMB]),
                                 r"a tensor name is 'model.<name>'"),
    "world size zero": (_set(["world_size"], 0), r"world_size=0 outside"),
    "another format": (_set(["format"], 2), r"format 2 is not 1"),
    "tensors not an object": (_set(["tensors"], []), r"'tensors' is \[\] \(list\), expected dict"),
    "bad sha256": (_set(["files", "model-rank00001-of-00003.safetensors", "sha256"], "x" * 64), r"not a sha256 hex digest"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layouts_are_refused_before_any_allocation(run, tmp_path, case):
    edit, message = HOSTILE[case]
    ckpt = _hostile(run, tmp_path, edit)
    with pytest.raises(ArtifactError, match=message):
        ShardedReader(ckpt)
    with pytest.raises(ArtifactError, match=message):
        load_checkpoint(ckpt)  # the manifest verifies: the layout itself is refused


def test_a_flipped_bit_in_a_shard_is_refused(run, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(run / "sharded" / "checkpoint", ckpt)
    f = ckpt / "model-rank00001-of-00003.safetensors"
    data = bytearray(f.read_bytes())
    data[-5] ^= 1 << 6
    f.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="model-rank00001-of-00003.safetensors: checksum differs"):
        verify_checkpoint(ckpt)
    (ckpt / MANIFEST).unlink()
    write_manifest(ckpt)  # a manifest that matches: the layout's own sha256 still catches it, at the first read
    reader = ShardedReader(ckpt)
    assert reader.read(EMB, 0, 87).shape == (87, 16)  # rank 0's file is intact
    with pytest.raises(ArtifactError, match=r"model-rank00001-of-00003.safetensors: missing, or its size or sha256 differs"):
        reader.read(EMB, 87, 88)


def test_a_header_that_disagrees_with_the_layout_is_refused(run, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(run / "sharded" / "checkpoint", ckpt)
    f = ckpt / "model-rank00002-of-00003.safetensors"
    data = load_tensors(f)
    data["embedding.weight"] = data["embedding.weight"][:-1].contiguous()  # one row short; the layout says 85
    save_tensors(f, data)
    layout = read_json(ckpt / "shards.json")  # the file's sha256 updated, so only the header disagrees
    layout["files"][f.name] = {"sha256": file_sha256(f), "bytes": f.stat().st_size}
    write_json(ckpt / "shards.json", layout)
    with pytest.raises(ArtifactError, match=r"tensor 'embedding.weight' is F32 \[84, 16\], but shards.json says F32 \[85, 16\]"):
        ShardedReader(ckpt).read(EMB)


def test_the_cli_reads_a_sharded_checkpoint_and_refuses_a_hostile_one_in_one_line(run, tmp_path, cli):
    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(DOCS[:10]))
    rc, out, err = cli("eval", str(run / "sharded"), "--corpus", str(corpus), "--json")
    assert rc == 0, err
    rc, out, err = cli("export", str(run / "sharded"), "-o", str(tmp_path / "exp"), "--format", "safetensors")
    assert rc == 0, err
    ckpt = _hostile(run, tmp_path, HOSTILE["offset out of range"][0])
    rc, out, err = cli("eval", str(ckpt), "--corpus", str(corpus))
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "do not continue the shards" in err


def test_the_cli_consolidates_and_names_a_checkpoint_that_is_not_sharded(run, tmp_path, cli):
    rc, out, err = cli("checkpoint", "consolidate", str(run / "sharded"), "-o", str(tmp_path / "whole"), "--json")
    assert rc == 0, err
    assert json.loads(out)["checkpoint"] == str(tmp_path / "whole")
    a, b = load_tensors(run / "plain" / "checkpoint" / "model.safetensors"), load_tensors(tmp_path / "whole" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    rc, out, err = cli("checkpoint", "consolidate", str(run / "plain"), "-o", str(tmp_path / "again"))
    assert rc == 2 and "not a sharded checkpoint" in err and not (tmp_path / "again").exists()
