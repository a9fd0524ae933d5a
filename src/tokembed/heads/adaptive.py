"""AdaptiveSoftmax: a two-level softmax whose rare-token clusters are narrow (Grave et al. 2017).

Unlike :class:`~tokembed.heads.linear.UntiedHead` / :class:`~tokembed.heads.linear.TiedHead` (one flat
softmax over V logits), the frequency-sorted vocabulary is cut by ``cutoffs`` into a **head**
cluster (the ``c_0`` most frequent tokens plus one logit per tail cluster) and **tail**
clusters ``k = 1..K`` of ``n_k`` tokens whose logits come from a reduced width
``d_k = ⌊D / div^k⌋``:

    log p(v) = log softmax(z_head)[v]                                 v in the shortlist
    log p(v) = log softmax(z_head)[c_0 + k - 1] + log softmax(z_k)[v - lo_k]    v in cluster k
    z_head = H h (+ b)          H ∈ R^{(c_0 + K)×D}
    z_k    = O_k (Q_k h)         Q_k ∈ R^{d_k×D}, O_k ∈ R^{n_k×d_k}

so training only evaluates the tail of the cluster a target falls in (``loss``), while
``log_prob``/``forward`` give exact log-probabilities over the full vocabulary (they sum to 1).

Tying with :class:`~tokembed.embeddings.adaptive.AdaptiveInput` (fairseq's
tie-adaptive-weights / tie-adaptive-proj): the shortlist rows of ``H`` are the input's band 0
``E_0``, ``O_k = E_k`` and ``Q_k = P_k^T`` (the input's projection, transposed), so the
effective output vector of every token equals its input vector: ``weight_matrix()`` of the
head is the input's ``weight_matrix()``. Only the K cluster logits (and an optional bias) are
the head's own parameters.

Ids: targets and the columns of ``log_prob`` are **tokenizer ids**; the frequency order
(``rank``) is taken from the tied AdaptiveInput or from ``permutation``.

Shapes: N tokens (flattened leading dims), V vocab, D model dim, K tail clusters,
c_0 shortlist size, n_k / d_k size / width of tail cluster k.

>>> import torch
>>> sm = AdaptiveSoftmax(8, 20, cutoffs=[4, 10], div_value=2.0)
>>> [tuple(p.shape) for p in sm.parameters()]
[(6, 8), (4, 8), (6, 4), (2, 8), (10, 2)]
>>> h = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
>>> lp = sm.log_prob(h)
>>> lp.shape, torch.allclose(lp.exp().sum(-1), torch.ones(3))
(torch.Size([3, 20]), True)
>>> t = torch.tensor([0, 7, 19])
>>> torch.allclose(sm.loss(h, t, reduction="none"), -lp.gather(1, t[:, None]).squeeze(1))
True
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..embeddings.adaptive import AdaptiveInput, _check_permutation, band_bounds, band_dims, inverse_permutation
from ..embeddings.lookup import check_ids
from ..errors import ConfigError

__all__ = ["AdaptiveSoftmax", "adaptive_softmax_param_count"]

_REDUCTIONS = ("mean", "sum", "none")


def adaptive_softmax_param_count(
    embedding_dim: int, num_embeddings: int, cutoffs: Sequence[int], div_value: float = 4.0, *, head_bias: bool = False
) -> int:
    """Untied parameters: ``(c_0 + K)·D (+ c_0 + K) + Σ_k (D·d_k + d_k·n_k)`` (as nn.AdaptiveLogSoftmaxWithLoss).

    >>> adaptive_softmax_param_count(512, 128_000, [4000, 32000], 4.0)  # 4002·512 + 512·128 + 128·28000 + 512·32 + 32·96000
    8786944
    """
    bounds = band_bounds(num_embeddings, cutoffs)
    dims = band_dims(embedding_dim, len(bounds), div_value)
    head = bounds[0][1] + len(bounds) - 1
    n = head * embedding_dim + (head if head_bias else 0)
    for (lo, hi), d in zip(bounds[1:], dims[1:]):
        n += embedding_dim * d + d * (hi - lo)
    return n


class _NLL(torch.autograd.Function):
    """``-log softmax(z)[t]`` per row, (M, C), (M,) -> (M,); as ``F.cross_entropy(reduction="none")``.

    Backward writes ``g·(softmax(z) - onehot(t))`` straight from the saved ``log_softmax``
    (``exp`` then in-place scale, then M scattered subtractions) instead of autograd's
    zero-filled one-hot gradient followed by ``log_softmax``'s backward: two passes over the
    (M, C) logits instead of five — this is most of the loss's memory traffic at large C.
    ``_reference_nll`` is the plain autograd version the tests compare against.
    """

    @staticmethod
    def forward(ctx, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        lsm = torch.log_softmax(z, dim=1)  # (M, C)
        ctx.save_for_backward(lsm, t)
        return -lsm.gather(1, t[:, None]).squeeze(1)  # (M,)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        lsm, t = ctx.saved_tensors
        grad = torch.exp(lsm)  # (M, C) softmax(z)
        grad.mul_(g[:, None])
        grad.scatter_add_(1, t[:, None], -g[:, None])  # - g·onehot(t)
        return grad, None


def _nll(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return _NLL.apply(z if z.dtype in (torch.float32, torch.float64) else z.float(), t)  # half logits: fp32 softmax


def _reference_nll(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(z.float(), t, reduction="none")


class AdaptiveSoftmax(nn.Module):
    """Adaptive softmax head; ``forward(h)`` returns full-vocabulary **log-probabilities** (..., V).

    The returned "logits" are already normalised (``logsumexp = 0``), so any code that applies
    ``softmax(z / τ)`` to a head's output gets the right distribution; ``log_prob(h, temperature=τ)``
    is ``log_softmax(log p / τ)``, i.e. ``p^{1/τ}`` renormalised over the full vocabulary.

    Args:
        embedding_dim: D.
        num_embeddings: V.
        cutoffs: rank boundaries (V implied as the last), e.g. ``[4000, 32000]``; default: the
            tied input's cutoffs. A repeated cutoff (or one equal to V) leaves a tail cluster empty:
            its logit in the head is -inf, so the full distribution still sums to 1.
        div_value: width divisor per cluster (``d_k = ⌊D / div^k⌋``); default 4, or the tied
            input's ``factor``.
        head_bias: bias on the head cluster's logits.
        tie_with: an :class:`AdaptiveInput` of the same V, D, cutoffs and factor to share
            ``E_k`` (and ``P_k`` with ``tie_proj``) with.
        tie_proj: with ``tie_with``, also share the band projections (``Q_k = P_k^T``).
        permutation: ``order[rank] = tokenizer id`` when not tied (default: identity).
        seed: init seed for the head's own parameters.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_embeddings: int,
        cutoffs: Sequence[int] | None = None,
        div_value: float | None = None,
        *,
        head_bias: bool = False,
        tie_with: AdaptiveInput | None = None,
        tie_proj: bool = True,
        permutation=None,
        seed: int | None = 0,
    ):
        super().__init__()
        self.embedding_dim = D = int(embedding_dim)
        self.num_embeddings = V = int(num_embeddings)
        if tie_with is not None:
            cutoffs, div_value = self._check_tie(tie_with, V, D, cutoffs, div_value, permutation)
        if cutoffs is None:
            raise ConfigError("AdaptiveSoftmax needs cutoffs=[...] (e.g. [V//16, V//4]) or tie_with=AdaptiveInput(...)")
        self.div_value = 4.0 if div_value is None else float(div_value)
        self.bounds = band_bounds(V, cutoffs)
        self.cutoffs = [hi for _, hi in self.bounds[:-1]]
        dims = band_dims(D, len(self.bounds), self.div_value)
        self.shortlist_size = self.bounds[0][1]  # c_0
        self.n_clusters = len(self.bounds) - 1  # K
        self.head_size = self.shortlist_size + self.n_clusters  # c_0 + K
        self.tail_dims = dims[1:]
        # empty tail clusters (a band that lost every token in vocabulary surgery): their logit is masked to -inf
        self.empty_clusters = [k for k, (lo, hi) in enumerate(self.bounds[1:]) if hi == lo]
        self.tied = tie_with
        self.tie_proj = tie_proj and tie_with is not None
        g = torch.Generator().manual_seed(seed) if seed is not None else None

        def linear(i: int, o: int, bias: bool = False) -> nn.Linear:
            with warnings.catch_warnings():  # an empty cluster's (0, d) weight: torch warns that its init is a no-op
                warnings.filterwarnings("ignore", "Initializing zero-element tensors")
                lin = nn.Linear(i, o, bias=bias)
            with torch.no_grad():  # as nn.Linear's default init, but seeded
                bound = i**-0.5
                lin.weight.copy_(torch.empty(o, i).uniform_(-bound, bound, generator=g))
                if bias:
                    lin.bias.zero_()
            return lin

        if tie_with is None:
            self.head = linear(D, self.head_size, head_bias)  # H: (c_0 + K, D)
            self.tail = nn.ModuleList(  # Q_k then O_k, as nn.AdaptiveLogSoftmaxWithLoss
                [nn.Sequential(linear(D, d), linear(d, hi - lo)) for (lo, hi), d in zip(self.bounds[1:], self.tail_dims)]
            )
            order = torch.arange(V) if permutation is None else _check_permutation(permutation, V)
            self.register_buffer("order", order)  # (V,) rank -> tokenizer id
            self.register_buffer("rank", inverse_permutation(order))  # (V,) tokenizer id -> rank
        else:
            self.cluster = linear(D, self.n_clusters)  # the K cluster rows of H (own parameters)
            self.head_bias = nn.Parameter(torch.zeros(self.head_size)) if head_bias else None
            # own projections only when not tying them (fairseq's tie-adaptive-proj off)
            self.tail_proj = None if self.tie_proj else nn.ModuleList([linear(D, d) for d in self.tail_dims])

    @staticmethod
    def _check_tie(inp: AdaptiveInput, V: int, D: int, cutoffs, div_value, permutation):
        if not isinstance(inp, AdaptiveInput):
            raise ConfigError(f"tie_with must be an AdaptiveInput, got {type(inp).__name__}; use TiedHead for other embeddings")
        if (inp.num_embeddings, inp.embedding_dim) != (V, D):
            raise ConfigError(
                f"tied AdaptiveInput is V={inp.num_embeddings}, D={inp.embedding_dim} but the head was asked for "
                f"V={V}, D={D}; build both with the same V and D"
            )
        if cutoffs is not None and [int(c) for c in cutoffs] != inp.cutoffs:
            raise ConfigError(f"cutoffs={list(cutoffs)} differ from the tied AdaptiveInput's {inp.cutoffs}; omit cutoffs to use its own")
        if div_value is not None and float(div_value) != inp.factor:
            raise ConfigError(f"div_value={div_value} differs from the tied AdaptiveInput's factor={inp.factor}; omit div_value")
        if permutation is not None and not torch.equal(torch.as_tensor(permutation).long().cpu(), inp.order.cpu()):
            raise ConfigError("permutation differs from the tied AdaptiveInput's order; omit it (the input's order is used)")
        return inp.cutoffs, inp.factor

    # ------------------------------------------------------------------ pieces
    def _rank(self) -> torch.Tensor:
        return self.tied.rank if self.tied is not None else self.rank  # (V,) tokenizer id -> rank

    def _head_logits(self, h: torch.Tensor) -> torch.Tensor:
        """``z_head = H h (+ b)``: (N, D) -> (N, c_0 + K)."""
        if self.tied is None:
            z = self.head(h)
        else:
            E0, P0 = self.tied.band_weights(0)  # (c_0, d_0), (D, d_0) | None
            x = h if P0 is None else F.linear(h, P0.t())  # (N, d_0)
            z = torch.cat([F.linear(x, E0), self.cluster(h)], dim=-1)  # (N, c_0 + K)
            z = z if self.head_bias is None else z + self.head_bias
        if self.empty_clusters:  # a cluster with no token gets no probability
            z = z.index_fill(-1, torch.tensor(self.empty_clusters, device=z.device) + self.shortlist_size, float("-inf"))
        return z

    def _tail_logits(self, k: int, h: torch.Tensor) -> torch.Tensor:
        """``z_k = O_k (Q_k h)`` for tail cluster k = 0..K-1 (band k + 1): (N_k, D) -> (N_k, n_k)."""
        if self.tied is None:
            return self.tail[k](h)
        E, P = self.tied.band_weights(k + 1)  # (n_k, d_k), (D, d_k) | None
        if not self.tie_proj:
            x = self.tail_proj[k](h)
        else:
            x = h if P is None else F.linear(h, P.t())  # (N_k, d_k) = P_k^T h
        return F.linear(x, E)  # (N_k, n_k)

    def _log_prob_by_rank(self, h: torch.Tensor) -> torch.Tensor:
        """Full log-probabilities in **rank** order: (N, D) -> (N, V)."""
        head_lp = F.log_softmax(self._head_logits(h).float(), dim=-1)  # (N, c_0 + K)
        parts = [head_lp[:, : self.shortlist_size]]
        for k in range(self.n_clusters):
            tail_lp = F.log_softmax(self._tail_logits(k, h).float(), dim=-1)  # (N, n_k)
            parts.append(tail_lp + head_lp[:, self.shortlist_size + k, None])  # log p(cluster) + log p(v | cluster)
        return torch.cat(parts, dim=-1)  # (N, V)

    # ------------------------------------------------------------------ interface
    def log_prob(self, h: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
        """Exact ``log p`` over the full vocabulary, tokenizer-id order: (..., D) -> (..., V)."""
        lead = h.shape[:-1]
        lp = self._log_prob_by_rank(h.reshape(-1, self.embedding_dim)).index_select(-1, self._rank())  # (N, V) id order
        if temperature != 1.0:
            if temperature <= 0:
                raise ConfigError(f"temperature={temperature} must be > 0")
            lp = F.log_softmax(lp / temperature, dim=-1)  # p^{1/τ} / Z
        return lp.reshape(*lead, self.num_embeddings)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Full-vocabulary log-probabilities (..., V) — normalised logits (see class docstring)."""
        return self.log_prob(h)

    def _reference_log_prob(self, h: torch.Tensor) -> torch.Tensor:
        """Slow, readable reference: token by token, vocabulary entry by entry, (N, D) -> (N, V)."""
        rank = self._rank().tolist()
        out = torch.empty(h.shape[0], self.num_embeddings)
        for n in range(h.shape[0]):
            head = torch.log_softmax(self._head_logits(h[n : n + 1])[0].double(), 0)
            tails = [torch.log_softmax(self._tail_logits(k, h[n : n + 1])[0].double(), 0) for k in range(self.n_clusters)]
            for i in range(self.num_embeddings):
                r = rank[i]
                if r < self.shortlist_size:
                    out[n, i] = head[r]
                else:
                    k = next(k for k, (lo, hi) in enumerate(self.bounds[1:]) if lo <= r < hi)
                    out[n, i] = head[self.shortlist_size + k] + tails[k][r - self.bounds[k + 1][0]]
        return out

    def loss(
        self,
        h: torch.Tensor,
        targets: torch.Tensor,
        *,
        temperature: float = 1.0,
        label_smoothing: float = 0.0,
        ignore_index: int = -100,
        reduction: str = "mean",
        z_loss: float = 0.0,
    ) -> torch.Tensor:
        """Cross-entropy in nats of the adaptive softmax against tokenizer-id ``targets``.

        ``z_loss = c > 0`` adds ``c·(log² Z_head + log² Z_k)`` per kept token (``_z_penalty``): the
        log-partitions of the two softmaxes the target goes through, as ``heads.cross_entropy``
        adds ``c·log² Z`` for a flat softmax (the output here is normalised, so its own log Z is 0).

        With ``temperature == 1`` and no label smoothing this is the fast training path: the
        head for every token, and tail cluster k only for the tokens whose target is in it
        (one gather + one matmul pair per cluster). Otherwise it is computed exactly from the
        full ``log_prob`` (every cluster for every token; memory N·V).
        h (..., D), targets (...); ``reduction="none"`` returns (...) with 0 at ignored targets.
        """
        if reduction not in _REDUCTIONS:
            raise ConfigError(f"reduction={reduction!r} is not one of {_REDUCTIONS}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ConfigError(f"label_smoothing={label_smoothing} must be in [0, 1]")
        if not z_loss >= 0.0:
            raise ConfigError(f"z_loss={z_loss} must be >= 0 (PaLM uses 1e-4)")
        if h.shape[:-1] != targets.shape:
            raise ConfigError(f"h has leading shape {tuple(h.shape[:-1])} but targets have shape {tuple(targets.shape)}; they must match")
        t = targets.reshape(-1)  # (N,)
        hN = h.reshape(-1, self.embedding_dim)  # (N, D)
        keep = t != ignore_index
        all_kept = bool(keep.all())
        if not all_kept:
            rows = keep.nonzero().squeeze(1)
            t, hN = t.index_select(0, rows), hN.index_select(0, rows)
        check_ids(t, self.num_embeddings, where="AdaptiveSoftmax.loss targets")
        if temperature != 1.0 or label_smoothing > 0.0:
            lp = self.log_prob(hN, temperature=temperature)  # (N, V)
            nll = F.nll_loss(lp, t, reduction="none")
            if label_smoothing > 0.0:  # as F.cross_entropy: (1-ε)·nll + ε·mean_v(-log p_v)
                nll = (1.0 - label_smoothing) * nll - label_smoothing * lp.mean(-1)
        else:
            nll = self._fast_nll(hN, t)
        if z_loss > 0.0:
            nll = nll + z_loss * self._z_penalty(hN, t, temperature)
        if reduction == "mean":
            return nll.sum() / t.numel() if t.numel() else nll.sum() * float("nan")
        if reduction == "sum":
            return nll.sum()
        if all_kept:
            return nll.reshape(targets.shape)
        return nll.new_zeros(targets.numel()).index_copy(0, rows, nll).reshape(targets.shape)

    def _z_penalty(self, h: torch.Tensor, t: torch.Tensor, temperature: float) -> torch.Tensor:
        """``log² Z_head + log² Z_k`` per token, Z of ``z/τ`` for the head and the target's tail cluster k: (N, D), (N,) -> (N,)."""
        r = self._rank().index_select(0, t)  # (N,)
        pen = torch.logsumexp(self._head_logits(h).float() / temperature, dim=-1).square()  # (N,)
        for k, (lo, hi) in enumerate(self.bounds[1:]):
            rows = ((r >= lo) & (r < hi)).nonzero().squeeze(1)  # (N_k,)
            if rows.numel():
                z = self._tail_logits(k, h.index_select(0, rows)).float() / temperature  # (N_k, n_k)
                pen = pen.index_add(0, rows, torch.logsumexp(z, dim=-1).square())
        return pen

    def _fast_nll(self, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """-log p(t) per token, computing tail k only for its own targets: (N, D), (N,) -> (N,)."""
        r = self._rank().index_select(0, t)  # (N,) ranks of the targets
        head_target = r  # shortlist targets keep their rank; tail targets become c_0 + k below
        nll = None
        for k, (lo, hi) in enumerate(self.bounds[1:]):
            rows = ((r >= lo) & (r < hi)).nonzero().squeeze(1)  # (N_k,)
            if rows.numel() == 0:
                continue
            if head_target is r:
                head_target = r.clone()
            head_target.index_fill_(0, rows, self.shortlist_size + k)
            z = self._tail_logits(k, h.index_select(0, rows))  # (N_k, n_k)
            nll_k = _nll(z, r.index_select(0, rows) - lo)  # (N_k,) -log p(v | cluster k)
            nll = (h.new_zeros(t.numel(), dtype=torch.float32) if nll is None else nll).index_add(0, rows, nll_k)
        head_nll = _nll(self._head_logits(h), head_target)  # (N,) -log p(v or cluster)
        return head_nll if nll is None else head_nll + nll

    def weight_matrix(self) -> torch.Tensor:
        """Effective output vector of every token, (V, D), tokenizer-id order.

        Row v is the vector whose dot product with h gives v's logit inside its cluster
        (``H[v]`` in the shortlist, ``Q_k^T O_k[v]`` in tail k). With ``tie_with`` and
        ``tie_proj`` it equals the tied input's ``weight_matrix()``. The clusters are
        normalised separately, so this is not a flat softmax's ``W``.
        """
        if self.tied is None:
            rows = [self.head.weight[: self.shortlist_size]]
            rows += [O.weight @ Q.weight for Q, O in self.tail]  # (n_k, d_k) @ (d_k, D)
        else:
            E0, P0 = self.tied.band_weights(0)
            rows = [E0 if P0 is None else E0 @ P0.t()]
            for k in range(self.n_clusters):
                E, P = self.tied.band_weights(k + 1)
                Q = self.tail_proj[k].weight if not self.tie_proj else (None if P is None else P.t())
                rows.append(E if Q is None else E @ Q)
        return torch.cat(rows).index_select(0, self._rank())

    def extra_repr(self) -> str:
        return (
            f"{self.embedding_dim}, {self.num_embeddings}, cutoffs={self.cutoffs}, div_value={self.div_value}, "
            f"tail_dims={self.tail_dims}, tied={self.tied is not None}, tie_proj={self.tie_proj}"
        )
