"""Typed errors for tokembed, all in one place.

Every error a user can cause derives from :class:`TokembedError`. The message states
the offending value, where it was found (file, line, byte offset, argument) and the fix.
The CLI turns any ``TokembedError`` into one line on stderr and exit code 2; anything
else is a bug and keeps its traceback.

Errors name the *library* parameter (``vocab_size``), and may say which one in ``param``; the
command line maps parameters to its flags in one place (:mod:`tokembed.cli._common`).

>>> e = VocabSizeError("vocab size 10 is smaller than the 256 byte tokens; pass vocab_size >= 256", param="vocab_size")
>>> e.param
'vocab_size'
>>> raise e
Traceback (most recent call last):
  ...
tokembed.errors.VocabSizeError: vocab size 10 is smaller than the 256 byte tokens; pass vocab_size >= 256
"""

from __future__ import annotations

__all__ = [
    "TokembedError",
    "ConfigError",
    "CorpusError",
    "EmptyCorpusError",
    "DecodeError",
    "TokenizerFileError",
    "TokenizerError",
    "VocabSizeError",
    "SpecialTokenError",
    "HubIdError",
    "FingerprintMismatchError",
    "ArtifactError",
    "TokenIdError",
    "DependencyError",
    "NonFiniteError",
    "EmbeddingSourceError",
    "VectorFileError",
    "TokenNotFoundError",
]


class TokembedError(Exception):
    """Base of every error a user can cause (bad input, bad file, bad option).

    ``param``: the library parameter the message names as the fix (e.g. ``"vocab_size"``), or None.
    """

    def __init__(self, *args: object, param: str | None = None) -> None:
        super().__init__(*args)
        self.param = param


class ConfigError(TokembedError, ValueError):
    """An option or configuration value is invalid (names the key, the value and the allowed range)."""


class CorpusError(TokembedError):
    """A corpus path or its content cannot be used."""


class EmptyCorpusError(CorpusError):
    """The corpus holds no text at all."""


class DecodeError(CorpusError, UnicodeError):
    """Invalid UTF-8 in an input file: names the file and the byte offset."""


class TokenizerError(TokembedError):
    """A tokenizer cannot do what was asked (wrong kind, wrong option)."""


class TokenizerFileError(TokenizerError):
    """A tokenizer file is malformed: names the file, the line and what is wrong."""


class VocabSizeError(TokenizerError, ValueError):
    """The requested vocabulary size cannot hold the alphabet and the special tokens."""


class SpecialTokenError(TokenizerError, ValueError):
    """User text contains a special token's string and the caller did not allow it."""


class HubIdError(TokembedError):
    """A name looks like a hub model id; tokembed is offline and needs a local folder."""


class FingerprintMismatchError(TokembedError):
    """An artifact was made with another vocabulary than the one supplied."""


class ArtifactError(TokembedError):
    """A saved artifact (folder, safetensors, JSON) is missing or malformed."""


class TokenIdError(TokembedError, IndexError):
    """Token ids outside ``[0, V)`` or of a non-integer dtype were passed to a lookup."""


class DependencyError(TokembedError, ImportError):
    """An optional dependency is needed for this feature and is not installed."""


class NonFiniteError(TokembedError, FloatingPointError):
    """A loss or tensor became NaN/Inf: names the tensor and the rows."""


class EmbeddingSourceError(TokembedError):
    """An embedding source (checkpoint, model folder, vector file) cannot be read."""


class VectorFileError(EmbeddingSourceError, ValueError):
    """A word-vector file (word2vec/GloVe/fastText) is malformed: names the file, the line or byte offset and the fix."""


class TokenNotFoundError(TokembedError, KeyError):
    """A token string is not in the vocabulary (suggests close spellings)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def require(module: str, *, extra: str, feature: str):
    """Import an optional dependency lazily, or raise :class:`DependencyError` with the fix.

    >>> require("json", extra="none", feature="tests").__name__
    'json'
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise DependencyError(
            f"{feature} needs the optional package '{module}', which is not installed; "
            f"install it with: pip install 'tokembed[{extra}]'"
        ) from e
