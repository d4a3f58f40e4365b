"""The zodiax 0.4 tree and transform names: filters, float arrays, filtered derivatives."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax

from zdx_base import checks

from ._legacy_inputs import as_float, flags, flat_paths, set_float_arrays
from ._replacements import deprecated


@deprecated
def boolean_filter(pytree: Any, parameters: Any, inverse: bool = False) -> Any:
    """``pytree`` with ``True`` at ``parameters`` and ``False`` at every other leaf.

    An equinox filter specification: ``equinox.partition(pytree, boolean_filter(pytree,
    paths))`` splits the named parameters from the rest; a path naming a sub-tree gets one
    ``True`` that selects all of it. ``inverse=True`` swaps ``True`` and ``False``.

    Returns
    -------
    filter : PyTree
        ``pytree``'s structure with a ``bool`` at every leaf.

    Raises
    ------
    KeyError
        If a path does not exist in ``pytree``.
    TypeError
        If ``parameters`` is not a path or a (nested) list of paths.
    """
    return flags(pytree, flat_paths(parameters, "boolean_filter"), not inverse)


@deprecated
def set_array(pytree: Any, parameters: Any = None) -> Any:
    """``pytree`` with the numeric leaves at ``parameters`` (all of them if ``None``) as arrays.

    Numbers, numpy values and integer or boolean arrays become jax arrays of the default
    float dtype; float and complex arrays keep theirs. Under a path naming a sub-tree the
    leaves that are not numbers (strings, functions) stay as they are.

    Returns
    -------
    pytree : PyTree
        A copy of ``pytree`` with the converted leaves.

    Raises
    ------
    KeyError
        If a path does not exist in ``pytree``.
    TypeError
        If a path names a single leaf that is not a number or an array.
    """
    if parameters is None:
        return jax.tree.map(as_float, pytree)
    return set_float_arrays(pytree, flat_paths(parameters, "set_array"), "set_array")


@deprecated
def filter_jit(fun: Callable | None = None, **jit_kwargs: Any) -> Callable:
    """``equinox.filter_jit(fun, **jit_kwargs)``; without ``fun``, a decorator.

    Returns
    -------
    compiled : callable
        ``fun`` compiled, its arrays traced and everything else static.
    """
    if fun is None:
        return functools.partial(eqx.filter_jit, **jit_kwargs)
    return eqx.filter_jit(fun, **jit_kwargs)


def _by_paths(transform: Callable, function: str, parameters: Any, fun: Any, kwargs: dict) -> Any:
    """``transform`` (an equinox filtered derivative) taken at ``parameters`` only."""
    paths = flat_paths(parameters, function)

    def decorate(func: Callable) -> Callable:
        checks.check_callable(function, "fun", func, "a function to differentiate")

        @functools.wraps(func)
        def differentiated(pytree: Any, *args: Any, **func_kwargs: Any) -> Any:
            pytree = set_float_arrays(pytree, paths, function)
            selected, rest = eqx.partition(pytree, flags(pytree, paths, True))

            def of_selected(selected: Any, rest: Any) -> Any:
                return func(eqx.combine(selected, rest), *args, **func_kwargs)

            return transform(of_selected, **kwargs)(selected, rest)

        return differentiated

    return decorate if fun is None else decorate(fun)


@deprecated
def filter_grad(parameters: Any, fun: Callable | None = None, **grad_kwargs: Any) -> Callable:
    """The gradient of ``fun(pytree, *args, **kwargs)`` with respect to ``parameters`` only.

    ``@filter_grad(paths)`` or ``filter_grad(paths, fun)``; ``grad_kwargs`` (``has_aux``) go
    to ``equinox.filter_grad``. The numeric leaves at ``parameters`` are made float arrays
    first (as :func:`set_array` does), so each gets a gradient.

    Returns
    -------
    grad_fn : callable
        ``grad_fn(pytree, *args, **kwargs)`` gives a pytree shaped like ``pytree`` with the
        gradient at ``parameters`` and ``None`` elsewhere (and ``aux``); a decorator when
        ``fun`` is not given.

    Raises
    ------
    TypeError
        If ``parameters`` is not a path or a list of paths, or ``fun`` is not callable.
    KeyError
        When ``grad_fn`` is called, if a path does not exist in its pytree.
    """
    return _by_paths(eqx.filter_grad, "filter_grad", parameters, fun, grad_kwargs)


@deprecated
def filter_value_and_grad(
    parameters: Any, fun: Callable | None = None, **grad_kwargs: Any
) -> Callable:
    """As :func:`filter_grad`, giving ``(value, grads)`` (``((value, aux), grads)`` with aux).

    Returns
    -------
    value_and_grad_fn : callable
        ``value_and_grad_fn(pytree, *args, **kwargs)``; a decorator when ``fun`` is not given.

    Raises
    ------
    TypeError, KeyError
        As :func:`filter_grad`.
    """
    return _by_paths(
        eqx.filter_value_and_grad, "filter_value_and_grad", parameters, fun, grad_kwargs
    )


@deprecated
def apply_updates(model: Any, updates: Any) -> Any:
    """``equinox.apply_updates``: ``model`` plus ``updates``, leaf by leaf, skipping ``None``.

    Returns
    -------
    model : PyTree
        The updated copy.
    """
    return eqx.apply_updates(model, updates)
