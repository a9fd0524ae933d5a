"""tokembed: token embeddings in Transformers — tokenizers, embedding layers and heads,
training and comparison, diagnostics and compression.

The base import is light: torch and the optional extras are imported by the modules
that need them, not here.
"""

from .artifacts import TOKEMBED_VERSION as __version__
from .corpus import Corpus, default_corpus_path
from .errors import TokembedError
from .tokenizers import Tokenizer, load_tokenizer, train_tokenizer
from .vocab import Vocab

__all__ = [
    "__version__",
    "Corpus",
    "default_corpus_path",
    "TokembedError",
    "Tokenizer",
    "load_tokenizer",
    "train_tokenizer",
    "Vocab",
]
