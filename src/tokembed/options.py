"""Check keyword options and config values against their annotations, before they reach an engine.

A wrong name or a wrong scalar type (``lowercase="maybe"``, ``d_model="big"``) becomes a
:class:`~tokembed.errors.ConfigError` naming the option, the value and what is expected, instead of
a ``TypeError`` from deep inside a library. Only scalar annotations (bool, int, float, str, and
their optionals) are checked; containers are left to the code that uses them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import ConfigError

__all__ = ["check_options", "check_scalar_types"]

_LABELS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def check_scalar_types(hints: Mapping[str, Any], values: Mapping[str, Any], *, what: str, prefix: str = "") -> None:
    """Raise :class:`ConfigError` for the first value whose scalar annotation in ``hints`` it does not fit.

    >>> check_scalar_types({"d_model": int}, {"d_model": "big"}, what="config", prefix="model.")
    Traceback (most recent call last):
    tokembed.errors.ConfigError: config: model.d_model='big' must be an integer
    """
    import types
    import typing

    for key, value in values.items():
        hint = hints.get(key)
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        options = typing.get_args(hint) if union else (hint,)
        if hint is None or not all(a in _LABELS or a is type(None) for a in options):
            continue
        if value is None and type(None) in options:
            continue
        ok = (
            (bool in options and isinstance(value, bool))
            or (int in options and isinstance(value, int) and not isinstance(value, bool))
            or (float in options and isinstance(value, (int, float)) and not isinstance(value, bool))
            or (str in options and isinstance(value, str))
        )
        if not ok:
            want = " or ".join(_LABELS[a] for a in options if a in _LABELS)
            raise ConfigError(f"{what}: {prefix}{key}={value!r} must be {want}")


def check_options(func: Callable[..., Any], what: str, opts: Mapping[str, Any]) -> None:
    """Check keyword options for ``func`` before calling it: unknown names (unless ``func`` takes
    ``**kwargs``) and scalar types.

    >>> def f(x, *, lowercase: bool = True, min_frequency: int = 2): ...
    >>> check_options(f, "vocab.txt loader", {"lowercase": "maybe"})
    Traceback (most recent call last):
    tokembed.errors.ConfigError: vocab.txt loader: lowercase='maybe' must be true or false
    >>> check_options(f, "vocab.txt loader", {"nosuch": 1})
    Traceback (most recent call last):
    tokembed.errors.ConfigError: vocab.txt loader: unknown option(s) ['nosuch']; valid options are ['lowercase', 'min_frequency']
    """
    import inspect
    import typing

    params = inspect.signature(func).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        names = sorted(n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY)
        unknown = sorted(set(opts) - set(names))
        if unknown:
            raise ConfigError(f"{what}: unknown option(s) {unknown}; valid options are {names}")
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # an annotation that does not resolve: leave the types to the callee
        return
    check_scalar_types(hints, opts, what=what)
