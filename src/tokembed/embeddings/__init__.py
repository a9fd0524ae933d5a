"""ids -> vectors: embedding layers that share one interface.

Every embedding module maps ids ``(B, T)`` to vectors ``(B, T, D)`` and exposes
``num_embeddings`` (V), ``embedding_dim`` (D) and ``weight_matrix() -> (V, D)`` (the full
table, materialised if the design is factorized/hashed), so heads can tie to it and
diagnostics can read it.
"""

from .adaptive import AdaptiveInput, frequency_permutation
from .lookup import TokenEmbedding

__all__ = ["TokenEmbedding"]
__all__ += ["AdaptiveInput", "frequency_permutation"]
