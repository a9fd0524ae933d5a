"""Output heads (hidden states -> logits over the vocabulary), one module per family.

- :mod:`~tokembed.heads.linear`: ``UntiedHead`` (``z = W^T h + b``) and ``TiedHead`` (``z = E h``,
  sharing the input embedding's table), with the ``cross_entropy`` they use;
- :mod:`~tokembed.heads.adaptive`: ``AdaptiveSoftmax`` (Grave et al. 2017), clusters of rare tokens
  in smaller dimensions.

Every head offers ``forward(h)``, ``log_prob(h)``, ``loss(h, targets)`` and ``weight_matrix()``.
"""

from .adaptive import AdaptiveSoftmax, adaptive_softmax_param_count
from .linear import TiedHead, UntiedHead, cross_entropy

__all__ = ["UntiedHead", "TiedHead", "AdaptiveSoftmax", "cross_entropy", "adaptive_softmax_param_count"]
