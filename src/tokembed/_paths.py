"""Local paths vs hub model ids: the one check every loader makes before reading a path.

tokembed is offline. A path that does not exist but is shaped like a hub model id
(``bert-base-uncased``, ``org/model``) gets a :class:`HubIdError` that says so and how to get
a local folder; any other missing path gets the loader's own error type.

>>> looks_like_hub_id("bert-base-uncased"), looks_like_hub_id("org/model"), looks_like_hub_id("./x/y/z.json")
(True, True, False)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import HubIdError, TokembedError

__all__ = ["looks_like_hub_id", "existing_local_path"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_FILE_SUFFIXES = (".json", ".txt", ".model", ".tiktoken", ".safetensors", ".npy", ".vec", ".bin", ".gz")


def looks_like_hub_id(name: str) -> bool:
    """True for ``name`` or ``org/name`` shapes that are not file names."""
    return bool(_HUB_ID.match(name)) and not name.lower().endswith(_FILE_SUFFIXES)


def existing_local_path(path: str | os.PathLike, *, expected: str, error: type[TokembedError]) -> Path:
    """``path`` as a Path if it exists; else HubIdError (hub-id shape) or ``error`` naming ``expected``."""
    p = Path(path).expanduser()
    if p.exists():
        return p
    name = str(path)
    if looks_like_hub_id(name):
        raise HubIdError(
            f"{name!r} is not a local path; if it is a hub model id: tokembed works offline — download the model's "
            f"files elsewhere (e.g. huggingface-cli download {name} --local-dir DIR) and pass the local folder DIR"
        )
    raise error(f"{p}: no such file or folder; pass {expected}")
