"""The one config reader: TOML or YAML files into a dict, and ``key=value`` overrides on that dict.

Used by ``train`` and ``study`` configs and by the CLI's ``a.b=value`` overrides. Errors are
:class:`ConfigError` naming the file and what the parser said (with its line), or the override.
What the keys mean is not known here (that is :mod:`tokembed.training.config` and
:mod:`tokembed.study.config`); :mod:`tokembed.options` checks values against annotations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["read_config_file", "toml_loads", "parse_value", "apply_override"]


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


def parse_value(text: str) -> Any:
    """An override value as a TOML literal, else the bare string.

    >>> parse_value("1e-3"), parse_value("[1, 2]"), parse_value("rope"), parse_value("true")
    (0.001, [1, 2], 'rope', True)
    """
    try:
        return toml_loads(f"v = {text}")["v"]
    except ValueError:  # tomllib.TOMLDecodeError
        return text  # bare strings: positional=rope


def apply_override(d: dict[str, Any], item: str) -> None:
    """Apply ``a.b=value`` to the nested dict ``d``.

    >>> d = {"model": {}}
    >>> apply_override(d, "model.d_model=64"); apply_override(d, "lr=1e-3"); apply_override(d, "model.positional=alibi")
    >>> d
    {'model': {'d_model': 64, 'positional': 'alibi'}, 'lr': 0.001}
    """
    if "=" not in item:
        raise ConfigError(f"override {item!r} has no '='; write key=value, e.g. model.d_model=64")
    key, value = item.split("=", 1)
    parts = key.strip().split(".")
    cur = d
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
        if not isinstance(cur, dict):
            raise ConfigError(f"override {item!r}: {p} is not a section")
    cur[parts[-1]] = parse_value(value.strip())
