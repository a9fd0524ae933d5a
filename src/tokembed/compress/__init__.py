"""Compression of embedding tables and heads: shrink them, serve them compressed, measure the cost.

Codecs, one module per method — ``quantize`` (int8/int4 scalar), ``pq`` (product quantization),
``lowrank`` (truncated SVD), ``prune`` (magnitude pruning, vocabulary trimming), ``hashing``
(post-hoc k-means buckets), ``planner`` (frequency-aware mixed precision) and ``codec`` (what every
codec provides, the dense fp32/fp16/bf16 codec and the one check of stored tensors). One module
serves any codec (``module``: ``CompressedEmbedding``/``CompressedHead``, and the same narrowed to
one codec: ``QuantizedEmbedding``, ``PQEmbedding``, ...); ``artifact`` is the folder format and
``apply`` the glue behind ``tokembed compress``.
Importing this package imports torch (``import tokembed`` alone does not).
"""

from .artifact import CompressedArtifact, CompressedTable, load_compressed, save_compressed
from .codec import DenseTable
from .hashing import HashBuckets, hash_buckets
from .lowrank import LowRank, low_rank
from .module import (BucketEmbedding, CastEmbedding, CompressedEmbedding, CompressedHead, MixedEmbedding, PQEmbedding,
                     QuantizedEmbedding, QuantizedHead, SparseEmbedding, TrimmedEmbedding, TrimmedHead, embedding_for)
from .planner import MixedTables, Plan, plan
from .pq import PQCodes, product_quantize
from .prune import SparseRows, Trimmed, magnitude_prune, token_counts, trim_vocab
from .quantize import QuantConfig, QuantizedTensor, cast, pack_int4, quantize, unpack_int4

__all__ = [
    "QuantConfig", "QuantizedTensor", "quantize", "pack_int4", "unpack_int4", "cast", "DenseTable",
    "CompressedEmbedding", "CompressedHead", "embedding_for",
    "QuantizedEmbedding", "QuantizedHead", "CastEmbedding",
    "PQCodes", "PQEmbedding", "product_quantize",
    "LowRank", "low_rank",
    "SparseRows", "SparseEmbedding", "magnitude_prune", "Trimmed", "TrimmedEmbedding", "TrimmedHead", "trim_vocab",
    "token_counts",
    "HashBuckets", "BucketEmbedding", "hash_buckets",
    "Plan", "MixedTables", "MixedEmbedding", "plan",
    "CompressedTable", "CompressedArtifact", "save_compressed", "load_compressed",
]
