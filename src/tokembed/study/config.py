"""What a study compares: its config, the named presets, the embedding designs and the equal-budget rule.

Unlike :mod:`tokembed.study.run` (which trains the grid) this module only describes it, so a config
can be read and checked without torch.

**Equal budget.** Every run sees the same number of UTF-8 *text bytes* and has the same
non-embedding architecture (D, layers, heads, sequence length, batch). A tokenizer that
packs more bytes into a token needs fewer steps to see those bytes, so

    steps = ceil(budget_bytes / (batch_size · seq_len · bytes_per_token))

with ``bytes_per_token`` = :attr:`tokembed.training.shards.Shard.bytes_per_token` of the tokenized
training shard of that tokenizer (the rule of :func:`tokembed.training.loop.train` for
``max_bytes``). A byte-level run therefore takes about 3–4× as many steps as a BPE run;
every run sees at least the budget and less than one batch more.

>>> cfg = StudyConfig.from_name("quick")
>>> cfg.tokenizers[:2], cfg.designs[:2]
(['byte', 'bytebpe'], ['untied', 'tied'])
>>> steps_for_budget(budget_bytes=65536, batch_size=16, seq_len=64, bytes_per_token=1.0)
64
>>> steps_for_budget(budget_bytes=65536, batch_size=16, seq_len=64, bytes_per_token=3.7)
18
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

from ..config import read_config_file
from ..errors import ConfigError

__all__ = ["StudyConfig", "DESIGNS", "ALL_KINDS", "PRESETS", "steps_for_budget", "design_overrides"]

#: The tokenizer kinds a default study compares (issue 4), in report order.
ALL_KINDS: list[str] = ["byte", "bytebpe", "unigram", "wordpiece", "morph"]

#: Embedding designs -> ModelConfig fields (``{rank}``/``{cutoffs}`` filled from the study config).
#: ``factorized`` ties its head to the factorized table E = A·B, as ALBERT does (Lan et al. 2020, §3.1),
#: so "factorized vs tied" isolates the factorization; ``adaptive`` is adaptive input + adaptive softmax
#: (Baevski & Auli 2019; Grave et al. 2017).
DESIGNS: dict[str, dict[str, Any]] = {
    "untied": {"embedding": "lookup", "head": "untied"},
    "tied": {"embedding": "lookup", "head": "tied"},
    "tied_bias": {"embedding": "lookup", "head": "tied_bias"},
    "factorized": {"embedding": "factorized", "head": "tied", "rank": "{rank}"},
    "adaptive": {"embedding": "adaptive", "head": "adaptive", "cutoffs": "{cutoffs}"},
}

@dataclass
class StudyConfig:
    """Everything a study needs besides the corpus; load it with :meth:`from_file` or :meth:`from_name`."""

    tokenizers: list[str] = field(default_factory=lambda: list(ALL_KINDS))  # tokenizer kinds, report order
    designs: list[str] = field(default_factory=lambda: list(DESIGNS))  # embedding designs (keys of DESIGNS)
    vocab_size: dict[str, int | list[int]] = field(default_factory=lambda: {"default": 1024})  # V per kind (a list = one
    #                                            tokenizer per V); "default" for kinds not named; byte is fixed at 259
    d_model: int = 64  # D, the same for every run
    n_layers: int = 2  # Transformer blocks
    n_heads: int = 4  # attention heads
    seq_len: int = 64  # T, tokens per training sequence
    batch_size: int = 16  # B, sequences per step
    budget_bytes: int = 589_824  # text bytes every run sees (the equal budget): 576 KiB
    seeds: list[int] = field(default_factory=lambda: [0, 1])  # one run per seed; 2 seeds let the report judge noise
    rank: int = 16  # r of the factorized design (E ≈ A·B, A ∈ R^{V×r}, B ∈ R^{r×D})
    cutoffs: list[float] = field(default_factory=lambda: [0.0625, 0.25])  # adaptive cutoffs as fractions of V (V/16, V/4 as tokembed.model)
    lr: float = 3e-3  # peak learning rate (AdamW)
    warmup_steps: int = 10  # linear warmup, then cosine decay
    positional: str = "rope"  # positional scheme, the same for every run
    eval_bytes: int = 32_768  # validation text evaluated per run (bytes; converted to tokens per tokenizer)
    corpus_bytes: int | None = 1_048_576  # sample the corpus down to about this many bytes (0 or None = all of it)
    val_fraction: float = 0.05  # document-level validation split
    device: str = "cpu"  # "cpu", "cuda" or "auto"
    workers: int = 0  # runs trained in parallel processes (0 = one per CPU core; 1 = in this process)
    threads: int = 1  # torch threads per run: these models are too small to gain from more, and a busy
    #                   machine makes intra-op threads spin (measured 10-100x slower with 2 threads at load 10)
    where: InitVar[str] = "study config"  # names the config in errors (a file, a preset); not a setting

    def __post_init__(self, where: str) -> None:
        self.validate(where=where)

    # -- validation --------------------------------------------------------------
    def validate(self, *, where: str = "study config") -> None:
        """Raise :class:`ConfigError` naming ``where``, the key, the value and the allowed range."""

        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"{where}: {key}={getattr(self, key)!r} {why}", param=key)

        for key in ("d_model", "n_layers", "n_heads", "seq_len", "batch_size", "budget_bytes", "rank", "eval_bytes", "threads"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(key, "must be a positive integer")
        if self.warmup_steps < 0 or isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int):
            raise bad("warmup_steps", "must be an integer >= 0")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise bad("workers", "must be an integer >= 0 (0 = one per CPU core)")
        if self.d_model % self.n_heads:
            raise bad("d_model", f"must be divisible by n_heads={self.n_heads}")
        if not isinstance(self.lr, (int, float)) or isinstance(self.lr, bool) or not (0 < self.lr < 1):
            raise bad("lr", "must be a number in (0, 1)")
        if not isinstance(self.val_fraction, (int, float)) or not (0 < self.val_fraction < 0.5):
            raise bad("val_fraction", "must be in (0, 0.5)")
        if self.corpus_bytes is not None and (isinstance(self.corpus_bytes, bool) or not isinstance(self.corpus_bytes, int)
                                              or 0 < self.corpus_bytes < 1024 or self.corpus_bytes < 0):
            raise bad("corpus_bytes", "must be an integer >= 1024, or 0 (or null) for the whole corpus")
        for key in ("tokenizers", "designs", "seeds", "cutoffs"):
            v = getattr(self, key)
            if not isinstance(v, list) or not v:
                raise bad(key, "must be a non-empty list")
        if len(set(self.tokenizers)) != len(self.tokenizers) or not all(isinstance(k, str) for k in self.tokenizers):
            raise bad("tokenizers", "must be distinct kind names, e.g. ['byte', 'bytebpe']")
        for d in self.designs:
            if d not in DESIGNS:
                raise bad("designs", f"names unknown design {d!r}; choose from {', '.join(DESIGNS)}")
        if len(set(self.designs)) != len(self.designs):
            raise bad("designs", "lists a design twice")
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise bad("seeds", "must be distinct integers")
        if not all(isinstance(c, (int, float)) and 0 < c < 1 for c in self.cutoffs) or sorted(self.cutoffs) != self.cutoffs:
            raise bad("cutoffs", "must be increasing fractions of V in (0, 1), e.g. [0.25]")
        if not isinstance(self.vocab_size, dict):
            raise bad("vocab_size", "must be a table kind -> V, e.g. {default = 1024, byte = 259}")
        for k, v in self.vocab_size.items():
            vs = v if isinstance(v, list) and v else [v]
            if any(isinstance(x, bool) or not isinstance(x, int) or x < 16 for x in vs) or len(set(vs)) != len(vs):
                raise ConfigError(f"{where}: vocab_size.{k}={v!r} must be an integer >= 16 or a list of distinct ones",
                                  param="vocab_size")
        if self.device not in ("cpu", "cuda", "auto"):
            raise bad("device", "must be 'cpu', 'cuda' or 'auto'")
        if self.positional not in ("sinusoidal", "learned", "rope", "alibi", "none"):
            raise bad("positional", "must be one of sinusoidal, learned, rope, alibi, none")

    # -- derived -----------------------------------------------------------------
    def vocab_for(self, kind: str) -> list[int | None]:
        """Requested vocabulary sizes of a kind (``[None]`` for ``byte``: its V is fixed at 256 + specials).

        >>> StudyConfig(vocab_size={"default": 512, "bytebpe": [256 + 3 + 200, 2048]}).vocab_for("bytebpe")
        [459, 2048]
        """
        if kind == "byte":
            return [None]
        v = self.vocab_size.get(kind, self.vocab_size.get("default", 1024))
        return list(v) if isinstance(v, list) else [v]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # -- constructors ------------------------------------------------------------
    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> "StudyConfig":
        """A preset (``"default"``, ``"quick"``, ``"tiny"``) with optional field overrides."""
        if name not in PRESETS:
            raise ConfigError(f"unknown study preset {name!r}; choose from {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides}, where=f"preset {name!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = "study config") -> "StudyConfig":
        """Build from a mapping; an unknown key is a ConfigError naming it and the known keys."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"{where}: expected a table of keys, got {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        d = dict(d)
        preset = d.pop("preset", None)
        if preset is not None:
            if preset not in PRESETS:
                raise ConfigError(f"{where}: preset={preset!r} is unknown; choose from {', '.join(PRESETS)}")
            d = {**PRESETS[preset], **d}
        for k in d:
            if k not in names:
                raise ConfigError(f"{where}: unknown key {k!r}; known keys: {', '.join(names)}, preset")
        if isinstance(d.get("vocab_size"), int) and not isinstance(d.get("vocab_size"), bool):
            d["vocab_size"] = {"default": d["vocab_size"]}
        return cls(**d, where=where)

    @classmethod
    def from_file(cls, path: str | Path, *, preset: str | None = None) -> "StudyConfig":
        """Load a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file; keys are the field names.

        The file may sit under a ``[study]`` table and may name a ``preset``; keys it sets override
        the preset's. ``preset`` here is used when the file names none (the CLI's ``--quick``).
        """
        p = Path(path)
        data = read_config_file(p, what="study config")
        data = data.get("study", data) if isinstance(data, dict) else data
        if preset is not None and isinstance(data, dict):
            data = {"preset": preset, **data}
        return cls.from_dict(data, where=f"study config {p}")


#: Named presets. ``default`` is ``tokembed study`` with no arguments (the full 5 × 5 grid, 2 seeds: about
#: 3 minutes on an idle 2-core CPU, under 10 with other jobs running); ``quick`` is ``--quick`` (under 2
#: minutes); ``tiny`` is for tests.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "quick": {
        "seeds": [0],
        "tokenizers": ["byte", "bytebpe", "unigram"],
        "designs": ["untied", "tied", "factorized"],
        "vocab_size": {"default": 512},
        "d_model": 32,
        "seq_len": 64,
        "batch_size": 8,
        "budget_bytes": 98_304,
        "eval_bytes": 16_384,
        "corpus_bytes": 262_144,
        "rank": 8,
        "warmup_steps": 4,
    },
    "tiny": {
        "seeds": [0],
        "tokenizers": ["byte"],
        "workers": 1,
        "designs": ["untied", "tied"],
        "d_model": 16,
        "n_heads": 2,
        "n_layers": 1,
        "seq_len": 16,
        "batch_size": 4,
        "budget_bytes": 2048,
        "eval_bytes": 2048,
        "corpus_bytes": 32_768,
        "rank": 4,
        "warmup_steps": 2,
    },
}


def steps_for_budget(*, budget_bytes: int, batch_size: int, seq_len: int, bytes_per_token: float) -> int:
    """Optimizer steps that make a run see ``budget_bytes`` of text (at least 1).

    ``steps = ceil(budget_bytes / (B · T · bytes_per_token))``, the same rule as ``TrainConfig.max_bytes``:
    the bytes seen are at least the budget and less than one batch (B · T · bytes_per_token) more.
    """
    per_step = batch_size * seq_len * bytes_per_token
    return max(1, math.ceil(budget_bytes / per_step))


def design_overrides(design: str, config: StudyConfig, vocab_size: int) -> dict[str, Any]:
    """ModelConfig fields of ``design`` with ``{rank}``/``{cutoffs}`` filled in for this V.

    >>> design_overrides("adaptive", StudyConfig(cutoffs=[0.25, 0.5]), 1000)
    {'embedding': 'adaptive', 'head': 'adaptive', 'cutoffs': [250, 500]}
    >>> design_overrides("factorized", StudyConfig(rank=8), 1000)
    {'embedding': 'factorized', 'head': 'tied', 'rank': 8}
    """
    out: dict[str, Any] = {}
    for k, v in DESIGNS[design].items():
        if v == "{rank}":
            v = config.rank
        elif v == "{cutoffs}":
            v = sorted({max(1, min(vocab_size - 1, int(c * vocab_size))) for c in config.cutoffs})
        out[k] = v
    return out
