"""torch.distributed scale-out: vocab-parallel embedding, head and loss (the Megatron-LM design).

- :mod:`.comm` — shard bounds (:class:`VocabShard`, V padded to a multiple of ``W·64``) and
  autograd-correct collectives (copy-to / reduce-from / gather-from region).
- :mod:`.embedding` — :class:`VocabParallelEmbedding`: rows split across ranks, one all-reduce.
- :mod:`.head` — :class:`VocabParallelHead`: logit columns split across ranks, untied or tied.
- :mod:`.cross_entropy` — :func:`vocab_parallel_cross_entropy`: softmax over shards with a MAX
  and a SUM all-reduce; label smoothing, temperature and z-loss as the single-process heads.

Launch with ``torchrun``; every rank of the group must see the same token ids. See docs/parallel.md.
"""

from .comm import PAD_MULTIPLE, VocabShard, copy_to_region, gather_from_region, group_rank, group_size, reduce_from_region
from .cross_entropy import vocab_parallel_cross_entropy, vocab_parallel_cross_entropy_reference, vocab_parallel_linear_cross_entropy
from .embedding import VocabParallelEmbedding
from .head import VocabParallelHead

__all__ = [
    "PAD_MULTIPLE",
    "VocabShard",
    "VocabParallelEmbedding",
    "VocabParallelHead",
    "vocab_parallel_cross_entropy",
    "vocab_parallel_cross_entropy_reference",
    "vocab_parallel_linear_cross_entropy",
    "copy_to_region",
    "reduce_from_region",
    "gather_from_region",
    "group_rank",
    "group_size",
]
