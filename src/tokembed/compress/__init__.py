"""Compression of embedding tables and heads: shrink them, serve them compressed, measure the cost.

One module per method — ``quantize`` (int8/int4 scalar), ``pq`` (product quantization),
``lowrank`` (truncated SVD), ``prune`` (magnitude pruning, vocabulary trimming), ``hashing``
(post-hoc k-means buckets), ``planner`` (frequency-aware mixed precision) — plus the modules
that serve the results (``quantized``: ``QuantizedEmbedding``/``QuantizedHead``), the
artifact format (``artifact``) and the glue behind ``tokembed compress`` (``apply``).
Importing this package imports torch (``import tokembed`` alone does not).
"""

from .artifact import CompressedArtifact, CompressedTable, load_compressed, save_compressed
from .hashing import BucketEmbedding, HashBuckets, hash_buckets
from .lowrank import LowRank, low_rank
from .planner import MixedEmbedding, Plan, plan
from .pq import PQCodes, PQEmbedding, product_quantize
from .prune import SparseEmbedding, TrimmedEmbedding, TrimmedHead, magnitude_prune, token_counts, trim_vocab
from .quantize import QuantConfig, QuantizedTensor, cast, pack_int4, quantize, unpack_int4
from .quantized import CastEmbedding, QuantizedEmbedding, QuantizedHead

__all__ = [
    "QuantConfig", "QuantizedTensor", "quantize", "pack_int4", "unpack_int4", "cast",
    "QuantizedEmbedding", "QuantizedHead", "CastEmbedding",
    "PQCodes", "PQEmbedding", "product_quantize",
    "LowRank", "low_rank",
    "SparseEmbedding", "magnitude_prune", "TrimmedEmbedding", "TrimmedHead", "trim_vocab", "token_counts",
    "HashBuckets", "BucketEmbedding", "hash_buckets",
    "Plan", "MixedEmbedding", "plan",
    "CompressedTable", "CompressedArtifact", "save_compressed", "load_compressed",
]
