"""The zodiax 0.4 names that zodiax 0.5 removed, as thin shims over the current API.

Each works as its zodiax 0.4.1 namesake, on any pytree (not only ``zodiax.Base``), with
parameter paths (``"a.b.c"``, a ``zdx_base.Path`` or a nested list of those), and emits a
``DeprecationWarning`` naming its replacement. :data:`REPLACEMENTS` is the one source of
that text: the warnings, the docstrings' deprecation notes and the README's migration table
are made from it. The work is done by zdx_base (paths), zdx_opt (``map_optimisers``,
``delay``), zdx_batching (``hessian``), equinox and optax.
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import zdx_base
import zdx_batching
import zdx_opt

__all__ = [
    "adam",
    "apply_updates",
    "boolean_filter",
    "covariance_matrix",
    "filter_grad",
    "filter_jit",
    "filter_value_and_grad",
    "fisher_matrix",
    "get_optimiser",
    "scheduler",
    "set_array",
    "sgd",
]

REPLACEMENTS: dict[str, tuple[str, str]] = {
    # name: (the zodiax 0.4 call, what to write instead). The one source of the replacement
    # text: the warnings, the docstrings and the README's migration table come from here
    # (tests/zodiax/test_deprecated.py checks the README against migration_table()).
    "filter_jit": ("zdx.filter_jit(fn)", "`equinox.filter_jit(fn)`"),
    "filter_grad": (
        "zdx.filter_grad(paths)(fn)",
        "`equinox.filter_grad`, or `jax.grad` of `lambda params: fn(model.set(params), ...)` "
        "where `params = model.get(paths, as_dict=True)`",
    ),
    "filter_value_and_grad": (
        "zdx.filter_value_and_grad(paths)(fn)",
        "`equinox.filter_value_and_grad`, or `jax.value_and_grad` over the same `params` dict",
    ),
    "apply_updates": (
        "zdx.apply_updates(model, updates)",
        "`equinox.apply_updates(model, updates)`, or `optax.apply_updates(params, updates)` "
        "on the `params` dict followed by `model.set(params)`",
    ),
    "get_optimiser": (
        "zdx.get_optimiser(model, paths, optimisers)",
        "`optim, state = zodiax.optimisation.map_optimisers(params, {path: optimiser, ...})`",
    ),
    "sgd": (
        "zdx.sgd(lr, start)",
        "`optax.sgd(zodiax.optimisation.delay(lr, start - 1), momentum=0.6, nesterov=True)`",
    ),
    "adam": ("zdx.adam(lr, start)", "`optax.adam(zodiax.optimisation.delay(lr, start - 1))`"),
    "scheduler": (
        "zdx.scheduler(lr, start, *(step, multiplier))",
        "`zodiax.optimisation.delay(lr, start - 1)`. For the multipliers, use "
        "`optax.piecewise_constant_schedule` or `optax.join_schedules`",
    ),
    "set_array": (
        "zdx.set_array(model, paths)",
        "`model.set(paths, model.get(paths))`, because `get` returns float arrays "
        "(`zdx_base.set` / `zdx_base.get` on any pytree)",
    ),
    "boolean_filter": (
        "zdx.boolean_filter(model, paths)",
        "`zdx_base.set(jax.tree.map(lambda _: False, model), paths, True)`, or `equinox.tree_at`",
    ),
    "fisher_matrix": (
        "zdx.fisher_matrix(model, paths, loglike, *args)",
        "`-H`, with `H, _ = zodiax.batching.hessian(lambda p: loglike(model.set(p), *args), "
        "model.get(paths, as_dict=True))`",
    ),
    "covariance_matrix": (
        "zdx.covariance_matrix(model, paths, loglike, *args)",
        "`jax.numpy.linalg.inv(-H)` with the same `H`",
    ),
}


def migration_table() -> str:
    """The README's table of the zodiax 0.4 names and their replacements, in markdown."""
    rows = [f"| `{old}` | {new} |" for old, new in REPLACEMENTS.values()]
    return "\n".join(["| zodiax 0.4 name | replacement |", "|---|---|", *rows])


def _deprecated(function: Callable) -> Callable:
    """``function`` warning, on every call, what :data:`REPLACEMENTS` says replaces it.

    The warning points at the caller's line; the docstring gains a ``.. deprecated::`` note.
    """
    name = function.__name__
    replacement = REPLACEMENTS[name][1]

    @functools.wraps(function)
    def shim(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(
            f"zodiax.{name} is deprecated since zodiax 0.5 and will be removed in a future "
            f"release; use {replacement.replace('`', '')} instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return function(*args, **kwargs)

    shim.__doc__ = (function.__doc__ or "").rstrip() + (
        f"\n\n    .. deprecated:: 0.5\n        Use {replacement.replace('`', '``')}.\n"
    )
    return shim


# --------------------------------------------------------------------------- paths


def _flat_paths(parameters: Any, function: str) -> list[Any]:
    """The paths in ``parameters`` (a path or a nested list of paths), in order."""
    if isinstance(parameters, (str, zdx_base.Path)):
        return [parameters]
    if isinstance(parameters, (list, tuple)):
        return [path for entry in parameters for path in _flat_paths(entry, function)]
    raise TypeError(
        f"{function}(): `parameters` must be a path like 'a.b', a zdx_base.Path, or a "
        f"(nested) list of those; got {parameters!r} of type {type(parameters).__name__}."
    )


def _keys(path: Any) -> tuple:
    """The keys of one path: a ``zdx_base.Path``'s own, or a string's split on dots."""
    return tuple(path) if isinstance(path, zdx_base.Path) else tuple(path.split("."))


def _refuse_repeats(paths: list[Any], function: str) -> None:
    """Raise ``ValueError`` naming the first path that ``paths`` gives twice (in any form)."""
    seen: set = set()
    for path in paths:
        if _keys(path) in seen:
            raise ValueError(
                f"{function}(): the path {path!r} is given more than once in `parameters`; "
                "give each parameter once."
            )
        seen.add(_keys(path))


def _flags(pytree: Any, paths: list[Any], at_paths: bool) -> Any:
    """``pytree`` with ``at_paths`` at ``paths`` (one per named sub-tree), else its negation."""
    return zdx_base.set(jax.tree.map(lambda _: not at_paths, pytree), paths, at_paths)


def _is_numeric(leaf: Any) -> bool:
    """A number (``bool`` included), or an array or numpy scalar of booleans or numbers."""
    if isinstance(leaf, numbers.Number):
        return True
    dtype = getattr(leaf, "dtype", None)
    return (
        dtype is not None
        and hasattr(leaf, "shape")
        and bool(jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_))
    )


def _as_float(leaf: Any) -> Any:
    """A numeric leaf as a jax array that keeps a float (complex) dtype and makes any other
    numeric dtype the default float; a leaf that is not numeric comes back unchanged."""
    if not _is_numeric(leaf):
        return leaf
    if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.inexact):
        return jnp.asarray(leaf)
    return jnp.asarray(leaf, dtype=complex if isinstance(leaf, complex) else float)


def _set_array(pytree: Any, paths: list[Any], function: str) -> Any:
    """:func:`set_array` at ``paths``, its errors naming ``function``."""
    values = [zdx_base.get(pytree, path, to_array=False) for path in paths]
    for path, value in zip(paths, values):
        is_leaf = value is not None and jax.tree_util.treedef_is_leaf(jax.tree.structure(value))
        if is_leaf and not _is_numeric(value):
            raise TypeError(
                f"{function}(): the parameter {path!r} is a {type(value).__name__}, not a "
                "number or an array, so it cannot be made a float array."
            )
    return zdx_base.set(pytree, paths, [jax.tree.map(_as_float, value) for value in values])


@_deprecated
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
    return _flags(pytree, _flat_paths(parameters, "boolean_filter"), not inverse)


@_deprecated
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
        return jax.tree.map(_as_float, pytree)
    return _set_array(pytree, _flat_paths(parameters, "set_array"), "set_array")


# ------------------------------------------------------------------------ transforms


@_deprecated
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
    paths = _flat_paths(parameters, function)

    def decorate(func: Callable) -> Callable:
        if not callable(func):
            raise TypeError(
                f"{function}(): expected a function to differentiate, got {func!r} of type "
                f"{type(func).__name__}."
            )

        @functools.wraps(func)
        def differentiated(pytree: Any, *args: Any, **func_kwargs: Any) -> Any:
            pytree = _set_array(pytree, paths, function)
            selected, rest = eqx.partition(pytree, _flags(pytree, paths, True))

            def of_selected(selected: Any, rest: Any) -> Any:
                return func(eqx.combine(selected, rest), *args, **func_kwargs)

            return transform(of_selected, **kwargs)(selected, rest)

        return differentiated

    return decorate if fun is None else decorate(fun)


@_deprecated
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


@_deprecated
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


@_deprecated
def apply_updates(model: Any, updates: Any) -> Any:
    """``equinox.apply_updates``: ``model`` plus ``updates``, leaf by leaf, skipping ``None``.

    Returns
    -------
    model : PyTree
        The updated copy.
    """
    return eqx.apply_updates(model, updates)


# ------------------------------------------------------------------------ optimisers


def _is_step(value: Any) -> bool:
    """An integer (not a ``bool``) ``>= 0``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0


def _is_multiplier(value: Any) -> bool:
    """A finite real number (not a ``bool``) ``>= 0``."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    return real and math.isfinite(value) and value >= 0


def _schedule(lr: Any, start: Any, changes: tuple, function: str) -> optax.Schedule:
    """zodiax 0.4's schedule: ``zdx_opt.delay(lr, start)`` one step earlier, rescaled."""
    try:
        delayed = zdx_opt.delay(lr, start)
    except ValueError as err:
        raise ValueError(f"{function}(): {err}") from None
    for change in changes:
        if not (
            isinstance(change, (tuple, list))
            and len(change) == 2
            and _is_step(change[0])
            and _is_multiplier(change[1])
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


@_deprecated
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


@_deprecated
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


@_deprecated
def adam(lr: float, start: int, *changes: tuple[int, float]) -> optax.GradientTransformation:
    """``optax.adam`` at the rate of :func:`scheduler`.

    Returns
    -------
    optimiser : optax.GradientTransformation

    Raises
    ------
    ValueError
        As :func:`scheduler`.
    """
    return optax.adam(_schedule(lr, start, changes, "adam"))


def _dotted(path: Any) -> str:
    """A path as the dotted name that ``zdx_opt.map_optimisers`` matches."""
    return ".".join(str(key) for key in _keys(path))


@_deprecated
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
        groups, optimisers = [_flat_paths(parameters, function)], [optimisers]
    elif isinstance(optimisers, (list, tuple)):
        several = isinstance(parameters, list) or type(parameters) is tuple  # not a Path
        entries = parameters if several else [parameters]
        groups = [_flat_paths(entry, function) for entry in entries]
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
    _refuse_repeats(paths, function)
    arrays = eqx.filter(_set_array(pytree, paths, function), eqx.is_array)
    named = {tuple(_dotted(p) for p in group): o for group, o in zip(groups, optimisers)}
    return zdx_opt.map_optimisers(arrays, named)


# ---------------------------------------------------------------- Fisher information


def _finite(x: jax.Array, message: str) -> jax.Array:
    """``x``, raising ``ValueError(message)`` if it has a NaN or inf (at run time under jit)."""
    bad = ~jnp.all(jnp.isfinite(x))
    if isinstance(bad, jax.core.Tracer):
        return eqx.error_if(x, bad, message)
    if bad:
        raise ValueError(message)
    return x


def _shift_shape(path: Any, value: Any, shape_dict: dict, function: str) -> tuple:
    """The shape of the shift added to ``value``: its own, or ``shape_dict[path]``."""
    if path not in shape_dict:
        return tuple(jnp.shape(value))
    shape = shape_dict[path]
    shape = (shape,) if isinstance(shape, numbers.Integral) else shape
    ok = isinstance(shape, (tuple, list)) and all(_is_step(n) and n >= 1 for n in shape)
    try:
        ok = ok and jnp.broadcast_shapes(jnp.shape(value), tuple(shape)) == jnp.shape(value)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"{function}(): shape_dict[{path!r}] = {shape!r} does not broadcast onto the "
            f"parameter's shape {tuple(jnp.shape(value))}; give a tuple of positive integers "
            "that broadcasting stretches to it, such as (1,) for one shift of every element."
        )
    return tuple(int(n) for n in shape)


def _loglike_of_shifts(shifts: list, data: tuple) -> jax.Array:
    """The log-likelihood with ``shifts`` added to the parameters at ``paths``.

    Module level, with everything in ``data``: zdx_batching then keeps one compiled Hessian
    per log-likelihood, structure and shapes, and takes the arrays of ``data`` as inputs.
    """
    loglike_fn, paths, pytree, args, kwargs = data
    return loglike_fn(zdx_base.add(pytree, list(paths), shifts), *args, **dict(kwargs))


def _fisher(
    pytree: Any,
    parameters: Any,
    loglike_fn: Callable,
    args: tuple,
    kwargs: dict,
    shape_dict: dict | None,
    save_memory: bool,
    function: str,
) -> jax.Array:
    """Minus the Hessian of ``loglike_fn`` in the shifts added to the parameters, from
    ``zdx_batching.hessian`` (compiled once per log-likelihood, structure and shapes)."""
    if not callable(loglike_fn):
        raise TypeError(
            f"{function}(): `loglike_fn` must be a function of the pytree, got {loglike_fn!r}."
        )
    paths = _flat_paths(parameters, function)
    if not paths:
        raise ValueError(f"{function}(): `parameters` is empty; name at least one parameter.")
    _refuse_repeats(paths, function)
    if not isinstance(shape_dict, (dict, type(None))):
        raise TypeError(
            f"{function}(): `shape_dict` must be a dict of path to shape, got {shape_dict!r}."
        )
    shifts = []
    for path in paths:
        value = zdx_base.get(pytree, path, to_array=False)
        if not _is_numeric(value):
            raise TypeError(
                f"{function}(): the parameter {path!r} is a {type(value).__name__}, not an "
                "array or a number; name the arrays inside it, one path each."
            )
        shifts.append(jnp.zeros(_shift_shape(path, value, shape_dict or {}, function)))

    data = (loglike_fn, tuple(paths), pytree, args, tuple(kwargs.items()))
    n = sum(shift.size for shift in shifts)
    try:
        hessian, _ = zdx_batching.hessian(
            _loglike_of_shifts, shifts, n if save_memory else 1, args=data
        )
    except ValueError:
        shape = jnp.shape(jax.eval_shape(lambda s: _loglike_of_shifts(s, data), shifts))
        if shape != ():  # zodiax 0.4 raised TypeError here
            raise TypeError(
                f"{function}(): `loglike_fn` must return a scalar log-likelihood, but it "
                f"returned an array of shape {shape}."
            ) from None
        raise
    return _finite(
        -hessian,
        f"{function}(): the Hessian of the log-likelihood has non-finite entries at the "
        "current parameter values; check that loglike_fn is finite and twice "
        "differentiable there.",
    )


@_deprecated
def fisher_matrix(
    pytree: Any,
    parameters: Any,
    loglike_fn: Callable,
    *loglike_args: Any,
    shape_dict: dict | None = None,
    save_memory: bool = False,
    **loglike_kwargs: Any,
) -> jax.Array:
    """Minus the Hessian of ``loglike_fn(pytree, *loglike_args, **loglike_kwargs)`` with
    respect to the leaves at ``parameters``, at their current values.

    Rows and columns follow the parameters in the order given, each flattened row-major.
    ``shape_dict={path: shape}`` differentiates with respect to a shift of that shape
    broadcast onto the parameter (``(1,)``: one shift of every element); keys not in
    ``parameters`` are ignored. ``save_memory=True`` builds the matrix one column at a time.

    Returns
    -------
    fisher : jax.Array
        The ``(n, n)`` Fisher matrix, ``n`` the number of differentiated scalars.

    Raises
    ------
    KeyError
        If a path does not exist in ``pytree``.
    TypeError
        If a path names something other than an array or a number, or ``loglike_fn`` does
        not return a scalar.
    ValueError
        If ``parameters`` is empty or repeats a path, a ``shape_dict`` shape does not
        broadcast onto its parameter, or the Hessian has non-finite entries.
    """
    return _fisher(
        pytree,
        parameters,
        loglike_fn,
        loglike_args,
        loglike_kwargs,
        shape_dict,
        save_memory,
        "fisher_matrix",
    )


@_deprecated
def covariance_matrix(
    pytree: Any,
    parameters: Any,
    loglike_fn: Callable,
    *loglike_args: Any,
    shape_dict: dict | None = None,
    save_memory: bool = False,
    **loglike_kwargs: Any,
) -> jax.Array:
    """The inverse of :func:`fisher_matrix` (same arguments): the Laplace covariance.

    Returns
    -------
    covariance : jax.Array
        The ``(n, n)`` covariance matrix.

    Raises
    ------
    KeyError, TypeError, ValueError
        As :func:`fisher_matrix`; also ``ValueError`` when the Fisher matrix is singular.
    """
    fisher = _fisher(
        pytree,
        parameters,
        loglike_fn,
        loglike_args,
        loglike_kwargs,
        shape_dict,
        save_memory,
        "covariance_matrix",
    )
    return _finite(
        jnp.linalg.inv(fisher),
        "covariance_matrix(): the Fisher matrix is singular, so it has no inverse; some "
        "parameters are not constrained by the log-likelihood (fix them or drop them from "
        "`parameters`).",
    )
