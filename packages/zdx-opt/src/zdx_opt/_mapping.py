"""One optax optimiser per parameter (or group of parameters), chosen by name."""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

from zdx_base import checks

from ._paths import leaf_names, matches

FIXED_LABEL = "<fixed>"


def _names_of(key: Any) -> tuple[str, ...]:
    """The parameter names of one key of ``optimisers``: a name or a tuple of names."""
    names = key if isinstance(key, tuple) else (key,)
    if not names:
        raise ValueError(
            "map_optimisers: `optimisers` has an empty tuple as a key; give at least one name."
        )
    for name in names:
        if not isinstance(name, str) or not name:
            raise TypeError(
                "map_optimisers: `optimisers` keys must be parameter names (non-empty strings "
                f"such as 'mean' or 'position.blue') or tuples of names, got {key!r}."
            )
    return names


def _label_of(key: Any) -> str:
    return key if isinstance(key, str) else ",".join(key)


def _as_float_leaf(name: str, leaf: Any) -> jax.Array:
    arr = checks.as_array("map_optimisers", f"params leaf '{name}'", leaf)
    if not jnp.issubdtype(arr.dtype, jnp.inexact):
        arr = arr.astype(jnp.result_type(float))
    return arr


def map_optimisers(
    params: Any, optimisers: Mapping[Hashable, optax.GradientTransformation], strict: bool = False
) -> tuple[optax.GradientTransformation, optax.OptState]:
    """Build one optax optimiser that applies a chosen optimiser to each parameter.

    Parameters
    ----------
    params : PyTree
        The parameters to optimise: a (nested) dict, list or ``equinox.Module`` of numbers
        or arrays. Integer leaves are treated as floats.
    optimisers : dict
        Maps parameter names to optax ``GradientTransformation`` s. A key is a name, a
        dotted path into nested parameters (``"position.blue"``), or a tuple of names that
        share one optimiser (``("mean", "std")``: the optimiser sees both as one pytree, so
        e.g. ``optax.clip_by_global_norm`` clips their joint norm). A name that is a
        subtree (``"position"``) covers every leaf below it; when several names cover a
        leaf the longest (most specific) one wins.
    strict : bool, default False
        If False, parameters that no name covers stay fixed: their updates are zero and no
        optimiser state is kept for them; a name that matches no parameter is ignored with
        a warning (zodiax 0.5 accepts such names too). If True, both raise an error.

    Returns
    -------
    optim : optax.GradientTransformation
        The combined optimiser (``optax.multi_transform``). ``optim.update(grads, state)``
        works without ``params`` unless one of the optimisers needs them.
    state : optax.OptState
        ``optim.init(params)``; the inner states are keyed by the names of ``optimisers``
        (a tuple key ``("mean", "std")`` becomes ``"mean,std"``), and ``"<fixed>"`` holds
        the (empty) state of the parameters with no optimiser.

    Raises
    ------
    TypeError
        If a key is not a name or tuple of names, or a value is not an optax
        ``GradientTransformation``.
    ValueError
        If a name is given twice, or ``strict=True`` and a name matches no parameter (the
        message lists the parameter names) or some parameters have no optimiser (named).

    Examples
    --------
    >>> import jax.numpy as jnp, optax
    >>> params = {"mean": jnp.zeros(2), "std": jnp.ones(2), "power": jnp.ones(2)}
    >>> optim, state = map_optimisers(params, {("mean", "std"): optax.sgd(0.1)})
    >>> grads = {"mean": jnp.ones(2), "std": jnp.ones(2), "power": jnp.ones(2)}
    >>> updates, state = optim.update(grads, state)
    >>> updates["mean"], updates["power"]
    (Array([-0.1, -0.1], dtype=float64), Array([0., 0.], dtype=float64))
    """
    if not isinstance(optimisers, Mapping):
        raise TypeError(
            "map_optimisers: `optimisers` must be a dict mapping parameter names to optax "
            f"optimisers, got {type(optimisers).__name__}."
        )
    names, leaves, treedef = leaf_names(params)
    if not leaves:
        raise ValueError("map_optimisers: `params` has no leaves: there is nothing to optimise.")

    transforms: dict[str, optax.GradientTransformation] = {}
    name_to_label: dict[str, str] = {}
    for key, optimiser in optimisers.items():
        group = _names_of(key)
        label = _label_of(key)
        if not isinstance(optimiser, optax.GradientTransformation):
            raise TypeError(
                f"map_optimisers: `optimisers[{key!r}]` must be an optax GradientTransformation "
                f"(e.g. optax.sgd(1e-3)), got {type(optimiser).__name__}."
            )
        if label in transforms:
            raise ValueError(f"map_optimisers: `optimisers` has two keys that both read {label!r}.")
        transforms[label] = optimiser
        for name in group:
            if name in name_to_label:
                raise ValueError(
                    f"map_optimisers: parameter name {name!r} is given two optimisers in "
                    f"`optimisers` (keys {name_to_label[name]!r} and {label!r})."
                )
            if not any(matches(leaf, name) for leaf in names):
                unknown = (
                    f"`optimisers` names parameter {name!r}, which is not in `params`. "
                    f"The parameters are: {', '.join(repr(n) for n in names)}."
                )
                if strict:
                    raise ValueError(f"map_optimisers: {unknown}")
                warnings.warn(f"map_optimisers: {unknown} It is ignored.", stacklevel=2)
                continue
            name_to_label[name] = label

    fixed = FIXED_LABEL
    while fixed in transforms:
        fixed = f"<{fixed}>"
    labels, unmapped = [], []
    for leaf in names:
        covering = [name for name in name_to_label if matches(leaf, name)]
        if covering:
            labels.append(name_to_label[max(covering, key=len)])
        else:
            labels.append(fixed)
            unmapped.append(leaf)
    transforms = {label: t for label, t in transforms.items() if label in labels}
    if unmapped:
        if strict:
            raise ValueError(
                "map_optimisers: strict=True but these parameters have no optimiser in "
                f"`optimisers`: {', '.join(repr(n) for n in unmapped)}."
            )
        transforms[fixed] = optax.set_to_zero()

    param_labels = jax.tree_util.tree_unflatten(treedef, labels)
    optim = optax.multi_transform(transforms, param_labels)
    float_params = jax.tree_util.tree_unflatten(
        treedef, [_as_float_leaf(n, leaf) for n, leaf in zip(names, leaves)]
    )
    state = optim.init(float_params)
    return optim, state
