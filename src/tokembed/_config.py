"""Read a TOML or YAML config file into a dict (the one reader for ``train`` and ``study`` configs).

Errors are :class:`ConfigError` naming the file and what the parser said (with its line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["read_config_file", "toml_loads"]


def toml_loads(text: str) -> dict[str, Any]:
    """``tomllib.loads`` (``tomli`` on Python 3.10); raises the parser's own error."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads(text)


def read_config_file(path: str | Path, *, what: str = "config") -> dict[str, Any]:
    """The mapping in a ``.toml``, ``.yaml`` or ``.yml`` file; ``what`` names it in errors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path}: file not found; pass a .toml or .yaml file")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        try:
            d = toml_loads(text)
        except ValueError as e:  # tomllib.TOMLDecodeError is a ValueError and carries the line
            raise ConfigError(f"{what} {path}: invalid TOML, cannot parse ({e}); fix the file") from e
    elif path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            d = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{what} {path}: invalid YAML, cannot parse ({e}); fix the file") from e
    else:
        raise ConfigError(f"{what} {path}: unknown format {path.suffix!r}; use .toml, .yaml or .yml")
    if not isinstance(d, dict):
        raise ConfigError(f"{what} {path}: the file must hold a table/mapping at top level")
    return d
