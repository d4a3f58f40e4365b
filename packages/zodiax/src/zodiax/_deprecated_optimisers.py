"""The zodiax 0.4 optimiser names: schedules, ``sgd``, ``adam`` and ``get_optimiser``."""

from __future__ import annotations

import math
import numbers
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import zdx_opt

from ._legacy_inputs import (
    dotted,
    flat_paths,
    is_multiplier,
    is_step,
    refuse_repeats,
    set_float_arrays,
)
from ._replacements import deprecated


def _schedule(lr: Any, start: Any, changes: tuple, function: str) -> optax.Schedule:
    """zodiax 0.4's schedule: ``zdx_opt.delay(lr, start)`` one step earlier, rescaled.

    Bad arguments raise ``ValueError`` in zodiax 0.4's words, whatever their kind (the
    shims keep 0.4's errors; ``zdx_opt.delay`` itself follows the house convention).
    """
    real = isinstance(lr, numbers.Real) and not isinstance(lr, bool)
    if not (real and math.isfinite(lr)):
        raise ValueError(f"{function}(): `lr` must be a finite real number, got {lr!r}.")
    if not is_step(start):
        raise ValueError(f"{function}(): `start` must be an integer >= 0, got {start!r}.")
    delayed = zdx_opt.delay(lr, start)
    for change in changes:
        if not (
            isinstance(change, (tuple, list))
            and len(change) == 2
            and is_step(change[0])
            and is_multiplier(change[1])
        ):
            raise ValueError(
                f"{function}(): each schedule change must be a (step, multiplier) pair with "
                f"an integer step >= 0 and a finite multiplier >= 0, got {change!r}."
            )

    def schedule(count: Any) -> jax.Array:
        rate = delayed(jnp.asarray(count, dtype=float) + 1)  # 0 while count < start, then lr
        for step, multiplier in changes:
            rate = jnp.where(count >= step, rate * multiplier, rate)
        return rate

    return schedule


@deprecated
def scheduler(lr: float, start: int, *changes: tuple[int, float]) -> optax.Schedule:
    """A learning rate: ``0`` before step ``start``, then ``lr`` times the multiplier of
    every ``(step, multiplier)`` in ``changes`` with ``step <= count``.

    Returns
    -------
    schedule : optax.Schedule
        A function of the step count (optax counts the first update as step 0).

    Raises
    ------
    ValueError
        If ``lr`` is not finite, ``start`` not an integer ``>= 0``, or a change not a
        ``(step, multiplier)`` pair of an integer ``>= 0`` and a finite number ``>= 0``.
    """
    return _schedule(lr, start, changes, "scheduler")


@deprecated
def sgd(lr: float, start: int, *changes: tuple[int, float]) -> optax.GradientTransformation:
    """``optax.sgd`` with Nesterov momentum 0.6 at the rate of :func:`scheduler`.

    The momentum collects gradients from step 0, also while the rate is still zero.

    Returns
    -------
    optimiser : optax.GradientTransformation

    Raises
    ------
    ValueError
        As :func:`scheduler`.
    """
    return optax.sgd(_schedule(lr, start, changes, "sgd"), momentum=0.6, nesterov=True)


@deprecated
def adam(lr: float, start: int, *changes: tuple[int, float]) -> optax.GradientTransformation:
    """``optax.adam`` at the rate of :func:`scheduler`: an ``optax.GradientTransformation``.

    Raises ``ValueError`` as :func:`scheduler` does.
    """
    return optax.adam(_schedule(lr, start, changes, "adam"))


@deprecated
def get_optimiser(pytree: Any, parameters: Any, optimisers: Any) -> tuple[Any, Any]:
    """``zdx_opt.map_optimisers``: ``optimisers[i]`` for ``parameters[i]``, other leaves fixed.

    An entry of ``parameters`` is a path or a list of paths that share one optimiser; a
    single optimiser (not in a list) serves every path. Feed it the gradients of
    :func:`filter_grad` over the same ``parameters`` and apply its updates with
    :func:`apply_updates`.

    Returns
    -------
    optimiser : optax.GradientTransformation
        The combined optimiser (``optax.multi_transform``).
    state : optax.OptState
        Its initial state for ``pytree``.

    Raises
    ------
    KeyError
        If a path does not exist in ``pytree``.
    TypeError
        If an optimiser is not an optax ``GradientTransformation``.
    ValueError
        If there are not as many optimisers as entries of ``parameters``, or a path is
        given twice.
    """
    function = "get_optimiser"
    if isinstance(optimisers, optax.GradientTransformation):
        groups, optimisers = [flat_paths(parameters, function)], [optimisers]
    elif isinstance(optimisers, (list, tuple)):
        several = isinstance(parameters, list) or type(parameters) is tuple  # not a Path
        entries = parameters if several else [parameters]
        groups = [flat_paths(entry, function) for entry in entries]
        if len(groups) != len(optimisers):
            raise ValueError(
                f"{function}(): got {len(groups)} entries in `parameters` ({parameters!r}) but "
                f"{len(optimisers)} optimisers; give one optimiser per entry (an entry may be "
                "a list of paths that share an optimiser)."
            )
    else:
        raise TypeError(
            f"{function}(): `optimisers` must be an optax GradientTransformation or a list of "
            f"them, got {optimisers!r} of type {type(optimisers).__name__}."
        )
    for i, optimiser in enumerate(optimisers):
        if not isinstance(optimiser, optax.GradientTransformation):
            raise TypeError(
                f"{function}(): optimiser {i} must be an optax GradientTransformation, got "
                f"{optimiser!r}."
            )
    paths = [path for group in groups for path in group]
    refuse_repeats(paths, function)
    arrays = eqx.filter(set_float_arrays(pytree, paths, function), eqx.is_array)
    named = {tuple(dotted(p) for p in group): o for group, o in zip(groups, optimisers)}
    return zdx_opt.map_optimisers(arrays, named)
