"""Degrees of freedom: data points minus parameters, both counted over pytrees."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from zdx_base.checks import as_array, is_traced

from ._checks import count_scalars


def _count_used(data: Any, mask: Any, finite_only: bool) -> int | Array:
    """The number of data scalars that are selected by ``mask`` and finite if asked."""
    data_leaves, data_def = jax.tree_util.tree_flatten(data)
    if mask is None:
        mask_leaves = [None] * len(data_leaves)
    else:
        mask_leaves, mask_def = jax.tree_util.tree_flatten(mask)
        if mask_def != data_def:
            raise ValueError(
                f"ddof: mask must have the same pytree structure as data; got mask "
                f"{mask_def} for data {data_def}."
            )
    total: Any = 0
    for i, (leaf, leaf_mask) in enumerate(zip(data_leaves, mask_leaves)):
        values = as_array("ddof", f"data leaf {i}", leaf)
        used = jnp.ones(values.shape, bool)
        if finite_only:
            used = jnp.isfinite(values)
        if leaf_mask is not None:
            m = as_array("ddof", f"mask leaf {i}", leaf_mask)
            if m.dtype != jnp.bool_:
                raise TypeError(
                    f"ddof: mask must be boolean (True where a data point is used), got "
                    f"dtype {m.dtype} in mask leaf {i}."
                )
            if m.shape != values.shape:
                raise ValueError(
                    f"ddof: mask leaf {i} has shape {tuple(m.shape)}, but the data leaf it "
                    f"selects from has shape {tuple(values.shape)}; they must be equal."
                )
            used = used & m
        total = total + jnp.sum(used)
    return total if is_traced(total) else int(total)


def ddof(params: Any, data: Any, *, mask: Any = None, finite_only: bool = False) -> Any:
    """The degrees of freedom: the number of data points minus the number of parameters.

    Both arguments are pytrees; every leaf counts all its scalars (an array its size, a
    Python number one). This is ``flatten(data).size - flatten(params).size``.

    Parameters
    ----------
    params : PyTree
        The model parameters (a dict of arrays, an ``equinox.Module``, an array, ...).
    data : PyTree
        The observed data.
    mask : PyTree of bool, optional
        Counts only the data points where ``mask`` is ``True``. It must have the same pytree
        structure as ``data`` and the same shape in every leaf (a single boolean array when
        ``data`` is an array).
    finite_only : bool, default False
        Counts only finite data points (NaN and inf are left out).

    Returns
    -------
    ddof : int or Array
        A Python ``int``; an integer array instead when ``mask`` or ``finite_only`` is used
        and the data or mask are traced (inside ``jax.jit``). It can be zero or negative.

    Raises
    ------
    TypeError
        If a leaf is neither an array nor a number (the message names its path), or the
        mask is not boolean.
    ValueError
        If ``mask`` does not match the structure or shapes of ``data``.

    Notes
    -----
    Without ``mask`` and ``finite_only`` NaN values count like any other data point; only
    the sizes matter. To use the result in :func:`chi2r`, which needs a positive value,
    pair ``finite_only=True`` with :func:`chi2_finite`, or use :func:`chi2r_finite`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import zdx_stats
    >>> params = {"mean": jnp.zeros(3), "std": 1.0}
    >>> zdx_stats.ddof(params, jnp.ones((4, 5)))
    16
    >>> zdx_stats.ddof(params, jnp.array([1.0, jnp.nan, 2.0, 3.0, 4.0]), finite_only=True)
    0
    """
    n_params = count_scalars("ddof", "params", params)
    if mask is None and not finite_only:
        return count_scalars("ddof", "data", data) - n_params
    count_scalars("ddof", "data", data)  # names a bad leaf by its path
    return _count_used(data, mask, finite_only) - n_params
