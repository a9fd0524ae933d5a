"""A small decoder-only Transformer LM built by composition: embedding, positions and head are passed in.

Unlike a monolithic GPT class, :class:`Transformer` owns only the blocks (pre-norm,
causal ``scaled_dot_product_attention``, GELU MLP) and the final LayerNorm; the input
embedding (ids -> vectors), the positional scheme and the output head (vectors -> logits)
are components handed to it, so a factorized, adaptive or hashed embedding — or a tied
head — replaces the plain one with no other change. :func:`build_model` builds those
components from a :class:`ModelConfig`.

Pipeline: ``x_t = e_t + PE_t`` -> blocks -> LayerNorm -> head ``z = W^T h + b`` (or ``z = E h``).

Shapes: B batch, T time, V vocab, D model dim, H heads, hs head dim (D / H), F MLP dim.

>>> cfg = ModelConfig.from_name("tiny", vocab_size=259)
>>> model = build_model(cfg)
>>> model.num_parameters()
{'embedding': 16576, 'head': 16835, 'rest': 100096, 'total': 133507}
>>> import torch
>>> model(torch.tensor([[1, 2, 3]])).logits.shape
torch.Size([1, 3, 259])
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .embeddings.adaptive import AdaptiveInput, frequency_permutation
from .embeddings.factorized import FactorizedEmbedding
from .embeddings.hashed import HashEmbedding
from .embeddings.lookup import TokenEmbedding
from .embeddings.regularization import EmbeddingDropout
from .embeddings.positional import POSITIONAL_KINDS, Positional, build_positional
from .errors import ConfigError
from .heads import AdaptiveSoftmax, TiedHead, UntiedHead
from .options import check_scalar_types


__all__ = [
    "ModelConfig",
    "check_field_types",
    "ModelOutput",
    "Transformer",
    "Block",
    "CausalSelfAttention",
    "MLP",
    "attention_reference",
    "build_model",
    "build_embedding",
    "build_head",
    "default_cutoffs",
    "vocab_tokens",
    "EMBEDDING_KINDS",
    "HEAD_KINDS",
    "PRESETS",
]

EMBEDDING_KINDS = ("lookup", "factorized", "adaptive", "hashed")
HEAD_KINDS = ("untied", "tied", "tied_bias", "adaptive", "adaptive_tied")

#: GPT-2's init std (Radford et al. 2019); residual projections are scaled by 1/sqrt(2·n_layers) (GPT-2 §2.3).
INIT_STD = 0.02

#: Hashed embeddings default to V/4 buckets (Svenstrup et al. 2017 use far fewer buckets than tokens); model.extra.num_buckets overrides.
DEFAULT_HASH_BUCKET_FRACTION = 4

#: Width divisor per adaptive band (Baevski & Auli 2019 and Grave et al. 2017 use 4); model.extra.factor overrides.
DEFAULT_ADAPTIVE_FACTOR = 4.0

#: Named sizes (D, layers, heads); "tiny" is for tests and smoke runs.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"d_model": 64, "n_layers": 2, "n_heads": 4, "max_seq_len": 128},
    "small": {"d_model": 128, "n_layers": 4, "n_heads": 4, "max_seq_len": 256},
    "base": {"d_model": 256, "n_layers": 6, "n_heads": 8, "max_seq_len": 512},
}


@dataclass
class ModelConfig:
    """Architecture of the LM. Non-embedding parts depend only on D, layers, heads, F and positions."""

    vocab_size: int  # V (set from the tokenizer; 0 = "fill in from the tokenizer" in train configs)
    d_model: int = 128  # D
    n_layers: int = 2
    n_heads: int = 4  # H; head dim hs = D / H
    d_ff: int | None = None  # F; default 4·D (Vaswani et al. 2017)
    max_seq_len: int = 256  # longest sequence the positions support
    dropout: float = 0.0  # residual/attention dropout
    positional: str = "rope"  # one of POSITIONAL_KINDS
    embedding: str = "lookup"  # one of EMBEDDING_KINDS
    head: str = "untied"  # one of HEAD_KINDS
    rank: int | None = None  # factorized rank r
    cutoffs: list[int] | None = None  # adaptive cutoffs (ascending, < V)
    head_bias: bool = True  # bias b of the untied head
    embedding_scale: bool = False  # multiply e_t by sqrt(D) (Vaswani et al. 2017, §3.4)
    extra: dict[str, Any] = field(default_factory=dict)  # options for other embedding designs (hash buckets, ...)

    def __post_init__(self) -> None:
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        for name in ("d_model", "n_layers", "n_heads", "max_seq_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; pick d_model = k·n_heads")
        if self.positional not in POSITIONAL_KINDS:
            raise ConfigError(f"positional={self.positional!r} is not known; choose one of {', '.join(POSITIONAL_KINDS)}")
        if self.embedding not in EMBEDDING_KINDS:
            raise ConfigError(f"embedding={self.embedding!r} is not known; choose one of {', '.join(EMBEDDING_KINDS)}")
        if self.head not in HEAD_KINDS:
            raise ConfigError(f"head={self.head!r} is not known; choose one of {', '.join(HEAD_KINDS)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1)")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> "ModelConfig":
        """A preset by name (:data:`PRESETS`) with overrides; ``vocab_size`` is required."""
        if name not in PRESETS:
            raise ConfigError(f"model preset {name!r} is not known; choose one of {', '.join(PRESETS)}")
        return cls(**{"vocab_size": 0, **PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown model option(s) {unknown}; known: {', '.join(sorted(known))}")
        check_field_types(cls, d, section="model.")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_field_types(cls: type, d: dict[str, Any], *, section: str = "") -> None:
    """A config value of the wrong type (``d_model = "big"``, ``max_steps=abc``) is a ConfigError naming
    the key, the value and the type expected (scalar fields only; see :mod:`tokembed.options`)."""
    import typing

    check_scalar_types(typing.get_type_hints(cls), d, what="config", prefix=section)


@dataclass
class ModelOutput:
    """logits (B, T, V) or None; hidden_states: (embedding output, block 1, ..., block L), each (B, T, D), when asked."""

    logits: torch.Tensor | None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    last_hidden: torch.Tensor | None = None  # (B, T, D) after the final LayerNorm: what the head reads


def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Slow, readable causal attention: ``softmax(q k^T / sqrt(hs) + bias + causal mask) v``; (B, H, T, hs).

    The reference :class:`CausalSelfAttention`'s ``scaled_dot_product_attention`` call is tested against.
    """
    T, hs = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-1, -2) / math.sqrt(hs)  # (B, H, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    if bias is not None:
        scores = scores + bias  # (H, T, T) broadcast over B
    return scores.softmax(dim=-1) @ v  # (B, H, T, hs)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention; positions enter through ``positional.rotate``/``attn_bias``."""

    def __init__(self, config: ModelConfig, positional: Positional):
        super().__init__()
        self.n_heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)  # (D -> 3D): q, k, v
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.dropout = config.dropout
        self.reference = False  # True: use attention_reference (slow; for tests)
        self.resid_drop = nn.Dropout(config.dropout)
        # Not a submodule: the positional module is shared by every block and registered once on the Transformer.
        object.__setattr__(self, "positional", positional)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=2)  # 3 × (B, T, D)
        q, k, v = (t.view(B, T, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, H, T, hs)
        q, k = self.positional.rotate(q, k)  # RoPE (identity for other kinds)
        bias = self.positional.attn_bias(T, device=x.device, dtype=q.dtype)  # ALiBi (H, T, T) or None
        p = self.dropout if self.training else 0.0
        if self.reference:
            y = attention_reference(q, k, v, bias)
        elif bias is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)  # (B, H, T, hs)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)  # causal mask is inside bias
        y = y.transpose(1, 2).contiguous().view(B, T, D)  # (B, T, D)
        return self.resid_drop(self.proj(y))


class MLP(nn.Module):
    """``W_2 GELU(W_1 x)``, D -> F -> D."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.d_ff)  # (D -> F)
        self.proj = nn.Linear(config.d_ff, config.d_model)  # (F -> D)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm block: ``x + attn(LN(x))`` then ``x + mlp(LN(x))``."""

    def __init__(self, config: ModelConfig, positional: Positional):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config, positional)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    """Decoder-only LM around the given components.

    Args:
        config: the architecture (D, layers, heads, F, dropout, max_seq_len).
        embedding: ids (B, T) -> (B, T, D); exposes ``num_embeddings``, ``embedding_dim``, ``weight_matrix()``.
        head: (…, D) -> logits (…, V), with ``loss(h, targets, **ce)`` and ``log_prob(h)``.
        positional: a :class:`~tokembed.embeddings.positional.Positional` (default: from ``config.positional``).
        embedding_dropout: probability of dropping whole token *types* for a batch (AWD-LSTM embedding
            dropout, :class:`~tokembed.embeddings.EmbeddingDropout`; global RNG, so resume restores it).
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        embedding: nn.Module,
        head: nn.Module,
        positional: Positional | None = None,
        embedding_dropout: float = 0.0,
    ):
        super().__init__()
        if embedding.embedding_dim != config.d_model:
            raise ConfigError(f"embedding dim {embedding.embedding_dim} != d_model {config.d_model}; build both with the same D")
        if head.num_embeddings != embedding.num_embeddings:
            raise ConfigError(f"head vocab {head.num_embeddings} != embedding vocab {embedding.num_embeddings}; use one V")
        self.config = config
        self.embedding = embedding
        self.positional = positional or build_positional(
            config.positional, d_model=config.d_model, n_heads=config.n_heads, max_seq_len=config.max_seq_len
        )
        self.embedding_dropout = embedding_dropout
        # Not a submodule (it would register the embedding twice): only its mask sampler is used.
        object.__setattr__(self, "_type_dropout", EmbeddingDropout(embedding, embedding_dropout) if embedding_dropout else None)
        self.blocks = nn.ModuleList(Block(config, self.positional) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.head = head
        # Training counts per token id (0 = unknown): kept with the weights for frequency-band metrics.
        self.register_buffer("token_counts", torch.zeros(embedding.num_embeddings, dtype=torch.int64))

    @property
    def vocab_size(self) -> int:
        return self.embedding.num_embeddings

    def hidden(self, ids: torch.Tensor, *, output_hidden_states: bool = False) -> ModelOutput:
        """Run everything but the head; ``last_hidden`` is the (B, T, D) input of the head."""
        x = self.embedding(ids)  # (B, T, D): e_t = E[i_t]
        if self.training and self._type_dropout is not None:
            m = self._type_dropout.sample_mask(ids.device)  # (V,) 0 or 1/(1-p) per token type
            x = x * m[ids].unsqueeze(-1).to(x.dtype)  # e_t · m[i_t] / (1-p)
        x = self.positional.add(x)  # x_t = e_t + PE_t (additive kinds)
        states = [x] if output_hidden_states else None
        for block in self.blocks:
            x = block(x)
            if states is not None:
                states.append(x)
        h = self.ln_f(x)  # (B, T, D)
        return ModelOutput(logits=None, hidden_states=tuple(states) if states is not None else None, last_hidden=h)

    def forward(self, ids: torch.Tensor, *, output_hidden_states: bool = False, return_logits: bool = True) -> ModelOutput:
        out = self.hidden(ids, output_hidden_states=output_hidden_states)
        if return_logits:
            out.logits = self.head(out.last_hidden)  # (B, T, V): z = W^T h + b  (tied: z = E h)
        return out

    def loss(self, ids: torch.Tensor, targets: torch.Tensor, **ce_kwargs: Any) -> torch.Tensor:
        """Cross-entropy (nats) of next-token targets through the head's own loss (fast path for adaptive heads)."""
        h = self.hidden(ids).last_hidden
        return self.head.loss(h, targets, **ce_kwargs)

    def _groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """Unique parameters split into embedding / head (not shared with the embedding) / rest."""
        seen: set[int] = set()
        groups: dict[str, list[tuple[str, nn.Parameter]]] = {"embedding": [], "head": [], "rest": []}
        for part, module in (("embedding", self.embedding), ("head", self.head), ("rest", self)):
            for name, p in module.named_parameters():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                groups[part].append((name, p))
        return groups

    def num_parameters(self) -> dict[str, int]:
        """``{"embedding", "head", "rest", "total"}``; a tied head's shared table is counted once (under embedding)."""
        counts = {k: sum(p.numel() for _, p in v) for k, v in self._groups().items()}
        counts["total"] = sum(counts.values())
        return counts

    def embedding_bytes(self) -> int:
        """Bytes of the embedding and head tables (shared storage counted once)."""
        g = self._groups()
        return sum(p.numel() * p.element_size() for part in ("embedding", "head") for _, p in g[part])


def _init_rest(model: Transformer, seed: int) -> None:
    """GPT-2 init of the blocks: normal(0, 0.02) for Linear weights, 0.02/sqrt(2L) for residual projections, zero biases."""
    g = torch.Generator().manual_seed(seed)
    resid_std = INIT_STD / math.sqrt(2 * model.config.n_layers)
    with torch.no_grad():
        for name, module in model.blocks.named_modules():
            if isinstance(module, nn.Linear):
                std = resid_std if name.endswith(".proj") else INIT_STD
                module.weight.copy_(torch.empty_like(module.weight).normal_(0.0, std, generator=g))
                if module.bias is not None:
                    module.bias.zero_()
        pos = getattr(model.positional, "weight", None)
        if pos is not None:
            pos.copy_(torch.empty_like(pos).normal_(0.0, INIT_STD, generator=g))


def build_embedding(config: ModelConfig, *, token_counts=None, seed: int = 0) -> nn.Module:
    """The input embedding named by ``config.embedding``."""
    V, D = config.vocab_size, config.d_model
    if config.embedding == "lookup":
        return TokenEmbedding(V, D, scale=config.embedding_scale, seed=seed)
    if config.embedding == "factorized":
        if config.rank is None:
            raise ConfigError("embedding='factorized' needs model.rank=r (1 <= r <= d_model), e.g. model.rank=32")
        return FactorizedEmbedding(V, D, config.rank, scale=config.embedding_scale, seed=seed)
    if config.embedding == "hashed":
        buckets = int(config.extra.get("num_buckets", max(1, V // DEFAULT_HASH_BUCKET_FRACTION)))
        return HashEmbedding(V, D, num_buckets=buckets, num_hashes=int(config.extra.get("num_hashes", 2)), seed=seed)
    if config.embedding == "adaptive":
        return AdaptiveInput(V, D, default_cutoffs(config), float(config.extra.get("factor", DEFAULT_ADAPTIVE_FACTOR)),
                             permutation=_order(config, token_counts), seed=seed)
    raise ConfigError(f"embedding={config.embedding!r} is not known; choose one of {', '.join(EMBEDDING_KINDS)}")


def default_cutoffs(config: ModelConfig) -> list[int]:
    """``config.cutoffs`` or ``[V/16, V/4]`` (rank boundaries of the frequency bands; V implied as the last)."""
    if config.cutoffs:
        return [int(c) for c in config.cutoffs]
    V = config.vocab_size
    cuts = sorted({c for c in (V // 16, V // 4) if 0 < c < V})
    if not cuts:
        raise ConfigError(f"vocab_size={V} is too small for adaptive bands; pass model.cutoffs=[...] or another design")
    return cuts


def _order(config: ModelConfig, token_counts) -> torch.Tensor | None:
    """Frequency order ``order[rank] = id`` from training counts (None: ids are taken as already sorted)."""
    if token_counts is None:
        return None
    return frequency_permutation(torch.as_tensor(token_counts, dtype=torch.int64))


def build_head(config: ModelConfig, embedding: nn.Module, *, seed: int = 0, token_counts=None) -> nn.Module:
    """The output head named by ``config.head`` (tied heads share ``embedding``'s table; an untied adaptive
    softmax sorts by ``token_counts`` or by the adaptive input's order). Rows past :func:`vocab_tokens`
    are padding: a flat head masks them to -inf."""
    n = vocab_tokens(config)
    if config.head in ("untied", "tied", "tied_bias"):
        if config.head == "untied":
            head = UntiedHead(config.d_model, config.vocab_size, bias=config.head_bias, seed=seed + 1)
        else:
            head = TiedHead(embedding, bias=config.head == "tied_bias")
        head.set_num_tokens(n)
        return head
    if n < config.vocab_size:
        raise ConfigError(f"model.extra.vocab_tokens={n} < vocab_size={config.vocab_size} (padding rows) needs a flat head; "
                          f"head={config.head!r} gives every row a frequency rank — remove the padding")
    factor = float(config.extra.get("factor", DEFAULT_ADAPTIVE_FACTOR))
    if config.head == "adaptive":
        order = embedding.order if isinstance(embedding, AdaptiveInput) else _order(config, token_counts)
        return AdaptiveSoftmax(config.d_model, config.vocab_size, default_cutoffs(config), factor,
                               head_bias=config.head_bias, permutation=order, seed=seed + 1)
    if config.head == "adaptive_tied":
        if not isinstance(embedding, AdaptiveInput):
            raise ConfigError("head='adaptive_tied' shares the bands of an adaptive input; set embedding='adaptive' too")
        return AdaptiveSoftmax(config.d_model, config.vocab_size, head_bias=config.head_bias, tie_with=embedding, seed=seed + 1)
    raise ConfigError(f"head={config.head!r} is not known; choose one of {', '.join(HEAD_KINDS)}")


def vocab_tokens(config: ModelConfig) -> int:
    """n, the tokenizer's vocabulary size: ``model.extra.vocab_tokens`` when the table has padding rows
    past it (written by ``tokembed vocab ... --pad-to-multiple-of``), else ``vocab_size``.

    >>> vocab_tokens(ModelConfig(vocab_size=64, extra={"vocab_tokens": 61}))
    61
    """
    n = config.extra.get("vocab_tokens", config.vocab_size)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= config.vocab_size:
        raise ConfigError(f"model.extra.vocab_tokens={n!r} must be an integer in [1, vocab_size={config.vocab_size}] "
                          "(the tokenizer's vocabulary size; rows past it are padding)")
    return n


def build_model(config: ModelConfig, *, token_counts=None, seed: int = 0, embedding_dropout: float = 0.0) -> Transformer:
    """Build embedding, positions and head from ``config`` and compose them (deterministic for a seed).

    ``token_counts`` (V,) are training counts per id: adaptive designs sort by them; every model keeps them.
    """
    if config.vocab_size < 1:
        raise ConfigError(f"vocab_size={config.vocab_size}; set it from the tokenizer (tokenizer.vocab_size)")
    embedding = build_embedding(config, token_counts=token_counts, seed=seed)
    head = build_head(config, embedding, seed=seed, token_counts=token_counts)
    model = Transformer(config, embedding=embedding, head=head, embedding_dropout=embedding_dropout)
    _init_rest(model, seed + 2)
    if token_counts is not None:
        counts = torch.as_tensor(token_counts, dtype=torch.int64)
        if counts.shape != (config.vocab_size,):
            raise ConfigError(f"token_counts has shape {tuple(counts.shape)}, expected ({config.vocab_size},)")
        model.token_counts.copy_(counts)
    return model
