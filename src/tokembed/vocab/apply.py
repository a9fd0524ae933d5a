"""Apply one :class:`~tokembed.vocab.map.VocabMap` to every place of a model folder that holds the vocabulary.

Unlike :mod:`tokembed.vocab.map` (rows of one tensor), this module knows the folders:

- a **tokembed checkpoint** (``model.safetensors`` + ``config.json`` + ``tokenizer/``): input
  rows (lookup ``E`` or factorized ``A``), untied head rows and bias, a tied head (stored once,
  so it stays tied), ``token_counts``, and in ``train_state.safetensors`` the AdamW moments of
  each of those parameters (new rows start at zero); ``config.json`` gets the new V and
  tokenizer fingerprint;
- a **Hugging Face folder** (``config.json`` + ``model.safetensors`` or shards with their
  ``model.safetensors.index.json`` + ``tokenizer.json``): every tensor whose first dimension is
  ``config.vocab_size`` (or shaped ``(1, V)``, as BART's ``final_logits_bias``) is remapped; a
  shard holding none of them is copied byte for byte, and in a rewritten shard the other
  tensors keep their bytes; ``vocab_size`` and every special id in ``config.json`` and
  ``generation_config.json``; ``tokenizer.json``, ``tokenizer_config.json``'s
  ``added_tokens_decoder``, ``special_tokens_map.json``, and the slow tokenizers' ``vocab.txt``
  / ``vocab.json`` + ``merges.txt``;
- a **compressed artifact** (``compression.json`` + ``compressed.safetensors`` + ``tokenizer/``): every
  stored table through :func:`~tokembed.vocab.tables.remap_codec` (kept rows byte-identical, new rows
  encoded with the same codec), the output bias, and ``compression.json`` (shape, fingerprint);
- a **tokenizer folder** alone: the new tokenizer.

The output folder appears whole or not at all, with ``vocab_map.json`` (both fingerprints) in it.
Adaptive designs are remapped band by band (:mod:`tokembed.vocab.tables`); hashed embeddings,
whose rows are hash buckets of the id itself, are refused with a typed error that says why.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import mmap
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..artifacts import TOKEMBED_VERSION, atomic_dir, atomic_write_text, load_tensors, read_json, write_json
from ..compress.artifact import CompressedTable, load_compressed, save_compressed
from ..embeddings.control import embedding_param_groups
from ..errors import ArtifactError, TokembedError, TokenizerError
from ..model import ModelConfig, build_model
from ..tokenizers import SentencePieceTokenizer, load_tokenizer
from ..tokenizers.spm_hf import probe_texts
from ..training.checkpoint import verify_checkpoint, write_manifest
from .map import VocabMap
from .spm_file import is_spm, remap_model_file, same_ids
from .tables import adaptive_checkpoint, gather_rows, remap_codec

__all__ = ["Source", "load_source", "write_output", "SPECIAL_ID_KEYS", "SUPPORTED_EMBEDDINGS", "SUPPORTED_HEADS"]

#: config.json keys that hold token ids (transformers' PretrainedConfig and GenerationConfig).
SPECIAL_ID_KEYS = ("pad_token_id", "bos_token_id", "eos_token_id", "unk_token_id", "cls_token_id", "sep_token_id",
                   "mask_token_id", "decoder_start_token_id", "forced_bos_token_id", "forced_eos_token_id")  # fmt: skip

#: tokembed designs the map applies to (row by row, or band by band for adaptive ones: :mod:`tokembed.vocab.tables`).
SUPPORTED_EMBEDDINGS = ("lookup", "factorized", "adaptive")
SUPPORTED_HEADS = ("untied", "tied", "tied_bias", "adaptive", "adaptive_tied")

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt")


@dataclass
class Source:
    """A folder to change: its kind, its tokenizer and its table rows R (>= the tokenizer's V)."""

    path: Path
    kind: str  # "checkpoint", "hf", "compressed" or "tokenizer"
    tokenizer: Any
    rows: int | None = None  # R; None for a tokenizer folder


def load_source(path: str | os.PathLike) -> Source:
    """Recognise a tokembed checkpoint, a compressed artifact, a Hugging Face model folder or a tokenizer folder/file."""
    p = Path(path)
    if (p / "model.safetensors").is_file() and (p / "tokenizer").is_dir():
        raw = read_json(p / "config.json")
        model = raw.get("model") or {}
        if model.get("embedding", "lookup") == "hashed":
            raise ArtifactError(
                f"{p}: embedding='hashed' keeps no row per token: id i is the weighted sum of buckets h_j(i), with hash "
                "functions of the id itself, so renumbering ids would move every token to other buckets; a vocabulary "
                "change needs a model with its own rows — retrain with model.embedding=lookup (or factorized/adaptive)"
            )
        if model.get("embedding", "lookup") not in SUPPORTED_EMBEDDINGS or model.get("head", "untied") not in SUPPORTED_HEADS:
            raise ArtifactError(
                f"{p}: embedding={model.get('embedding')!r}, head={model.get('head')!r} are not supported; "
                f"vocabulary surgery supports embedding in {SUPPORTED_EMBEDDINGS} and head in {SUPPORTED_HEADS}"
            )
        src = Source(p, "checkpoint", load_tokenizer(p / "tokenizer"), int(model["vocab_size"]))
    elif (p / "compression.json").is_file():
        src = _compressed_source(p)
    elif (p / "config.json").is_file() and ((p / "model.safetensors").is_file() or (p / "model.safetensors.index.json").is_file()):
        src = Source(p, "hf", load_tokenizer(p), _hf_vocab_size(read_json(p / "config.json"), p))
    else:
        return Source(p, "tokenizer", load_tokenizer(p))
    if src.rows < src.tokenizer.vocab_size:
        raise ArtifactError(
            f"{p}: the model has {src.rows} embedding rows but its tokenizer has {src.tokenizer.vocab_size} tokens; "
            "the tokenizer does not belong to this model (pass the folder with the tokenizer it was trained with)"
        )
    return src


def _compressed_source(p: Path) -> Source:
    """A compressed artifact (``tokembed compress``): its tokenizer must be the one the table was compressed for."""
    meta = read_json(p / "compression.json")
    shape = meta.get("shape") if isinstance(meta, dict) else None
    if not (isinstance(shape, list) and len(shape) == 2 and all(type(x) is int and x >= 1 for x in shape)):
        raise ArtifactError(f"{p / 'compression.json'}: shape={shape!r} is not [V, D]; the artifact is corrupt — write it "
                            "again with 'tokembed compress'")
    if not (p / "tokenizer").is_dir():
        raise ArtifactError(f"{p}: the compressed artifact has no tokenizer/ folder; a vocabulary change needs the "
                            "tokenizer the table was compressed for — compress again from the model's checkpoint")
    tok = load_tokenizer(p / "tokenizer")
    if meta.get("tokenizer_fingerprint") not in (None, tok.fingerprint):
        raise ArtifactError(f"{p}: tokenizer/ has fingerprint {tok.fingerprint[:12]} but the table was compressed for "
                            f"{str(meta['tokenizer_fingerprint'])[:12]}; restore the artifact's own tokenizer/ folder")
    return Source(p, "compressed", tok, shape[0])


def _hf_vocab_size(config: dict, where: Path) -> int:
    for c in (config, config.get("text_config") or {}):
        if isinstance(c.get("vocab_size"), int):
            return c["vocab_size"]
    raise ArtifactError(f"{where / 'config.json'}: no vocab_size; is this a Hugging Face model folder?")


def write_output(source: Source, out: str | os.PathLike, vmap: VocabMap, new_tok, *, init: str = "compose", seed: int = 0,
                 extra: dict[str, Any] | None = None) -> Path:
    """Write ``source`` changed by ``vmap`` (and ``new_tok``) to ``out`` atomically, with ``vocab_map.json``."""
    out = Path(out)
    if out.resolve() == source.path.resolve():
        raise ArtifactError(f"{out}: the output folder is the source; pass a new folder with -o")
    with atomic_dir(out) as tmp:
        if source.kind == "checkpoint":
            _checkpoint(source, tmp, vmap, new_tok, init=init, seed=seed)
        elif source.kind == "hf":
            _hf_folder(source, tmp, vmap, new_tok, init=init, seed=seed)
        elif source.kind == "compressed":
            _compressed(source, tmp, vmap, new_tok, init=init, seed=seed)
        else:
            _save_tokenizer_here(new_tok, tmp)
        vmap.save(tmp)
        if extra is not None:
            write_json(tmp / "vocab_report.json", extra)
        if source.kind == "checkpoint":
            write_manifest(tmp)  # last: checksums of every file, verified on every load
    return out


def _save_tokenizer_here(new_tok, folder: Path) -> None:
    staged = folder / ".tok"
    new_tok.save(staged)
    for f in staged.iterdir():
        os.replace(f, folder / f.name)
    staged.rmdir()


#: safetensors' dtype names (the format's spec, huggingface/safetensors README).
_ST_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
              torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}


@dataclass
class RowBlocks:
    """A tensor given as row blocks (``VocabMap.row_blocks``), written to a file without being assembled."""

    dtype: torch.dtype
    shape: tuple[int, ...]
    blocks: Callable[[], Iterator[tuple[int, torch.Tensor]]]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * torch.empty((), dtype=self.dtype).element_size()


def write_safetensors(path: Path, tensors: dict[str, Any], *, metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file tensor by tensor from the tensors' own memory (no serialised copy of the
    whole file, which ``safetensors.torch.save`` builds): peak memory stays at the tensors themselves.
    ``path`` is inside an :func:`atomic_dir`, which makes the folder appear whole."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
        offset += t.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as fh:
        fh.write(len(blob).to_bytes(8, "little"))
        fh.write(blob)
        for name in sorted(tensors):
            parts = (b for _, b in tensors[name].blocks()) if isinstance(tensors[name], RowBlocks) else [tensors[name]]
            for t in parts:
                t = t.detach().cpu().contiguous()
                if t.numel():
                    fh.write(memoryview(t.reshape(-1).view(torch.uint8).numpy()))


# -- tokembed checkpoints ------------------------------------------------------------------
def _is_vocab_tensor(name: str, t: torch.Tensor, rows: int, skip: tuple[str, ...] = ()) -> bool:
    """One row per token id (adaptive modules, under ``skip``, are remapped band by band instead)."""
    return (t.dim() >= 1 and t.shape[0] == rows and not name.startswith(skip)
            and (name == "token_counts" or name.startswith(("embedding.", "head."))))


def _adaptive_prefixes(model_cfg: dict) -> tuple[str, ...]:
    return tuple(p for p, on in (("embedding.", model_cfg.get("embedding") == "adaptive"),
                                 ("head.", model_cfg.get("head") in ("adaptive", "adaptive_tied"))) if on)


def _checkpoint(source: Source, tmp: Path, vmap: VocabMap, new_tok, *, init: str, seed: int) -> None:
    src, R = source.path, source.rows
    verify_checkpoint(src)  # never remap a corrupt or swapped checkpoint
    raw = read_json(src / "config.json")
    old_model = dict(raw["model"])
    skip = _adaptive_prefixes(old_model)
    tensors = load_tensors(src / "model.safetensors")
    gathers: dict[str, torch.Tensor] = {}
    if skip:  # frequency order, cutoffs and band rows re-derived (tokembed.vocab.tables)
        tensors, gathers, raw["model"]["cutoffs"] = adaptive_checkpoint(old_model, tensors, vmap, init=init, seed=seed)
    for name, t in tensors.items():
        if _is_vocab_tensor(name, t, R, skip):
            tensors[name] = vmap.apply_rows(t, init=init, seed=seed, fill="zeros" if name == "token_counts" else "init")
    new_rows = len(tensors["token_counts"]) if skip else vmap.rows(R)
    write_safetensors(tmp / "model.safetensors", tensors, metadata={"tokembed_version": TOKEMBED_VERSION})
    _set_rows(raw["model"], new_rows, new_tok.vocab_size)
    raw["tokenizer_fingerprint"] = new_tok.fingerprint
    write_json(tmp / "config.json", raw)
    new_tok.save(tmp / "tokenizer")
    if (src / "train_state.json").is_file():
        state = read_json(src / "train_state.json")
        names = _optimizer_param_names(old_model, state["optimizer"], where=src)
        train = load_tensors(src / "train_state.safetensors")
        for key, t in train.items():
            parts = key.split(".", 2)
            name = names.get(int(parts[1]), "") if parts[0] == "optim" and t.dim() >= 1 else ""
            if name in gathers:
                train[key] = gather_rows(t, gathers[name])  # a new token starts with no AdamW history
            elif name and _is_vocab_tensor(name, t, R, skip):
                train[key] = vmap.apply_rows(t, fill="zeros")
        if isinstance(state.get("config"), dict) and isinstance(state["config"].get("model"), dict):
            state["config"]["model"] = dict(raw["model"])
        write_safetensors(tmp / "train_state.safetensors", train)
        write_json(tmp / "train_state.json", state)


def _set_rows(model_cfg: dict, rows: int, tokens: int) -> None:
    """``vocab_size`` = table rows; ``extra.vocab_tokens`` = the tokenizer's V when rows past it are padding
    (the heads mask them to -inf: :func:`tokembed.model.vocab_tokens`)."""
    model_cfg["vocab_size"] = rows
    extra = dict(model_cfg.get("extra") or {})
    extra.pop("vocab_tokens", None)
    if rows > tokens:
        extra["vocab_tokens"] = tokens
    model_cfg["extra"] = extra


def _optimizer_param_names(model_cfg: dict, opt_meta: dict, *, where: Path) -> dict[int, str]:
    """pid -> parameter name: the optimizer's groups are rebuilt from the model config, in the training order."""
    model = build_model(ModelConfig.from_dict(model_cfg))
    name_of = {id(p): n for n, p in model.named_parameters()}
    groups = embedding_param_groups(model, lr=1.0, weight_decay=0.0)
    saved = opt_meta.get("param_groups") or []
    if [len(g["params"]) for g in groups] != [len(g.get("params", [])) for g in saved]:
        raise ArtifactError(f"{where}: the optimizer groups in train_state.json do not match the model; the train state is not remappable")
    return {pid: name_of[id(p)] for g, s in zip(groups, saved) for p, pid in zip(g["params"], s["params"])}


# -- compressed artifacts ---------------------------------------------------------------------
def _compressed(source: Source, tmp: Path, vmap: VocabMap, new_tok, *, init: str, seed: int) -> None:
    """Every stored table (input, untied output) and the output bias follow the map (:func:`remap_codec`);
    ``compression.json`` is written again (shape, parts, fingerprint) with the change in its report."""
    if vmap.pad_to_multiple_of > 1:
        raise ArtifactError("a compressed artifact is served, not trained: padding rows would only cost bytes, and its heads "
                            "do not mask them; drop --pad-to-multiple-of", param="pad_to_multiple_of")
    art = load_compressed(source.path)  # every tensor checked against its codec's specs first
    parts = {name: CompressedTable(remap_codec(ct.table, vmap, init=init, seed=seed), ct.kind, ct.info)
             for name, ct in (("input", art.input), ("output", art.output)) if ct is not None}
    bias = None if art.output_bias is None else vmap.apply_rows(art.output_bias, init=init, seed=seed)
    m = art.meta
    shape = [vmap.rows(source.rows), parts["input"].table.shape[1]]
    report = dict(m.get("report") or {})
    report["vocab_change"] = {"operation": vmap.operation, **vmap.summary(), "shape_before": report.get("shape", m.get("shape")),
                              "bytes_after": sum(ct.nbytes for ct in parts.values())}
    report["shape"] = shape
    staged = tmp / ".compressed"
    save_compressed(staged, input=parts["input"], output=parts.get("output"), tied=art.tied, tokenizer=new_tok,
                    method=m.get("method", ""), options=m.get("options"), report=report, output_bias=bias,
                    embedding_scale=float(m.get("embedding_scale", 1.0)), source=m.get("source", ""))
    for f in staged.iterdir():
        os.replace(f, tmp / f.name)
    staged.rmdir()


# -- Hugging Face folders ---------------------------------------------------------------------
def _hf_folder(source: Source, tmp: Path, vmap: VocabMap, new_tok, *, init: str, seed: int) -> None:
    src, R = source.path, source.rows
    index_path = src / "model.safetensors.index.json"
    index = read_json(index_path) if index_path.is_file() else None
    files = sorted(set(index["weight_map"].values())) if index else ["model.safetensors"]
    for f in files:  # never follow a shard name out of the folder
        if not isinstance(f, str) or Path(f).name != f or f in (".", ".."):
            raise ArtifactError(f"{index_path}: weight file {f!r} is not a file name inside {src}; the index is corrupt")
    total = 0
    for f in files:
        total += _hf_weights_file(src / f, tmp / f, R, vmap, init=init, seed=seed)
    if index:
        index.setdefault("metadata", {})["total_size"] = total
        write_json(tmp / index_path.name, index)
    handled = set(files) | {index_path.name, "config.json", "generation_config.json", *_TOKENIZER_FILES}
    for f in sorted(src.iterdir()):
        if f.is_file() and f.name not in handled and not f.name.endswith(".model") and f.name not in ("vocab_map.json", "vocab_report.json"):
            shutil.copyfile(f, tmp / f.name)
    for name in ("config.json", "generation_config.json"):
        if (src / name).is_file():
            write_json(tmp / name, _hf_config(read_json(src / name), vmap, R, where=src / name))
    _hf_tokenizer_files(src, tmp, vmap, new_tok)


def _hf_weights_file(path: Path, out: Path, R: int, vmap: VocabMap, *, init: str, seed: int) -> int:
    """Remap the vocabulary tensors of one safetensors file (copied verbatim when it has none); returns data bytes.

    The file is memory-mapped, not copied: untouched tensors go from the mapping to the new file,
    so peak memory is the mapped pages plus the remapped tables."""
    with mapped_safetensors(path) as (tensors, meta):
        shapes = {k: tuple(t.shape) for k, t in tensors.items()}
        vocab_keys = [k for k, s in shapes.items() if (s and s[0] == R) or s == (1, R)]
        if not vocab_keys:
            shutil.copyfile(path, out)
            return sum(t.nbytes for t in tensors.values())
        for k in vocab_keys:
            t = tensors[k]
            if shapes[k] == (1, R):  # (1, V) bias rows as a column
                tensors[k] = vmap.apply_rows(t.T.contiguous(), init=init, seed=seed).T.contiguous()
            else:  # streamed block by block into the file: the new table is never whole in memory
                tensors[k] = RowBlocks(t.dtype, (vmap.rows(R), *t.shape[1:]), functools.partial(vmap.row_blocks, t, init=init, seed=seed))
        write_safetensors(out, tensors, metadata=meta)
        return sum(t.nbytes for t in tensors.values())


@contextlib.contextmanager
def mapped_safetensors(path: Path) -> Iterator[tuple[dict[str, torch.Tensor], dict[str, str] | None]]:
    """Read-only tensors over a memory map of a safetensors file (valid inside the ``with`` only).

    The header is checked before any tensor is built: known dtypes, offsets inside the data,
    sizes that match the shapes; anything else is an :class:`ArtifactError`."""
    fail = f"{path}: not a valid safetensors file"
    try:
        fh = open(path, "rb")
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read ({e}); the folder is incomplete") from None
    with fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if len(mm) < 8:
            raise ArtifactError(f"{fail} (shorter than its 8-byte header length); the file is truncated")
        n = int.from_bytes(mm[:8], "little")
        if n > len(mm) - 8:
            raise ArtifactError(f"{fail} (header of {n} bytes in a {len(mm)}-byte file); the file is truncated")
        try:
            header = json.loads(bytes(mm[8 : 8 + n]))
        except ValueError:
            raise ArtifactError(f"{fail} (its JSON header does not parse); the file is corrupt") from None
        meta = header.pop("__metadata__", None)
        base, size = 8 + n, len(mm) - 8 - n
        dtypes = {v: k for k, v in _ST_DTYPES.items()}
        tensors: dict[str, torch.Tensor] = {}
        flat = None
        with warnings.catch_warnings():  # the map is read-only, and so are these tensors: nothing writes to them
            warnings.simplefilter("ignore", UserWarning)
            for name, info in header.items():
                dtype = dtypes.get(info.get("dtype"))
                a, b = info.get("data_offsets", (0, -1))
                shape = info.get("shape", [])
                count = math.prod(shape)
                if dtype is None or not 0 <= a <= b <= size or b - a != count * torch.empty((), dtype=dtype).element_size():
                    raise ArtifactError(f"{fail} (tensor {name!r}: dtype {info.get('dtype')!r}, offsets {a}..{b}); the file is corrupt")
                flat = torch.frombuffer(mm, dtype=dtype, count=count, offset=base + a) if count else torch.empty(0, dtype=dtype)
                tensors[name] = flat.reshape(shape)
        del flat
        try:
            yield tensors, meta
        finally:
            tensors.clear()  # no view of the map may outlive it


def _hf_config(config: dict, vmap: VocabMap, R: int, *, where: Path) -> dict:
    """New ``vocab_size`` and every special id renumbered (also inside ``text_config``/``decoder``)."""
    new_rows = vmap.rows(R)
    for c in (config, config.get("text_config"), config.get("decoder")):
        if not isinstance(c, dict):
            continue
        if c.get("vocab_size") == R:
            c["vocab_size"] = new_rows
        for key in SPECIAL_ID_KEYS:
            if key in c and c[key] is not None:
                c[key] = _new_ids(c[key], vmap, key=key, where=where)
    return config


def _new_ids(value: Any, vmap: VocabMap, *, key: str, where: Path) -> Any:
    if isinstance(value, list):
        return [_new_ids(v, vmap, key=key, where=where) for v in value]
    j = vmap.new_id(int(value))
    if j is None:
        raise ArtifactError(f"{where}: {key}={value} names a token this change removes; keep that token (pass it in keep=)",
                            param="keep")
    return j


def _hf_tokenizer_files(src: Path, tmp: Path, vmap: VocabMap, new_tok) -> None:
    if is_spm(new_tok):  # the folder's tokenizer is its .model (no tokenizer.json)
        doc = _hf_spm_only(src, tmp, new_tok)
    else:
        doc = json.loads(new_tok.engine.to_str())
        doc = _hf_model_files(src, tmp, vmap, new_tok, doc)
        atomic_write_text(tmp / "tokenizer.json", json.dumps(doc, ensure_ascii=False, indent=2))
    cfg_path = src / "tokenizer_config.json"
    cfg = read_json(cfg_path) if cfg_path.is_file() else {"tokenizer_class": "PreTrainedTokenizerFast"}
    added = {str(a["id"]): {k: a[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special") if k in a}
             for a in (doc or {}).get("added_tokens") or []}
    cfg["added_tokens_decoder"] = added
    new_specials = [t.token for t in vmap.new_tokens if t.special]
    if new_specials:
        extra = list(cfg.get("additional_special_tokens") or []) + new_specials
        cfg["additional_special_tokens"] = extra
    write_json(tmp / "tokenizer_config.json", cfg)
    stm = read_json(src / "special_tokens_map.json") if (src / "special_tokens_map.json").is_file() else None
    if stm is not None or new_specials:
        stm = stm or {}
        if new_specials:
            stm["additional_special_tokens"] = list(stm.get("additional_special_tokens") or []) + new_specials
        write_json(tmp / "special_tokens_map.json", stm)
    model = (doc or {}).get("model") or {}
    if (src / "vocab.txt").is_file():  # BERT's slow tokenizer reads this
        atomic_write_text(tmp / "vocab.txt", "".join(t + "\n" for t in new_tok.vocab))
    if (src / "vocab.json").is_file() and isinstance(model.get("vocab"), dict):  # GPT-2's slow tokenizer
        write_json(tmp / "vocab.json", model["vocab"])
        merges = ["#version: 0.2"] + [" ".join(m) if isinstance(m, list) else m for m in model.get("merges") or []]
        atomic_write_text(tmp / "merges.txt", "\n".join(merges) + "\n")


def _hf_spm_only(src: Path, tmp: Path, new_tok) -> dict[str, Any] | None:
    """A folder whose tokenizer is a sentencepiece ``.model`` alone: the changed model under the file name
    it was loaded from (the other ``.model`` files are left out) and the same ids as a ``tokenizer.json``
    (:mod:`tokembed.tokenizers.spm_hf`); returns its special tokens as a ``tokenizer.json``'s
    ``added_tokens`` (for ``tokenizer_config.json``)."""
    name = next((p.name for p in sorted(src.glob("*.model"))), "tokenizer.model")  # transplanted from another family: the usual name
    (tmp / name).write_bytes(new_tok._proto)
    doc = new_tok._hf_tokenizer_json()  # transformers cannot convert a .model without protobuf: give it the converted file
    if doc is not None:
        write_json(tmp / "tokenizer.json", doc)
    specials = sorted({new_tok.vocab[s] for s in new_tok.special_tokens.values()})
    return {"added_tokens": [{"id": i, "content": new_tok.vocab.token(i), "lstrip": False, "normalized": False, "rstrip": False,
                              "single_word": False, "special": True} for i in specials]}


def _hf_model_files(src: Path, tmp: Path, vmap: VocabMap, new_tok, doc: dict[str, Any]) -> dict[str, Any]:
    """Each sentencepiece ``.model`` next to ``tokenizer.json`` (Llama's ``tokenizer.model``, T5's ``spiece.model``),
    changed as the tokenizer was; returns ``doc`` with BPE merges re-derived from the new model.

    A ``.model`` that gave other ids than the old ``tokenizer.json`` (not the same tokenizer) is left out with a
    warning; a rewritten one that gives other ids than the new ``tokenizer.json`` is a :class:`TokenizerError`
    (nothing is written)."""
    models = sorted(p for p in src.glob("*.model") if p.is_file())
    if not models or not (src / "tokenizer.json").is_file():
        return doc
    if vmap.operation == "transplant":  # the model moved to another tokenizer: the old .model describes neither
        warnings.warn(f"{', '.join(p.name for p in models)}: the old tokenizer's sentencepiece model is left out of the "
                      "transplanted folder (its tokenizer.json is the new tokenizer)", stacklevel=2)
        return doc
    old_doc = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    for path in models:
        blob = path.read_bytes()
        try:
            info = SentencePieceTokenizer(blob, source=str(path)).info  # checked before sentencepiece parses it
        except TokembedError as e:
            warnings.warn(f"{e}; left out of the output", stacklevel=2)
            continue
        probes = probe_texts(info) + [t.token.replace("\u2581", " ") for t in vmap.new_tokens]
        bad = same_ids(blob, old_doc, probes)
        if bad is not None:
            warnings.warn(f"{path}: gives other ids than tokenizer.json (on {bad[:40]!r}); it is not the same tokenizer "
                          "and is left out of the output", stacklevel=2)
            continue
        new_blob, doc = remap_model_file(blob, vmap, doc, new_tok)
        bad = same_ids(new_blob, doc, probes)
        if bad is not None:
            raise TokenizerError(f"{path}: the rewritten model gives other ids than the new tokenizer.json on {bad[:40]!r}; "
                                 "this change cannot be expressed in the sentencepiece model (remove the .model from the "
                                 "folder to change tokenizer.json alone)")
        (tmp / path.name).write_bytes(new_blob)
    return doc
