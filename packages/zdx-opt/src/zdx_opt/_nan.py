"""Guards against NaN gradients."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def _is_float_leaf(x: Any) -> bool:
    if isinstance(x, (float, complex)) and not isinstance(x, bool):
        return True
    if isinstance(x, (jax.Array, np.ndarray, np.generic)):
        return bool(jnp.issubdtype(x.dtype, jnp.inexact))
    return False


def debug_nan_check(grads: Any) -> Any:
    """Stop in the JAX debugger when any leaf of ``grads`` holds a NaN.

    Works inside ``jit`` (``equinox.debug.breakpoint_if``). Leaves that are not
    floating-point arrays are ignored.

    Parameters
    ----------
    grads : PyTree
        The gradients to check.

    Returns
    -------
    grads : PyTree
        ``grads``, unchanged.
    """
    leaves = [x for x in jax.tree_util.tree_leaves(grads) if _is_float_leaf(x)]
    if not leaves:
        return grads
    has_nan = jnp.any(jnp.stack([jnp.any(jnp.isnan(x)) for x in leaves]))
    eqx.debug.breakpoint_if(has_nan)
    return grads


def zero_nan_check(grads: Any) -> Any:
    """Replace every NaN in the floating-point leaves of ``grads`` by zero.

    Parameters
    ----------
    grads : PyTree
        The gradients to clean.

    Returns
    -------
    grads : PyTree
        The same pytree with NaN entries set to ``0`` (infinities are kept; other leaves
        are returned as they are). With ``jax_debug_nans`` on, a NaN leaf is cleaned all
        the same (no ``FloatingPointError``), as in zodiax 0.5.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> zero_nan_check({"a": jnp.array([1.0, jnp.nan])})
    {'a': Array([1., 0.], dtype=float64)}
    """

    def clean(x: Any) -> Any:
        if _is_float_leaf(x):
            # the leaf goes to ``where`` as it is: converting a NumPy array or a number
            # holding NaN to a JAX array first raises under ``jax_debug_nans``
            return jnp.where(jnp.isnan(x), 0.0, x)
        return x

    return jax.tree_util.tree_map(clean, grads)
