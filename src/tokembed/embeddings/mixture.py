"""MixtureEmbedding: the lexical lookup combined with per-token feature embeddings (POS, case, lemma, ...).

Unlike :class:`FrequencyGatedEmbedding` (two views of the *same* token id) the extra sources
here are separate id streams: each feature ``f`` has its own small table ``F_f`` and its own
ids ``x_f`` per position (supplied by the caller, e.g. from a tagger or a morphological
analyser), or a static per-token table (e.g. the casing of each vocabulary entry).
Combination (Sennrich & Haddow 2016, "Linguistic Input Features Improve NMT", use concat):

- ``"sum"``:    ``e_t = E[i_t] + Σ_f F_f[x_{f,t}]``                 (every source has dim D)
- ``"concat"``: ``e_t = W [E[i_t]; F_1[x_{1,t}]; ...] + b``          (sources of any dims, projected to D)
- ``"gate"``:   ``e_t = Σ_s α_{s,t} v_{s,t}``, ``α_t = softmax(W_g [v_{1,t}; ...; v_{S,t}] + b_g)``
  (a learned, per-position weighting of the S = 1 + #features sources, each of dim D)

Shapes: B batch, T time, V vocab, D model dim, S sources.

>>> import torch
>>> emb = MixtureEmbedding(TokenEmbedding(100, 8), {"pos": 17, "case": 3}, combine="sum")
>>> ids = torch.tensor([[5, 6]])
>>> emb(ids, {"pos": torch.tensor([[1, 2]]), "case": torch.tensor([[0, 1]])}).shape
torch.Size([1, 2, 8])
>>> sum(p.numel() for p in emb.parameters())  # V·D + Σ n_f·D = 800 + 136 + 24
960
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..errors import ConfigError
from .lookup import TokenEmbedding, check_ids

__all__ = ["MixtureEmbedding"]

COMBINE = ("sum", "concat", "gate")


class MixtureEmbedding(nn.Module):
    """Lexical embedding plus feature embeddings, combined by sum, concat+projection or a learned gate.

    Args:
        lexical: the token embedding (any module of this package), ids -> (B, T, D_lex).
        features: name -> number of feature values (a :class:`TokenEmbedding` is built for it)
            or an embedding module of your own.
        combine: ``"sum"``, ``"concat"`` or ``"gate"``.
        embedding_dim: output D (default: the lexical D). ``sum``/``gate`` need every source at D.
        feature_dim: dim of the built feature tables (default: D for sum/gate, 16 for concat).
        feature_tables: name -> (V,) ids giving a static feature value per vocabulary id, used
            when the caller does not pass that feature (e.g. the case class of each token).
        seed: init seed of the built tables and layers.
    """

    def __init__(
        self,
        lexical: nn.Module,
        features: Mapping[str, int | nn.Module],
        *,
        combine: str = "sum",
        embedding_dim: int | None = None,
        feature_dim: int | None = None,
        feature_tables: Mapping[str, torch.Tensor] | None = None,
        seed: int = 0,
    ):
        super().__init__()
        if combine not in COMBINE:
            raise ConfigError(f"combine={combine!r} is not known; choose one of {', '.join(COMBINE)}")
        if not features:
            raise ConfigError("features is empty; pass at least one feature (name -> number of values)")
        self.lexical, self.combine = lexical, combine
        self.num_embeddings = lexical.num_embeddings
        D = self.embedding_dim = embedding_dim or lexical.embedding_dim
        fdim = feature_dim or (16 if combine == "concat" else D)
        self.features = nn.ModuleDict()
        for k, (name, spec) in enumerate(features.items()):
            if isinstance(spec, int):
                self.features[name] = TokenEmbedding(spec, fdim, seed=seed + 1 + k)
            else:
                self.features[name] = spec
        dims = [lexical.embedding_dim] + [f.embedding_dim for f in self.features.values()]
        if combine in ("sum", "gate") and any(d != D for d in dims):
            raise ConfigError(
                f"combine={combine!r} needs every source at D={D}, got dims {dims} (lexical first); "
                "use combine='concat' or give the features dim D"
            )
        g = torch.Generator().manual_seed(seed)
        if combine == "concat":
            self.proj = nn.Linear(sum(dims), D)  # (D_lex + Σ d_f) -> D
            _init_linear(self.proj, g)
        elif combine == "gate":
            S = len(dims)
            self.gate = nn.Linear(S * D, S)  # (S·D) -> S gate logits
            _init_linear(self.gate, g)
        self.table_names = []
        for name, table in (feature_tables or {}).items():
            if name not in self.features:
                raise ConfigError(f"feature_tables has {name!r}, which is not a feature ({', '.join(self.features)})")
            t = torch.as_tensor(table, dtype=torch.long).flatten()
            if t.numel() != self.num_embeddings:
                raise ConfigError(
                    f"feature_tables[{name!r}] has {t.numel()} entries; "
                    f"it needs one per vocabulary id ({self.num_embeddings})"
                )
            self.register_buffer(f"table_{name}", t)
            self.table_names.append(name)

    def _feature_ids(
        self, ids: torch.Tensor, features: Mapping[str, torch.Tensor] | None, *, default_missing: bool
    ) -> dict:
        features = dict(features or {})
        unknown = set(features) - set(self.features)
        if unknown:
            raise ConfigError(f"unknown features {sorted(unknown)}; this embedding has {list(self.features)}")
        out = {}
        for name in self.features:
            x = features.get(name)
            if x is None and name in self.table_names:
                x = getattr(self, f"table_{name}")[ids]  # (B, T): static per-token feature
            if x is None:
                if not default_missing:
                    raise ConfigError(
                        f"feature {name!r} was not passed; pass features={{{name!r}: ids (B, T)}} "
                        "or give MixtureEmbedding a feature_tables entry for it"
                    )
                x = torch.zeros_like(ids)  # weight_matrix(): value 0 ("none")
            if x.shape != ids.shape:
                raise ConfigError(
                    f"feature {name!r} has shape {tuple(x.shape)}; it needs the ids' shape {tuple(ids.shape)}"
                )
            out[name] = x
        return out

    def _combine(self, ids: torch.Tensor, fids: dict) -> torch.Tensor:
        sources = [self.lexical(ids)] + [self.features[n](fids[n]) for n in self.features]  # S × (B, T, d_s)
        if self.combine == "sum":
            return torch.stack(sources).sum(0)  # (B, T, D) = E[i] + Σ_f F_f[x_f]
        if self.combine == "concat":
            return self.proj(torch.cat(sources, dim=-1))  # (B, T, D) = W [E[i]; F_1[x_1]; ...] + b
        stacked = torch.stack(sources, dim=-2)  # (B, T, S, D)
        alpha = torch.softmax(self.gate(stacked.flatten(-2)), dim=-1)  # (B, T, S)
        return (alpha.unsqueeze(-1) * stacked).sum(-2)  # (B, T, D) = Σ_s α_s v_s

    def forward(self, ids: torch.Tensor, features: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """ids (B, T) and ``features`` name -> ids (B, T) -> (B, T, D)."""
        check_ids(ids, self.num_embeddings, where="MixtureEmbedding")
        return self._combine(ids, self._feature_ids(ids, features, default_missing=False))

    def weight_matrix(self) -> torch.Tensor:
        """All V rows (V, D): static features from ``feature_tables``, other features at value 0."""
        ids = torch.arange(self.num_embeddings, device=next(self.parameters()).device).unsqueeze(0)
        return self._combine(ids, self._feature_ids(ids, None, default_missing=True)).squeeze(0)

    def extra_repr(self) -> str:
        return f"combine={self.combine!r}, features={list(self.features)}"


def _init_linear(layer: nn.Linear, g: torch.Generator) -> None:
    bound = 1.0 / layer.in_features**0.5  # nn.Linear's default U(-1/√fan_in, 1/√fan_in), seeded
    with torch.no_grad():
        layer.weight.copy_(torch.empty_like(layer.weight, device="cpu").uniform_(-bound, bound, generator=g))
        layer.bias.copy_(torch.empty_like(layer.bias, device="cpu").uniform_(-bound, bound, generator=g))
