"""Read text: files, folders, globs, ``.gz``, stdin, and the built-in default corpus.

Everything streams line by line; nothing is read whole into memory. A corpus is a list of
*sources*, each optionally tagged with a language (``LANG=PATH``). Lines keep their
trailing ``"\\n"`` so byte counts are exact. Documents are blocks of lines separated by
blank lines; they are the unit of the train/validation split.

Unlike a plain ``open()``, invalid UTF-8 or a NUL byte is an error that names the file
and the byte offset, unless ``errors="replace"`` is passed.

The built-in default corpus is the English prose that ships with Python itself: the
docstrings of the standard library (read with ``ast``, nothing is imported) and the
``pydoc_data`` topics, about 2 MB, assembled once and cached, in a stable order.

>>> c = Corpus(["en=" + str(default_corpus_path())])
>>> c.languages
['en']
"""

from __future__ import annotations

import ast
import contextlib
import glob
import gzip
import hashlib
import inspect
import os
import random
import re
import shutil
import sys
import sysconfig
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .artifacts import atomic_write_text
from .errors import ConfigError, CorpusError, DecodeError, EmptyCorpusError

__all__ = [
    "Corpus",
    "Source",
    "default_corpus_path",
    "iter_file_lines",
    "language_weights",
    "DEFAULT_ALPHA",
    "MAX_LINE_BYTES",
    "CorpusWarning",
    "corpus_notes",
    "looks_binary",
    "LANG_TAG_RE",
    "check_language_tag",
]

#: Exponent of the α-smoothed language sampling p_l ∝ n_l^α. 0.3 follows XLM-R
#: (Conneau et al. 2020, "Unsupervised Cross-lingual Representation Learning at Scale", §3.1).
DEFAULT_ALPHA = 0.3

_LANG_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_-]{0,31})=(.+)$")
#: A language tag tokembed accepts: BCP-47-like (RFC 5646 syntax, not the registry): a 2-3 letter primary
#: language subtag, then optional subtags of 1-8 letters/digits after "-" or "_" (en, fi, ko, pt-BR, zh_Hant, sr-Latn-RS).
LANG_TAG_RE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")
_GLOB_CHARS = set("*?[")
#: Longest line read at once (64 KiB, a long paragraph): longer lines come in chunks, so one huge line
#: cannot make a tokenizer trainer build one huge "sentence" (measured: a 50 MB line took 4.75 GB for
#: bytebpe training; a 1 MiB chunk still costs ~45 MB of trainer memory, a 64 KiB one ~3 MB).
MAX_LINE_BYTES = 1 << 16
#: Bytes read to tell a text file from a binary one in a corpus folder.
_SNIFF_BYTES = 8192


class CorpusWarning(UserWarning):
    """Something in the corpus was read differently from how it is written (e.g. an over-long line split)."""


@contextlib.contextmanager
def corpus_notes() -> Iterator[None]:
    """For command-line tools: show each :class:`CorpusWarning` as one ``note: ...`` line on stderr
    (instead of Python's ``file:line: CorpusWarning: ...`` with a source line); other warnings as usual."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, CorpusWarning):
            print(f"note: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown
#: Standard-library parts left out of the default corpus: tests, GUI demos and vendored code.
_SKIP_STDLIB = {"site-packages", "dist-packages", "test", "tests", "idle_test", "idlelib", "lib2to3", "turtledemo", "ensurepip"}
_DEFAULT_CORPUS_VERSION = "1"
#: Lines per document in a file without blank lines (about a paragraph of one-sentence lines).
GROUP_LINES = 32
#: A blank-line block longer than this is cut at line boundaries (the default corpus's longest is 62 KB).
DOC_MAX_BYTES = 1 << 16


def _cache_dir() -> Path:
    base = os.environ.get("TOKEMBED_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "tokembed"
    )
    return Path(base)


def _stdlib_docstrings() -> Iterator[str]:
    """Docstrings of the standard library in sorted-path order, then the pydoc topics in sorted-key order."""
    std = Path(sysconfig.get_paths()["stdlib"])
    for p in sorted(std.rglob("*.py")):
        rel = p.relative_to(std).parts
        if _SKIP_STDLIB.intersection(rel):
            continue
        try:
            tree = ast.parse(p.read_bytes())
        except (SyntaxError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=True)
                if doc and len(doc) >= 40:  # skip one-liners like "Return x."-only stubs
                    yield doc
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip pydoc_data
        topics = {}
    for key in sorted(topics):
        yield inspect.cleandoc(topics[key])


def default_corpus_path() -> Path:
    """Path of the cached default corpus, building it on first use (about 2 MB, a few seconds).

    Documents are separated by one blank line; inner blank lines of a docstring are
    removed so that each docstring is one document. The cache key is the Python version.
    """
    key = hashlib.sha256(f"{sys.version}|{_DEFAULT_CORPUS_VERSION}".encode()).hexdigest()[:12]
    path = _cache_dir() / f"default-corpus-py{sys.version_info.major}{sys.version_info.minor}-{key}.txt"
    if path.is_file():
        return path
    parts = []
    for doc in _stdlib_docstrings():
        lines = [ln.rstrip() for ln in doc.replace("\x00", "").splitlines()]
        body = "\n".join(ln for ln in lines if ln.strip())
        if body:
            parts.append(body)
    atomic_write_text(path, "\n\n".join(parts) + "\n")
    return path


def _split_point(chunk: bytes) -> int:
    """Where to cut an over-long line's chunk: after its last space, else at its last UTF-8 character boundary."""
    space = chunk.rfind(b" ", len(chunk) // 2)
    if space >= 0:
        return space + 1
    cut = len(chunk)
    while cut > len(chunk) - 4 and cut > 0 and (chunk[cut - 1] & 0xC0) == 0x80:  # inside a multi-byte character
        cut -= 1
    if cut > 0 and chunk[cut - 1] >= 0xC0:  # a lead byte whose continuation was cut off
        cut -= 1
    return cut or len(chunk)


def _bounded_lines(f, path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes) of a binary file; a line longer than :data:`MAX_LINE_BYTES` comes in
    chunks of at most that size (cut at a space where possible, never inside a UTF-8 character),
    with one warning per file, so memory stays bounded. Chunks carry no newline: joined, they are the line."""
    lineno, carry, warned = 1, b"", False
    while True:
        raw = carry + f.readline(MAX_LINE_BYTES - len(carry))
        carry = b""
        if not raw:
            return
        if raw.endswith(b"\n") or len(raw) < MAX_LINE_BYTES:
            yield lineno, raw
            lineno += 1
            continue
        if not warned:
            warnings.warn(
                f"{path}:{lineno}: line longer than {MAX_LINE_BYTES:,} bytes; reading it in chunks of at most "
                f"{MAX_LINE_BYTES:,} bytes (cut at spaces where possible). Put one sentence or paragraph per line",
                CorpusWarning,
                stacklevel=3,
            )
            warned = True
        cut = _split_point(raw)
        raw, carry = raw[:cut], raw[cut:]
        yield lineno, raw


def iter_file_lines(path: str | os.PathLike, *, errors: str = "strict") -> Iterator[str]:
    """Yield the lines of a text file (``.gz`` transparently), each with its ``"\\n"``.

    ``errors="strict"``: invalid UTF-8 or a NUL byte raises :class:`DecodeError` /
    :class:`CorpusError` naming the file, line and byte offset. ``errors="replace"``:
    bad bytes become U+FFFD and NUL bytes are dropped.
    """
    if errors not in ("strict", "replace"):
        raise ConfigError(f"errors={errors!r} is not supported; pass 'strict' or 'replace'")
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    offset = 0
    try:
        with opener(path, "rb") as f:
            for lineno, raw in _bounded_lines(f, path):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    if errors == "strict":
                        raise DecodeError(
                            f"{path}:{lineno}: invalid UTF-8 at byte offset {offset + e.start} "
                            f"(byte 0x{raw[e.start]:02x}); fix the file's encoding or pass errors='replace'",
                            param="errors",
                        ) from None
                    line = raw.decode("utf-8", errors="replace")
                if "\x00" in line:
                    if errors == "strict":
                        col = raw.index(b"\x00")
                        raise CorpusError(
                            f"{path}:{lineno}: NUL byte at byte offset {offset + col}; this looks like a binary file, "
                            "pass a text file or errors='replace' to drop NUL bytes",
                            param="errors",
                        )
                    line = line.replace("\x00", "")
                offset += len(raw)
                yield line
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        if isinstance(e, FileNotFoundError):
            raise CorpusError(f"{path}: file not found; pass an existing file, folder or glob") from None
        if isinstance(e, IsADirectoryError):
            raise CorpusError(f"{path}: is a folder; pass it without a glob pattern to read it recursively") from None
        raise CorpusError(f"{path}: cannot read ({e}); check the file") from e


def _file_documents(path: Path, errors: str) -> Iterator[str]:
    """The documents of one file (see :meth:`Corpus.documents`)."""
    buf: list[str] = []
    size, blank_seen, grouped, cut = 0, False, False, False
    for line in iter_file_lines(path, errors=errors):
        if not line.strip():
            blank_seen = True
            if buf:
                yield "".join(buf)
                buf, size = [], 0
            continue
        buf.append(line)
        size += len(line)
        if grouped and len(buf) >= GROUP_LINES:
            yield "".join(buf)
            buf, size = [], 0
        elif size > DOC_MAX_BYTES:
            if blank_seen:  # a huge block in a file with paragraphs: cut it here
                cut = cut or _note(f"{path}: a block of over {DOC_MAX_BYTES:,} bytes without a blank line is cut "
                                   "into documents at line boundaries")
                yield "".join(buf)
                buf, size = [], 0
            else:  # no blank line so far: one line per sentence/verse
                grouped = _note_grouped(path)
                yield from _groups(buf)
                buf, size = [], 0
    if buf and not blank_seen and not grouped and len(buf) > 1:
        _note_grouped(path)
        yield from _groups(buf)
    elif buf:
        yield "".join(buf)


def _groups(lines: list[str]) -> Iterator[str]:
    for i in range(0, len(lines), GROUP_LINES):
        yield "".join(lines[i : i + GROUP_LINES])


def _note(message: str) -> bool:
    warnings.warn(message, CorpusWarning, stacklevel=4)
    return True


def _note_grouped(path: Path) -> bool:
    return _note(f"{path} has no blank lines between documents; its documents are groups of {GROUP_LINES} lines "
                 "(separate documents with blank lines to choose them)")


@dataclass(frozen=True)
class Source:
    """One corpus argument, resolved to files. ``lang`` is None when untagged."""

    spec: str
    files: tuple[Path, ...]
    lang: str | None = None


def looks_binary(path: Path) -> bool:
    """True when the file's first 8 KB (decompressed for ``.gz``) hold a NUL byte or are not UTF-8:
    a model, an image or an archive, not text.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.txt").write_text("héllo\\n"), (d / "m.safetensors").write_bytes(b"\\x08\\x00\\x00{}")
    >>> looks_binary(d / "a.txt"), looks_binary(d / "m.safetensors")
    (False, True)
    """
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except (OSError, EOFError, gzip.BadGzipFile):
        return True
    if b"\x00" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return not (len(head) == _SNIFF_BYTES and e.start >= len(head) - 3)  # a character cut by the 8 KB window
    return False


def _text_files(spec: str, files: Iterable[Path]) -> tuple[Path, ...]:
    """The text files among a folder's or glob's files; binary ones are skipped with one note."""
    text, skipped = [], []
    for f in files:
        (skipped if looks_binary(f) else text).append(f)
    if skipped:
        names = ", ".join(str(f) for f in skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        warnings.warn(f"{spec}: skipping {len(skipped)} binary file(s) (NUL bytes or not UTF-8): {names}", CorpusWarning, stacklevel=4)
    return tuple(text)


def _expand(spec: str) -> tuple[Path, ...]:
    if spec == "-":
        return (_spool_stdin(),)
    p = Path(spec).expanduser()
    if p.is_file():
        return (p,)
    if p.is_dir():
        files = _text_files(spec, sorted(  # hidden entries (.git) and Python's bytecode caches are never text
            f
            for f in p.rglob("*")
            if f.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in f.relative_to(p).parts)
        ))  # fmt: skip
        if not files:
            raise EmptyCorpusError(f"{spec}: folder holds no text files; pass a folder with text files")
        return files
    if _GLOB_CHARS.intersection(spec):
        files = sorted(Path(f) for f in glob.glob(os.path.expanduser(spec), recursive=True) if os.path.isfile(f))
        if not files:
            raise CorpusError(f"{spec}: glob matches no file; check the pattern (quote it so the shell does not expand it)")
        files = _text_files(spec, files)
        if not files:
            raise EmptyCorpusError(f"{spec}: glob matches only binary files; pass text files")
        return files
    raise CorpusError(f"{spec}: no such file or folder; pass a file, a folder, a glob, '-' for stdin or nothing for the built-in corpus")


_STDIN_SPOOL: Path | None = None


def _spool_stdin() -> Path:
    """Copy stdin to a temp file once, so it can be read more than once (training makes several passes)."""
    global _STDIN_SPOOL
    if _STDIN_SPOOL is None or not _STDIN_SPOOL.exists():
        fd, tmp = tempfile.mkstemp(prefix="tokembed-stdin-", suffix=".txt")
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(sys.stdin.buffer, f)
        _STDIN_SPOOL = Path(tmp)
    return _STDIN_SPOOL


def language_weights(sizes: dict[str, int], alpha: float = DEFAULT_ALPHA) -> dict[str, float]:
    """α-smoothed sampling probabilities p_l = n_l^α / Σ_k n_k^α.

    >>> {k: round(v, 3) for k, v in language_weights({"en": 900, "fi": 100}, alpha=0.3).items()}
    {'en': 0.659, 'fi': 0.341}
    >>> language_weights({"en": 900, "fi": 100}, alpha=1.0)
    {'en': 0.9, 'fi': 0.1}
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha={alpha} is outside [0, 1]; 0.3 is the usual value (1 = proportional, 0 = uniform)")
    live = {k: n for k, n in sizes.items() if n > 0}
    if not live:
        raise EmptyCorpusError("every language of the corpus is empty; pass files with text")
    z = sum(n**alpha for n in live.values())
    return {k: (live[k] ** alpha / z if k in live else 0.0) for k in sizes}


def check_language_tag(tag: str, *, where: str) -> str:
    """``tag`` if it is a BCP-47-like language tag (:data:`LANG_TAG_RE`), else a ConfigError naming it, ``where`` and the fix.

    >>> check_language_tag("pt-BR", where="test")
    'pt-BR'
    """
    if not isinstance(tag, str) or not LANG_TAG_RE.match(tag):
        raise ConfigError(
            f"{where}: language tag {tag!r} is not a BCP-47-like tag (2-3 letters, then optional -subtags: "
            "en, fi, ko, pt-BR, zh-Hant); rename it, or pass a path without '=' before it"
        )
    return tag


@dataclass
class Corpus:
    """A streamed text corpus made of file/folder/glob/stdin specs, optionally ``LANG=PATH``.

    An empty spec list means the built-in default corpus. Iteration order is stable:
    specs in the given order, files within a spec sorted by path.
    """

    specs: Sequence[str] = ()
    errors: str = "strict"
    sources: list[Source] = field(init=False)

    def __post_init__(self) -> None:
        if self.errors not in ("strict", "replace"):
            raise ConfigError(f"errors={self.errors!r} is not supported; pass 'strict' or 'replace'")
        specs = list(self.specs) or [str(default_corpus_path())]
        self.sources = []
        for spec in specs:
            spec = str(spec)
            lang = None
            m = _LANG_RE.match(spec)
            if m and not Path(spec).exists():
                lang, spec = m.group(1), m.group(2)
                check_language_tag(lang, where=f"corpus argument {m.group(0)!r}")
            self.sources.append(Source(spec=spec, files=_expand(spec), lang=lang))
        tagged = {s.lang is not None for s in self.sources}
        if len(tagged) > 1:
            raise ConfigError("mix of LANG=PATH and untagged corpus arguments; tag every argument or none")

    @classmethod
    def from_args(cls, specs: Iterable[str] | None, *, errors: str = "strict") -> "Corpus":
        return cls(list(specs or ()), errors=errors)

    @property
    def is_default(self) -> bool:
        return not self.specs

    @property
    def languages(self) -> list[str]:
        seen: dict[str, None] = {}
        for s in self.sources:
            if s.lang is not None:
                seen.setdefault(s.lang)
        return list(seen)

    @property
    def files(self) -> list[Path]:
        return [f for s in self.sources for f in s.files]

    def lines(self, lang: str | None = None) -> Iterator[str]:
        """Every line (with ``"\\n"``) of every source, or of one language; raises if all are empty."""
        any_text = False
        for s in self.sources:
            if lang is not None and s.lang != lang:
                continue
            for f in s.files:
                for line in iter_file_lines(f, errors=self.errors):
                    if not any_text and line.strip():
                        any_text = True
                    yield line
        if not any_text:
            where = ", ".join(s.spec for s in self.sources if lang is None or s.lang == lang)
            raise EmptyCorpusError(f"corpus {where} holds no text; pass files with at least one non-blank line")

    def texts(self, lang: str | None = None) -> Iterator[str]:
        """Non-blank lines without their trailing newline (the usual unit for tokenizer training)."""
        for line in self.lines(lang):
            s = line.rstrip("\r\n")
            if s.strip():
                yield s

    def documents(self, lang: str | None = None) -> Iterator[str]:
        """Blocks of lines separated by blank lines (each keeps its inner newlines), never across files.

        Bounded fallbacks (each said once per file with a :class:`CorpusWarning`): a file without blank
        lines is cut into groups of :data:`GROUP_LINES` lines (one verse or sentence per line would
        otherwise be one document, and the train/validation split would be empty); a block over
        :data:`DOC_MAX_BYTES` is cut at line boundaries.

        >>> import tempfile, pathlib, warnings
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "verses.txt"
        >>> _ = f.write_text("".join(f"verse {i}\\n" for i in range(70)))
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     [d.count("\\n") for d in Corpus([str(f)]).documents()]
        [32, 32, 6]
        """
        any_text = False
        for src in self.sources:
            if lang is not None and src.lang != lang:
                continue
            for f in src.files:
                for doc in self.file_documents(f):
                    any_text = True
                    yield doc
        if not any_text:
            list(self.lines(lang))  # raises EmptyCorpusError naming the sources

    def file_documents(self, path: str | os.PathLike) -> Iterator[str]:
        """The documents of one file, read with this corpus's ``errors``: :meth:`documents` is these over :attr:`files`."""
        return _file_documents(Path(path), self.errors)

    def byte_sizes(self) -> dict[str, int]:
        """UTF-8 bytes per language (key ``""`` when untagged), from file sizes (``.gz``: decompressed)."""
        out: dict[str, int] = {}
        for s in self.sources:
            n = 0
            for f in s.files:
                if f.suffix == ".gz":
                    with gzip.open(f, "rb") as g:
                        while chunk := g.read(1 << 20):
                            n += len(chunk)
                else:
                    n += f.stat().st_size
            out[s.lang or ""] = out.get(s.lang or "", 0) + n
        return out

    def training_texts(self, *, alpha: float = DEFAULT_ALPHA, seed: int = 0) -> Iterator[str]:
        """Stream for tokenizer training: with languages, α-smoothed (p_l ∝ n_l^α) so a small
        language is not drowned by a large one; untagged corpora stream unchanged.

        The total volume stays Σ n_l: language l contributes about p_l·Σn bytes, by
        repeating its text (p_l·Σn > n_l) or keeping each line with probability p_l·Σn/n_l.
        """
        langs = self.languages
        if not langs:
            yield from self.texts()
            return
        sizes = self.byte_sizes()
        weights = language_weights(sizes, alpha)
        total = sum(sizes.values())
        rng = random.Random(seed)
        for lang in langs:
            ratio = weights[lang] * total / sizes[lang] if sizes[lang] else 0.0
            whole, frac = int(ratio), ratio - int(ratio)
            kept = 0
            for _ in range(whole):
                for t in self.texts(lang):
                    kept += 1
                    yield t
            if frac > 0:
                for t in self.texts(lang):
                    if rng.random() < frac:
                        kept += 1
                        yield t
            if not kept:  # an empty file, or sampling dropped every line of a tiny language
                raise EmptyCorpusError(
                    f"language {lang!r} has no text after sampling ({sizes[lang]} bytes, kept with ratio {ratio:.3g} at "
                    f"alpha={alpha}); pass more text for {lang!r}, an alpha closer to 1, or drop {lang!r} from the corpus"
                )
