"""Embedding sources: one loader, :func:`load_embeddings`, for every place a token embedding lives.

A *source* is what ``tokembed inspect`` and ``tokembed neighbors`` look at: the input
embedding ``E ∈ R^{V×D}`` (``e_t = E[i_t]``), the output head as rows ``W^T ∈ R^{V×D}``
(``z = W^T h``) or None when the model has no LM head, whether the two are tied
(``W = E^T``), and the vocabulary that names the rows.

Unlike :mod:`tokembed.embeddings.pretrained` (which only reads word-vector files) this
module also finds the embedding inside a model: a local Hugging Face folder
(``config.json`` + ``*.safetensors``, sharded through ``model.safetensors.index.json`` or
not, + ``tokenizer.json``/``vocab.txt``) is searched by tensor name for the BERT-like,
GPT-2-like and Llama-like families, and only the needed tensors are read with
``safetensors.safe_open`` (no ``transformers``). A bare ``.npy``/``.safetensors`` matrix
needs a vocabulary file; ``np.load`` runs with ``allow_pickle=False``.

Shapes: V vocabulary rows, D embedding width.

>>> import numpy as np, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> np.save(d / "E.npy", np.eye(3, dtype=np.float32))
>>> _ = (d / "vocab.txt").write_text("[PAD]\\nhello\\nworld\\n")
>>> src = load_embeddings(d / "E.npy", vocab=d / "vocab.txt")
>>> src.shape, src.vocab.token(1), src.special_tokens, src.tied
((3, 3), 'hello', {'pad': '[PAD]'}, False)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._paths import existing_local_path
from .errors import EmbeddingSourceError
from .vocab import Vocab

__all__ = ["EmbeddingSource", "load_embeddings", "find_embedding_tensors", "MATRIX_SUFFIXES", "VECTOR_SUFFIXES"]

#: file suffixes read as a bare (V, D) matrix that needs a separate vocabulary file
MATRIX_SUFFIXES = (".npy", ".safetensors")
#: file suffixes handed to the word-vector reader (word2vec text/binary, GloVe, fastText .vec)
VECTOR_SUFFIXES = (".vec", ".txt", ".bin", ".w2v", ".glove", ".gz")

# Tensor names of the input embedding and the LM head, by family (the suffix after any
# "bert." / "transformer." / "model." prefix). Order = priority.
_INPUT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("bert", "embeddings.word_embeddings.weight"),  # BERT, RoBERTa, ELECTRA, MiniLM, DistilBERT
    ("gpt2", "wte.weight"),  # GPT-2, GPT-J, CodeGen
    ("llama", "embed_tokens.weight"),  # Llama, Mistral, Qwen, Gemma, OPT
    ("gpt_neox", "embed_in.weight"),  # GPT-NeoX, Pythia
    ("t5", "shared.weight"),  # T5 (encoder-decoder)
)
_OUTPUT_SUFFIXES: tuple[str, ...] = (
    "lm_head.weight",  # GPT-2, Llama, Mistral, ...
    "embed_out.weight",  # GPT-NeoX
    "cls.predictions.decoder.weight",  # BERT masked-LM head (usually tied, then absent)
    "generator_lm_head.weight",  # ELECTRA generator
)
#: architectures (config.json "architectures") that carry an LM head even when its tensor is tied away
_HEAD_ARCH = re.compile(r"(LMHead|CausalLM|MaskedLM|ForPreTraining|ConditionalGeneration)")
_HF_SPECIAL_KEYS = ("unk", "pad", "bos", "eos", "cls", "sep", "mask")


@dataclass
class EmbeddingSource:
    """An embedding matrix with its vocabulary, ready to diagnose.

    Attributes:
        path: where it was read from.
        kind: ``"hf"`` (Hugging Face folder), ``"matrix"`` (.npy/.safetensors + vocab file),
            ``"vectors"`` (word2vec/GloVe/fastText file) or ``"checkpoint"`` (tokembed checkpoint).
        vocab: names the rows (``vocab.token(i)`` is row ``i``), with special tokens and fingerprint.
        input: (V, D) float32 input embedding ``E``.
        output: (V, D) float32 output head rows ``W^T`` (``z = W^T h``), or None when there is no LM head.
        tied: True when the head is the input embedding (``W = E^T``); then ``output is input``.
        family: detected model family (``"bert"``, ``"gpt2"``, ``"llama"``, ...) or None.
        tokenizer: a tokembed :class:`~tokembed.tokenizers.Tokenizer` that produces these ids, when one
            could be loaded (needed for ``--corpus`` counts and the reachability test), else None.
        names: tensor names the matrices came from (``{"input": ..., "output": ...}``).
        notes: human-readable remarks made while loading (padding rows, dropped bias, ...).
        model_loader: for sources tokembed can run (checkpoints), a function returning the model.
    """

    path: Path
    kind: str
    vocab: Vocab
    input: np.ndarray  # (V, D)
    output: np.ndarray | None = None  # (V, D)
    tied: bool = False
    family: str | None = None
    tokenizer: Any = None
    names: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    model_loader: Callable[[], Any] | None = None

    def __post_init__(self) -> None:
        if self.input.ndim != 2:
            raise EmbeddingSourceError(f"{self.path}: embedding has shape {self.input.shape}; expected a (V, D) matrix")
        if len(self.vocab) != self.input.shape[0]:
            raise EmbeddingSourceError(
                f"{self.path}: the vocabulary has {len(self.vocab)} tokens but the matrix has {self.input.shape[0]} rows; "
                "pass the vocabulary file that belongs to this matrix"
            )
        if self.output is not None and self.output.shape != self.input.shape:
            raise EmbeddingSourceError(
                f"{self.path}: output head {self.names.get('output', '')} has shape {self.output.shape} but the input "
                f"embedding has {self.input.shape}; the head must have one row per token"
            )

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.input.shape)  # type: ignore[return-value]

    @property
    def special_tokens(self) -> dict[str, str]:
        return dict(self.vocab.special_tokens)

    @property
    def fingerprint(self) -> str:
        return self.vocab.fingerprint

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary of what was loaded."""
        return {
            "path": str(self.path),
            "kind": self.kind,
            "family": self.family,
            "vocab_size": self.shape[0],
            "dim": self.shape[1],
            "has_output_head": self.output is not None,
            "tied": self.tied,
            "tensors": dict(self.names),
            "special_tokens": self.special_tokens,
            "fingerprint": self.fingerprint,
            "tokenizer": None if self.tokenizer is None else type(self.tokenizer).__name__,
            "notes": list(self.notes),
        }


# -- entry point -------------------------------------------------------------------


def load_embeddings(
    source: str | os.PathLike,
    *,
    vocab: str | os.PathLike | None = None,
    tensor: str | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> EmbeddingSource:
    """Load the token embedding of ``source``.

    Args:
        source: a tokembed checkpoint folder, a Hugging Face model folder, a compressed artifact folder
            (``tokembed compress``; a :class:`~tokembed.compress.reader.CompressedSource` that decodes its rows
            through the codec), a ``.npy``/``.safetensors`` matrix (then ``vocab`` is required) or a
            word2vec/GloVe/fastText vector file.
        vocab: for a bare matrix, or a compressed artifact without ``tokenizer/``: ``vocab.txt`` (one token per
            line), ``tokenizer.json``, or a tokenizer folder (tokembed or Hugging Face).
        tensor: for a ``.safetensors`` matrix that holds several tensors, the one to read.
        limit: for vector files, read only the first ``limit`` vectors.
        progress: show a progress bar while reading large vector files.
    """
    p = existing_local_path(source, expected="a model folder, a checkpoint or a vector file", error=EmbeddingSourceError)
    if p.is_dir():
        if (p / "compression.json").is_file():  # a 'tokembed compress' artifact: rows decoded through its codec
            from .compress.reader import load_compressed_source  # lazy: torch and the codecs

            return load_compressed_source(p, vocab=vocab)
        for ck in (p, p / "checkpoint"):  # a checkpoint folder or the run folder that holds one
            if (ck / "tokenizer").is_dir() and (ck / "config.json").is_file() and (ck / "model.safetensors").is_file():
                cfg = _read_json(ck / "config.json")
                if isinstance(cfg, dict) and "model" in cfg:
                    return _load_checkpoint(ck)
        return _load_hf_folder(p)
    if p.suffix in MATRIX_SUFFIXES:
        return _load_matrix(p, vocab=vocab, tensor=tensor)
    return _load_vectors(p, limit=limit, progress=progress)


# -- Hugging Face folder -------------------------------------------------------------


#: Weight files that need pickle to read (refused, with the conversion to safetensors as the fix).
PICKLED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EmbeddingSourceError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EmbeddingSourceError(f"{path}: malformed JSON ({e}); the file is truncated or corrupt") from e
    except RecursionError as e:  # e.g. 100k nested '['
        raise EmbeddingSourceError(f"{path}: JSON nested too deeply to be a model file; the file is corrupt") from e


_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean", type(None): "null"}


def _read_json_object(path: Path) -> dict:
    """A JSON file that must hold an object (``config.json``, ``tokenizer_config.json``)."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise EmbeddingSourceError(
            f"{path}: holds JSON {json.dumps(data)[:40]} ({_JSON_TYPES.get(type(data), 'value')}); expected an object "
            "of settings {...} — the file is corrupt or not this model's"
        )
    return data


def _allowed_roots(folder: Path) -> list[Path]:
    """Folders a model folder's files may resolve into: the folder itself, and for a Hugging Face hub
    cache snapshot (``.../snapshots/<rev>/``, whose files are symlinks to ``../../blobs/<hash>``) its blobs."""
    root = folder.resolve()
    roots = [root]
    if folder.absolute().parent.name == "snapshots":
        roots.append((folder.absolute().parent.parent / "blobs").resolve())
    return roots


def _inside(folder: Path, name: str, *, origin: Path) -> Path:
    """``folder / name``, refused unless it stays inside ``folder`` once ``..`` and symlinks are resolved.

    A model folder is read-only input from someone else: an index file that names
    ``../secret/x.safetensors``, an absolute path or ``/proc/self/environ``, or a symlink that leads
    out of the folder, must not make tokembed read that file.

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> _inside(d, "model-1.safetensors", origin=d).name
    'model-1.safetensors'
    >>> _inside(d, "../x.safetensors", origin=d / "index.json")
    Traceback (most recent call last):
      ...
    tokembed.errors.EmbeddingSourceError: ...: names '../x.safetensors', which lies outside the model folder ...
    """
    where = (
        f"{origin}: names {name!r}, which lies outside the model folder {folder}; "
        "a model folder may only name its own files — put the shard in the folder and name it relative to it"
    )
    if Path(name).is_absolute() or Path(name).drive:
        raise EmbeddingSourceError(where)
    target = (folder / name).resolve()
    if not any(target == r or target.is_relative_to(r) for r in _allowed_roots(folder)):
        raise EmbeddingSourceError(where)
    return folder / name


def _tensor_index(folder: Path) -> dict[str, Path]:
    """Tensor name -> the .safetensors file that holds it (index file first, else every file's header)."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        data = _read_json(index)
        wm = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(wm, dict):
            raise EmbeddingSourceError(f"{index}: no 'weight_map' object; the index file is corrupt")
        out = {}
        for name, fname in wm.items():
            if not isinstance(fname, str) or not fname:
                raise EmbeddingSourceError(f"{index}: tensor {name!r} maps to {fname!r}; expected a shard file name")
            f = _inside(folder, fname, origin=index)
            if not f.is_file():
                raise EmbeddingSourceError(
                    f"{index}: tensor {name!r} is in shard {fname!r}, which is missing from {folder}"
                )
            out[name] = f
        return out
    files = [_inside(folder, f.name, origin=folder) for f in sorted(folder.glob("*.safetensors"))]
    out = {}
    for f in files:
        with _safe_open(f) as sf:
            for k in sf.keys():
                out[k] = f
    return out


def find_embedding_tensors(names, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Pick the input-embedding and LM-head tensor names out of ``names`` (tensor names of a model).

    Returns ``{"family", "input", "output", "tied"}``; ``output`` is None when the head is tied away
    or absent. ``tied`` follows ``tie_word_embeddings`` (Hugging Face default True) when no head tensor
    is stored but the architecture has an LM head.

    >>> find_embedding_tensors(["transformer.wte.weight", "transformer.h.0.attn.c_attn.weight"],
    ...                        {"architectures": ["GPT2LMHeadModel"]})
    {'family': 'gpt2', 'input': 'transformer.wte.weight', 'output': None, 'tied': True}
    >>> find_embedding_tensors(["model.embed_tokens.weight", "lm_head.weight"], {"tie_word_embeddings": False})
    {'family': 'llama', 'input': 'model.embed_tokens.weight', 'output': 'lm_head.weight', 'tied': False}
    """
    names = list(names)
    config = dict(config or {})
    family = inp = None
    for fam, suffix in _INPUT_SUFFIXES:
        hits = sorted((n for n in names if n == suffix or n.endswith("." + suffix)), key=len)
        # decoder-side copies (T5 "decoder.embed_tokens") lose to the shortest name
        if hits:
            family, inp = fam, hits[0]
            break
    out = None
    for suffix in _OUTPUT_SUFFIXES:
        hits = sorted((n for n in names if n == suffix or n.endswith("." + suffix)), key=len)
        if hits:
            out = hits[0]
            break
    archs = " ".join(config.get("architectures") or [])
    has_head = out is not None or bool(_HEAD_ARCH.search(archs))
    tie = bool(config.get("tie_word_embeddings", True))
    tied = out is None and has_head and tie
    return {"family": family, "input": inp, "output": out, "tied": tied}


def _safe_open(path: Path, framework: str = "np"):
    """``safetensors.safe_open`` with a typed error for a file that is not safetensors."""
    from safetensors import safe_open

    try:
        return safe_open(str(path), framework=framework)
    except Exception as e:  # SafetensorError is not exported as a stable type
        raise EmbeddingSourceError(
            f"{path}: not a valid safetensors file ({e}); the file is truncated or corrupt"
        ) from e


def _read_tensor(path: Path, name: str, sf=None) -> np.ndarray:
    """One tensor as float32 numpy (bf16 goes through torch, which numpy lacks); ``sf``: an open handle to reuse."""
    if sf is None:
        with _safe_open(path) as sf:
            return _read_tensor(path, name, sf)
    dtype = sf.get_slice(name).get_dtype()
    if dtype.upper() not in ("BF16", "F8_E4M3", "F8_E5M2"):
        return np.ascontiguousarray(sf.get_tensor(name), dtype=np.float32)
    with _safe_open(path, "pt") as pt:  # numpy has no bfloat16
        return pt.get_tensor(name).float().numpy()


def _tensor_shape(path: Path, name: str) -> list[int]:
    with _safe_open(path) as sf:
        try:
            return list(sf.get_slice(name).get_shape())
        except Exception as e:
            raise EmbeddingSourceError(f"{path}: has no tensor {name!r} ({e}); the index file does not match the shards") from e


def _config_dims(config: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """(vocab_size, hidden size) from config.json, looking into ``text_config`` for multimodal models."""
    c = dict(config)
    if "vocab_size" not in c and isinstance(c.get("text_config"), dict):
        c = c["text_config"]
    v = c.get("vocab_size")
    d = next(
        (c[k] for k in ("hidden_size", "n_embd", "d_model", "embedding_size", "dim") if isinstance(c.get(k), int)), None
    )
    return (v if isinstance(v, int) else None), d


def _load_hf_folder(folder: Path) -> EmbeddingSource:
    cfg_path = folder / "config.json"
    config = _read_json_object(cfg_path) if cfg_path.is_file() else {}
    index = _tensor_index(folder)
    pickled = sorted(f.name for f in folder.iterdir() if f.suffix in PICKLED_SUFFIXES) if not index else []
    if pickled:
        raise EmbeddingSourceError(
            f"{folder}: the weights are pickled ({', '.join(pickled[:3])}) and tokembed never unpickles; convert them "
            "to safetensors first (transformers: model.save_pretrained(folder, safe_serialization=True))"
        )
    if not index:
        raise EmbeddingSourceError(
            f"{folder}: no *.safetensors file; pass a Hugging Face model folder saved with save_pretrained "
            "(safetensors weights), a tokembed checkpoint or a vector file"
        )
    found = find_embedding_tensors(index.keys(), config)
    if found["input"] is None:
        sample = ", ".join(sorted(index)[:6])
        raise EmbeddingSourceError(
            f"{folder}: no input-embedding tensor among {len(index)} tensors ({sample}, ...); expected a name ending in "
            + ", ".join(s for _, s in _INPUT_SUFFIXES)
            + "; for another layout export the matrix to .npy and pass it with its vocabulary (vocab=)",
            param="vocab",
        )
    in_name = found["input"]
    shape = _tensor_shape(index[in_name], in_name)
    if len(shape) != 2:
        raise EmbeddingSourceError(f"{index[in_name]}: tensor {in_name!r} has shape {shape}; expected (V, D)")
    cv, cd = _config_dims(config)
    if cv is not None and cv != shape[0]:
        raise EmbeddingSourceError(
            f"{cfg_path}: vocab_size={cv} but tensor {in_name!r} in {index[in_name].name} has {shape[0]} rows; "
            "the config does not belong to these weights — fix vocab_size or use the matching config.json"
        )
    if cd is not None and cd != shape[1]:
        emb = config.get("embedding_size")
        if not (isinstance(emb, int) and emb == shape[1]):  # ALBERT-style factorised embedding
            raise EmbeddingSourceError(
                f"{cfg_path}: hidden size {cd} but tensor {in_name!r} has {shape[1]} columns; "
                "the config does not belong to these weights"
            )
    E = _read_tensor(index[in_name], in_name)  # (V, D)
    notes: list[str] = []
    names = {"input": in_name}
    W = None
    tied = bool(found["tied"])
    if found["output"] is not None:
        out_name = found["output"]
        W = _read_tensor(index[out_name], out_name)  # (V, D): rows of W^T
        names["output"] = out_name
        if W.shape != E.shape:
            raise EmbeddingSourceError(
                f"{index[out_name]}: head {out_name!r} has shape {tuple(W.shape)} but {in_name!r} has {tuple(E.shape)}; "
                "the weights are inconsistent"
            )
        if np.array_equal(W, E):  # stored twice but identical: tied
            W, tied = E, True
            notes.append(f"{out_name} is stored but equal to {in_name}: treated as tied")
    elif tied:
        W = E
        names["output"] = in_name
    vocab, tokenizer, vnotes = _hf_vocab(folder, rows=E.shape[0])
    notes += vnotes
    return EmbeddingSource(
        path=folder,
        kind="hf",
        vocab=vocab,
        input=E,
        output=W,
        tied=tied,
        family=found["family"],
        tokenizer=tokenizer,
        names=names,
        notes=notes,
    )


# -- vocabularies ----------------------------------------------------------------------


def _pad_table(table: list[str | None], rows: int, origin: Path, notes: list[str]) -> list[str]:
    """Fill holes and pad to ``rows`` with ``<row_i>`` placeholders (models often pad V to a multiple of 64)."""
    if len(table) > rows:
        raise EmbeddingSourceError(
            f"{origin}: the vocabulary has {len(table)} tokens but the embedding has {rows} rows; "
            "pass the vocabulary that belongs to this matrix"
        )
    holes = sum(t is None for t in table)
    taken = {t for t in table if t is not None}
    out = []
    for i in range(rows):
        t = table[i] if i < len(table) else None
        if t is None:
            t = f"<row_{i}>"
            while t in taken:
                t = "<" + t + ">"
        out.append(t)
    if rows > len(table):
        notes.append(
            f"{rows - len(table)} embedding rows beyond the {len(table)}-token vocabulary are named <row_i> (padding)"
        )
    if holes:
        notes.append(f"{holes} ids missing from {origin.name} are named <row_i>")
    return out


def _special_map(folder: Path) -> dict[str, str]:
    """role -> token string from special_tokens_map.json / tokenizer_config.json (``unk_token`` -> ``unk``)."""
    roles: dict[str, str] = {}
    for name in ("tokenizer_config.json", "special_tokens_map.json"):  # the latter wins
        f = folder / name
        if not f.is_file():
            continue
        data = _read_json(f)
        if not isinstance(data, dict):
            continue
        for role in _HF_SPECIAL_KEYS:
            v = data.get(f"{role}_token")
            if isinstance(v, dict):
                v = v.get("content")
            if isinstance(v, str):
                roles[role] = v
    return roles


def _vocab_txt_table(path: Path) -> list[str]:
    """Lines of a vocab.txt (one token per line, ``\\n`` stripped only: tokens may hold spaces)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise EmbeddingSourceError(f"{path}: not UTF-8 at byte {e.start}; pass a UTF-8 vocabulary file") from e
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _vocab_from_table(table: list[str], roles: Mapping[str, str], origin: Path) -> Vocab:
    """Vocab with named roles (unk, pad, ...) from a special-token map, else BERT's ``[PAD]``-style names."""
    present = set(table)
    special = {r: t for r, t in roles.items() if t in present}
    if not roles:  # BERT-style vocab.txt without a map: [PAD], [UNK], [CLS], [SEP], [MASK]
        for role in _HF_SPECIAL_KEYS:
            t = f"[{role.upper()}]"
            if t in present:
                special[role] = t
    try:
        return Vocab(table, special_tokens=special)
    except Exception as e:
        raise EmbeddingSourceError(f"{origin}: {e}") from e


def _hf_vocab(folder: Path, *, rows: int) -> tuple[Vocab, Any, list[str]]:
    """Vocab (and a tokembed tokenizer when one loads) for a Hugging Face folder.

    The tokenizer comes from :func:`tokembed.load_tokenizer` (``tokenizer.json`` or ``vocab.txt``); when
    none loads, ``vocab.txt`` still names the rows (no encoding). Rows beyond the tokenizer's vocabulary
    (padding) get ``<row_i>`` names.
    """
    notes: list[str] = []
    tokenizer = _try_load_tokenizer(folder, notes)
    if tokenizer is not None:
        if len(tokenizer.vocab) == rows:
            return tokenizer.vocab, tokenizer, notes
        origin = folder / "tokenizer.json"
        full = _pad_table(list(tokenizer.vocab.tokens), rows, origin, notes)
        try:
            return Vocab(full, special_tokens=tokenizer.vocab.special_tokens), tokenizer, notes
        except Exception as e:
            raise EmbeddingSourceError(f"{origin}: {e}") from e
    if not (folder / "vocab.txt").is_file():
        raise EmbeddingSourceError(
            f"{folder}: no tokenizer.json or vocab.txt; the rows cannot be named — copy the model's tokenizer files "
            "into the folder"
        )
    origin = folder / "vocab.txt"
    full = _pad_table(list(_vocab_txt_table(origin)), rows, origin, notes)
    return _vocab_from_table(full, _special_map(folder), origin), None, notes


def _try_load_tokenizer(path: Path, notes: list[str]):
    """A tokembed tokenizer for ``path`` through :func:`tokembed.load_tokenizer`, or None (with a note).

    ``tokenizer.json`` / ``vocab.txt`` are loaded without the post-processor's ``[CLS]``/``[SEP]``, so
    corpus counts and round trips see only the text's own tokens; a ``vocab.txt`` follows the folder's
    ``do_lower_case`` when ``tokenizer_config.json`` states it.
    """
    from .errors import TokembedError
    from .tokenizers import load_tokenizer

    if path.is_dir() and (path / "tokembed.json").is_file():
        return load_tokenizer(path)  # a broken tokembed folder is an error, not a note
    opts: dict[str, Any] = {"add_special_tokens": False}
    folder = path if path.is_dir() else path.parent
    if path.is_dir() and not (path / "tokenizer.json").is_file() and (folder / "tokenizer_config.json").is_file():
        lower = _read_json_object(folder / "tokenizer_config.json").get("do_lower_case")
        if isinstance(lower, bool):
            opts["lowercase"] = lower
    try:
        return load_tokenizer(path, **opts)
    except TokembedError as e:
        notes.append(
            f"no tokenizer for {path.name} ({str(e).split(';')[0]}): corpus counts and reachability are skipped"
        )
        return None


def _vocab_file(vocab: Path, rows: int) -> tuple[Vocab, Any, list[str]]:
    notes: list[str] = []
    if vocab.is_dir():
        if (vocab / "tokembed.json").is_file():
            tok = _try_load_tokenizer(vocab, notes)
            if len(tok.vocab) != rows:
                raise EmbeddingSourceError(
                    f"{vocab}: tokenizer has {len(tok.vocab)} tokens but the matrix has {rows} rows; "
                    "pass the tokenizer the matrix was trained with"
                )
            return tok.vocab, tok, notes
        return _hf_vocab(vocab, rows=rows)
    if vocab.name.endswith(".json"):
        tok = _try_load_tokenizer(vocab, notes)
        if tok is None:
            raise EmbeddingSourceError(f"{vocab}: not a readable tokenizer.json ({'; '.join(notes)})")
        if len(tok.vocab) != rows:
            raise EmbeddingSourceError(
                f"{vocab}: {len(tok.vocab)} tokens but the matrix has {rows} rows; pass the vocabulary of this matrix"
            )
        return tok.vocab, tok, notes
    table = _vocab_txt_table(vocab)
    if len(table) != rows:
        raise EmbeddingSourceError(
            f"{vocab}: {len(table)} lines (one token per line) but the matrix has {rows} rows; "
            "pass the vocabulary file that belongs to this matrix (one line per row, in row order)"
        )
    return _vocab_from_table(table, {}, vocab), None, notes


# -- bare matrices -----------------------------------------------------------------------


def _load_matrix(path: Path, *, vocab, tensor: str | None) -> EmbeddingSource:
    if vocab is None:
        raise EmbeddingSourceError(
            f"{path}: a bare matrix has no token names; pass its vocabulary as vocab= (vocab.txt, tokenizer.json "
            "or a tokenizer folder)",
            param="vocab",
        )
    vocab_path = Path(vocab).expanduser()
    if not vocab_path.exists():
        raise EmbeddingSourceError(f"{vocab_path}: vocabulary file not found; pass an existing file as vocab", param="vocab")
    if path.suffix == ".npy":
        try:
            M = np.load(path, allow_pickle=False, mmap_mode="r")  # header only: nothing allocated yet
        except ValueError as e:
            if "object" in str(e).lower() or "pickle" in str(e).lower():  # object arrays need pickle: refused
                raise EmbeddingSourceError(
                    f"{path}: cannot read without unpickling ({e}); save a plain numeric array"
                ) from e
            raise EmbeddingSourceError(  # e.g. a header shape larger than the data: checked before reading
                f"{path}: the .npy header does not match the file ({e}); the file is truncated or corrupt — save it again"
            ) from e
        except (OSError, EOFError) as e:
            raise EmbeddingSourceError(f"{path}: not a .npy file ({e or 'empty'}); the file is corrupt or truncated") from e
        if M.dtype.kind not in "fiu":
            raise EmbeddingSourceError(f"{path}: dtype {M.dtype} is not numeric; save a float matrix")
        _check_matrix_shape(path, M.shape)
        v, tok, notes = _vocab_file(vocab_path, M.shape[0])  # before the (V, D) float32 copy is allocated
        M, name = np.ascontiguousarray(M, dtype=np.float32), path.name
    else:
        with _safe_open(path) as sf:  # one open: the header is parsed once, whatever the tensor count
            name = _pick_tensor(path, sf, tensor)
            shape = list(sf.get_slice(name).get_shape())
            _check_matrix_shape(path, shape, name=name)
            v, tok, notes = _vocab_file(vocab_path, shape[0])
            M = _read_tensor(path, name, sf)
    return EmbeddingSource(path=path, kind="matrix", vocab=v, input=M, tokenizer=tok, names={"input": name}, notes=notes)


def _check_matrix_shape(path: Path, shape, *, name: str | None = None) -> None:
    if len(shape) != 2:
        what = f"tensor {name!r}" if name else "array"
        raise EmbeddingSourceError(f"{path}: {what} has shape {tuple(shape)}; expected a (V, D) matrix")


def _pick_tensor(path: Path, sf, tensor: str | None) -> str:
    """The tensor of an open safetensors file to read: ``tensor``, the input embedding by name, or the only 2-D one."""
    keys = list(sf.keys())
    if tensor is not None:
        if tensor not in keys:
            raise EmbeddingSourceError(f"{path}: no tensor {tensor!r}; it holds {', '.join(keys[:8])}")
        return tensor
    found = find_embedding_tensors(keys)["input"]
    if found is not None:
        return found
    two_d = []
    for k in keys:  # stop at the second 2-D tensor: then the choice is the user's
        if len(sf.get_slice(k).get_shape()) == 2:
            two_d.append(k)
            if len(two_d) > 1:
                break
    if len(two_d) == 1:
        return two_d[0]
    raise EmbeddingSourceError(
        f"{path}: holds {len(keys)} tensors ({', '.join(keys[:8])}{', ...' if len(keys) > 8 else ''}); "
        "choose one by name with tensor=NAME",
        param="tensor",
    )


# -- word vectors ----------------------------------------------------------------------------


def _load_vectors(path: Path, *, limit: int | None, progress: bool) -> EmbeddingSource:
    from .embeddings.pretrained import read_vectors  # lazy: the embeddings package imports torch, which numpy sources do not need
    tokens, M = read_vectors(path, limit=limit, progress=progress)
    notes = []
    seen: dict[str, int] = {}
    table = []
    for i, t in enumerate(tokens):  # GloVe files can repeat a word; keep every row, rename repeats
        if t in seen:
            notes.append(f"token {t!r} repeats at rows {seen[t]} and {i}; row {i} is named {t!r}#{i}")
            t = f"{t}#{i}"
        seen[t] = i
        table.append(t)
    return EmbeddingSource(
        path=path, kind="vectors", vocab=Vocab(table), input=np.asarray(M, dtype=np.float32), notes=notes[:20]
    )


# -- tokembed checkpoints --------------------------------------------------------------------


def _load_checkpoint(folder: Path) -> EmbeddingSource:
    from .training.checkpoint import load_checkpoint  # lazy: torch and the model stay unloaded for other sources
    model, tokenizer, _cfg = load_checkpoint(folder)
    E = model.embedding.weight_matrix().detach().float().cpu().numpy()  # (V, D)
    head = model.head
    W = head.weight_matrix().detach().float().cpu()
    W = W.numpy()
    if W.shape != E.shape and W.T.shape == E.shape:
        W = np.ascontiguousarray(W.T)
    tied = type(head).__name__.startswith("Tied") or np.shares_memory(W, E) or np.array_equal(W, E)
    if tied:
        W = E
    return EmbeddingSource(
        path=folder,
        kind="checkpoint",
        vocab=tokenizer.vocab,
        input=E,
        output=W,
        tied=bool(tied),
        family="tokembed",
        tokenizer=tokenizer,
        names={"input": "embedding", "output": "head"},
        model_loader=lambda: model,
    )
