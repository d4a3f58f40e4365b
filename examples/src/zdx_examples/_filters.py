"""The filters of the optics example: wavelength sets in microns, and their check."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as onp

from zdx_base import checks


def default_filters() -> dict[str, jnp.ndarray]:
    """The three filters of the tutorial, five wavelengths each, in microns.

    Returns
    -------
    filters : dict[str, Array]
        ``{"blue": linspace(1.0, 1.2, 5), "green": linspace(1.2, 1.4, 5),
        "red": linspace(1.4, 1.6, 5)}`` (microns). A new dict each call.

    >>> sorted(default_filters())
    ['blue', 'green', 'red']
    """
    return {
        "blue": jnp.linspace(1.0, 1.2, 5),
        "green": jnp.linspace(1.2, 1.4, 5),
        "red": jnp.linspace(1.4, 1.6, 5),
    }


def filter_set(n: int) -> dict[str, jax.Array]:
    """``n`` filters of five wavelengths each: the tutorial's blue, green and red (1.0 to
    1.6 microns) first, then 0.2-micron bands ``band4``, ``band5``... beyond.

    Raises
    ------
    TypeError, ValueError
        If ``n`` is not an integer >= 1.

    >>> list(filter_set(2)), list(filter_set(4))
    (['blue', 'green'], ['blue', 'green', 'red', 'band4'])
    """
    n = checks.check_int("filter_set", "filters", n, minimum=1)
    filters = dict(list(default_filters().items())[:n])
    for i in range(3, n):
        filters[f"band{i + 1}"] = jnp.linspace(1.0 + 0.2 * i, 1.2 + 0.2 * i, 5)
    return filters


def check_filters(filters: Any) -> dict[str, jnp.ndarray]:
    """Validate a mapping of filter name to wavelengths (microns) and convert it.

    Parameters
    ----------
    filters : Mapping[str, array_like]
        Non-empty mapping from a filter name to a 1-D, non-empty array of positive, finite
        wavelengths in microns.

    Returns
    -------
    filters : dict[str, Array]
        A new dict, in the same order, with float arrays as values.

    Raises
    ------
    TypeError
        If ``filters`` is not a mapping or a name is not a string.
    ValueError
        If the mapping is empty, or a wavelength array is not 1-D, is empty, holds
        non-finite or non-positive values, or looks like metres instead of microns.

    >>> check_filters({"J": [1.1, 1.2]})["J"].shape
    (2,)
    """
    if not isinstance(filters, Mapping):
        raise TypeError(
            "`filters` must be a mapping of filter name to wavelengths in microns, "
            f"got {type(filters).__name__}."
        )
    if len(filters) == 0:
        raise ValueError("`filters` must name at least one filter, got an empty mapping.")
    checked = {}
    for name, wavelengths in filters.items():
        if not isinstance(name, str):
            raise TypeError(f"`filters` keys must be strings, got {name!r}.")
        array = onp.asarray(wavelengths, dtype=float)
        where = f"`filters[{name!r}]`"
        if array.ndim != 1 or array.size == 0:
            raise ValueError(
                f"{where} must be a non-empty 1-D array of wavelengths (microns), "
                f"got shape {array.shape}."
            )
        if not onp.all(onp.isfinite(array)) or onp.any(array <= 0):
            raise ValueError(
                f"{where} must hold positive finite wavelengths (microns), got {array}."
            )
        if array.max() < 1e-3:
            raise ValueError(
                f"{where} must be in microns; the largest value {array.max():.3g} looks "
                "like metres (multiply by 1e6)."
            )
        checked[name] = jnp.asarray(array, dtype=float)
    return checked
