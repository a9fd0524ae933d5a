"""ids -> vectors: embedding layers that share one interface.

Every embedding module maps ids ``(B, T)`` to vectors ``(B, T, D)`` and exposes
``num_embeddings`` (V), ``embedding_dim`` (D) and ``weight_matrix() -> (V, D)`` (the full
table, materialised if the design is factorized/hashed), so heads can tie to it and
diagnostics can read it.
"""

from .adaptive import AdaptiveInput, frequency_permutation
from .compositional import CompositionalEmbedding, FrequencyGatedEmbedding
from .control import FrozenRows, embedding_param_groups, freeze, freeze_rows, unfreeze
from .factorized import FactorizedEmbedding
from .hashed import HashEmbedding
from .lookup import TokenEmbedding
from .memmap import MemmapEmbedding
from .retrieved import RetrievedEmbedding
from .regularization import EmbeddingDropout, TokenDropout
from .mixture import MixtureEmbedding
from .positional import (
    ALiBiPositions,
    LearnedPositions,
    NoPositions,
    RotaryPositions,
    SinusoidalPositions,
    build_positional,
)
from .pretrained import PretrainedInitReport, Vectors, init_from_pretrained, read_vectors, write_vectors

__all__ = [
    "TokenEmbedding",
    "FactorizedEmbedding",
    "HashEmbedding",
    "CompositionalEmbedding",
    "FrequencyGatedEmbedding",
    "MixtureEmbedding",
    "EmbeddingDropout",
    "TokenDropout",
    "FrozenRows",
    "embedding_param_groups",
    "freeze",
    "freeze_rows",
    "unfreeze",
    "PretrainedInitReport",
    "Vectors",
    "init_from_pretrained",
    "read_vectors",
    "write_vectors",
]
__all__ += ["AdaptiveInput", "frequency_permutation"]
__all__ += ["MemmapEmbedding", "RetrievedEmbedding"]
__all__ += ["SinusoidalPositions", "LearnedPositions", "RotaryPositions", "ALiBiPositions", "NoPositions", "build_positional"]
