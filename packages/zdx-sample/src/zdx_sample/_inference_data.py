"""Conversion of posterior draws to ArviZ ``InferenceData``, named by parameter.

Both ArviZ lines are supported: 0.x returns its ``InferenceData``; 1.x (arviz-base,
arviz-stats, arviz-plots) returns an ``xarray.DataTree`` with the same groups. Either has
``.posterior["params"]``, ``.sample_stats``, ``.attrs`` and ``.to_netcdf(path)``, and
``arviz.from_netcdf(path)`` of the same line reads the file back.
"""

from __future__ import annotations

import functools
import importlib.metadata
import warnings
from typing import Any

import numpy as onp


def _arviz():
    with warnings.catch_warnings():
        # arviz 0.2x announces its coming refactor with a FutureWarning on import
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


@functools.cache
def arviz_major() -> int:
    """The major version of the installed ArviZ: 0 (``InferenceData``) or 1 (``DataTree``).

    Raises
    ------
    ImportError
        If ArviZ is not installed.
    """
    try:
        version = importlib.metadata.version("arviz")
    except importlib.metadata.PackageNotFoundError as error:
        raise ImportError("zdx_sample needs ArviZ (`pip install arviz`) for this.") from error
    return int(version.split(".")[0])


def draws_to_inference_data(
    draws: Any,
    names: tuple[str, ...],
    *,
    sample_stats: dict[str, Any] | None = None,
    attrs: dict[str, Any] | None = None,
):
    """``InferenceData`` (ArviZ 0.x) or ``DataTree`` (ArviZ 1.x) with ``posterior.params``
    of dims ``(chain, draw, parameter)``.

    ``draws`` is ``(chains, draws, n)`` in flattened order and ``names`` gives the
    ``parameter`` coordinates; ``sample_stats`` arrays are ``(chains, draws)``. ``attrs``
    are those of the whole (``data.attrs``, the file's attributes once written).
    """
    az = _arviz()
    groups = {"posterior": {"params": onp.asarray(draws)}}
    if sample_stats:
        groups["sample_stats"] = {k: onp.asarray(v) for k, v in sample_stats.items()}
    coords, dims, attrs = {"parameter": list(names)}, {"params": ["parameter"]}, dict(attrs or {})
    if arviz_major() == 0:
        return az.from_dict(**groups, coords=coords, dims=dims, attrs=attrs)
    tree = az.from_dict(groups, coords=coords, dims=dims)
    tree.attrs.update(attrs)  # 1.x's attrs are per group: these belong to the whole
    return tree


def to_inference_data(result: Any, **kwargs: Any):
    """Convert a result of :func:`laplace`, :func:`nuts`, :func:`nested_sampling` or
    :func:`variational` to an ArviZ ``InferenceData`` (ArviZ 0.x) or ``xarray.DataTree``
    (ArviZ 1.x, which has no ``InferenceData``).

    The posterior group holds one variable, ``params``, with dimensions
    ``(chain, draw, parameter)``; the ``parameter`` coordinate is the list of scalar names
    (``"wfe[3]"``). Keyword arguments go to the result's own ``to_inference_data``
    (``key`` and ``num_samples`` for the Laplace and variational approximations).

    Raises
    ------
    TypeError
        If ``result`` is not a result of this package.
    """
    method = getattr(result, "to_inference_data", None)
    if method is None:
        raise TypeError(
            "`result` must be a result of laplace, nuts, nested_sampling or variational, "
            f"got {type(result).__name__}."
        )
    return method(**kwargs)
