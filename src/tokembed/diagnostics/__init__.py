"""Diagnostics of token embeddings: load any source, then neighbours, geometry, frequency,
under-trained tokens, probes and projections (one module each; contextual geometry is :mod:`tokembed.contextual`).

``inspect`` runs them all and writes a report folder; ``load_embeddings`` reads a source.
Heavy dependencies (scikit-learn, matplotlib, faiss, torch) are imported by the functions
that need them.
"""

from .inspect import InspectConfig, inspect
from .neighbors import neighbors_of, topk_cosine, topk_cosine_reference
from ..sources import EmbeddingSource, load_embeddings

__all__ = [
    "EmbeddingSource",
    "load_embeddings",
    "InspectConfig",
    "inspect",
    "neighbors_of",
    "topk_cosine",
    "topk_cosine_reference",
]
