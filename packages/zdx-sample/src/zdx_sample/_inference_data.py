"""Conversion of posterior draws to ArviZ ``InferenceData``, named by parameter."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as onp


def _arviz():
    with warnings.catch_warnings():
        # arviz 0.2x announces its coming refactor with a FutureWarning on import
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


def draws_to_inference_data(
    draws: Any,
    names: tuple[str, ...],
    *,
    sample_stats: dict[str, Any] | None = None,
    attrs: dict[str, Any] | None = None,
):
    """``InferenceData`` with ``posterior.params`` of dims ``(chain, draw, parameter)``.

    ``draws`` is ``(chains, draws, n)`` in flattened order and ``names`` gives the
    ``parameter`` coordinates; ``sample_stats`` arrays are ``(chains, draws)``.
    """
    az = _arviz()
    draws = onp.asarray(draws)
    return az.from_dict(
        posterior={"params": draws},
        sample_stats={k: onp.asarray(v) for k, v in (sample_stats or {}).items()} or None,
        coords={"parameter": list(names)},
        dims={"params": ["parameter"]},
        attrs=dict(attrs or {}),
    )


def to_inference_data(result: Any, **kwargs: Any):
    """Convert a result of :func:`laplace`, :func:`nuts`, :func:`nested_sampling` or
    :func:`variational` to an ArviZ ``InferenceData``.

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
