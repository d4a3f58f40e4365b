"""Settings of a command given by name, over a table of defaults."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def with_defaults(fn: str, defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict:
    """``defaults`` with the entries of ``given`` in their place.

    Parameters
    ----------
    fn : str
        The function taking the settings, named in the error message.
    defaults : Mapping[str, Any]
        Every known setting and its value when not given.
    given : Mapping[str, Any]
        The settings given, each one of ``defaults``' names.

    Returns
    -------
    settings : dict
        Every setting of ``defaults``, in its order, with the given values.

    Raises
    ------
    TypeError
        If ``given`` names a setting that ``defaults`` does not have.

    >>> with_defaults("demo", {"n": 1, "seed": 0}, {"seed": 3})
    {'n': 1, 'seed': 3}
    """
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise TypeError(f"{fn}: unknown settings {unknown}; known: {sorted(defaults)}.")
    return {**defaults, **given}
