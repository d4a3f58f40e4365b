"""Names that zodiax 0.4 offered and zodiax 0.5 removed, kept working with a warning.

Every function here behaves as its zodiax 0.4 namesake and emits a ``DeprecationWarning``
that names what to use instead. They take parameter paths (``"a.b.c"``, a
``zdx_base.Path`` or a nested list of those) and work on any pytree, not only on
``zodiax.Base``.
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import zdx_base
import zdx_batching

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


def _warn(name: str) -> None:
    """Emit the deprecation warning of ``name``, pointing at the caller's line."""
    replacement = REPLACEMENTS[name][1].replace("`", "")
    warnings.warn(
        f"zodiax.{name} is deprecated since zodiax 0.5 and will be removed in a future "
        f"release; use {replacement} instead.",
        DeprecationWarning,
        stacklevel=3,
    )


def _note_replacement(function: Callable) -> Callable:
    """Append the ``.. deprecated::`` note, from :data:`REPLACEMENTS`, to the docstring."""
    replacement = REPLACEMENTS[function.__name__][1].replace("`", "``")
    function.__doc__ = (function.__doc__ or "").rstrip() + (
        f"\n\n    .. deprecated:: 0.5\n        Use {replacement}.\n"
    )
    return function


# --------------------------------------------------------------------------- paths


def _flat_paths(parameters: Any, function: str) -> list[Any]:
    """A flat list of the paths in ``parameters`` (a path or a nested list of paths)."""
    if isinstance(parameters, (str, zdx_base.Path)):
        return [parameters]
    if isinstance(parameters, (list, tuple)):
        out: list[Any] = []
        for entry in parameters:
            out.extend(_flat_paths(entry, function))
        return out
    raise TypeError(
        f"{function}(): `parameters` must be a path like 'a.b', a zdx_base.Path, or a "
        f"(nested) list of those; got {parameters!r} of type {type(parameters).__name__}."
    )


def _check_unique(paths: list[Any], function: str) -> None:
    seen = set()
    for path in paths:
        if path in seen:
            raise ValueError(
                f"{function}(): the path {path!r} is given more than once in `parameters`; "
                "give each parameter once."
            )
        seen.add(path)


def _is_numeric(leaf: Any) -> bool:
    """A number, or an array (or numpy scalar) of booleans or numbers."""
    if isinstance(leaf, (bool, numbers.Number)):
        return True
    dtype = getattr(leaf, "dtype", None)
    if dtype is None or not hasattr(leaf, "shape"):
        return False
    return bool(jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_))


def _as_float(leaf: Any) -> Any:
    """A numeric leaf as a float (or complex) jax array; any other leaf unchanged."""
    if not _is_numeric(leaf):
        return leaf
    if not hasattr(leaf, "dtype"):  # a Python number
        return jnp.asarray(leaf, dtype=complex if isinstance(leaf, complex) else float)
    if jnp.issubdtype(leaf.dtype, jnp.inexact):
        return jnp.asarray(leaf)
    return jnp.asarray(leaf, dtype=float)


def _set_array(pytree: Any, paths: list[Any], function: str) -> Any:
    values = []
    for path in paths:
        value = zdx_base.get(pytree, path, to_array=False)
        is_leaf = value is not None and jax.tree_util.treedef_is_leaf(jax.tree.structure(value))
        if is_leaf and not _is_numeric(value):
            raise TypeError(
                f"{function}(): the parameter {path!r} is a {type(value).__name__}, not a "
                "number or an array, so it cannot be made a float array."
            )
        values.append(jax.tree.map(_as_float, value))
    return zdx_base.set(pytree, paths, values)


def _boolean_filter(pytree: Any, paths: list[Any], inverse: bool) -> Any:
    flags = jax.tree.map(lambda _: bool(inverse), pytree)
    return zdx_base.set(flags, paths, not inverse)


@_note_replacement
def boolean_filter(pytree: Any, parameters: Any, inverse: bool = False) -> Any:
    """A tree of booleans shaped like ``pytree``: ``True`` at ``parameters``, else ``False``.

    The result is an equinox filter specification: ``equinox.partition(pytree,
    boolean_filter(pytree, paths))`` splits the named parameters from the rest. A path that
    names a sub-tree (a layer, a dict) puts a single ``True`` there, which selects the whole
    sub-tree.

    Parameters
    ----------
    pytree : PyTree
        Any pytree: an equinox module, a dict, a list.
    parameters : str | zdx_base.Path | list
        A path, or a (nested) list of paths.
    inverse : bool, default False
        Swap the booleans: ``False`` at ``parameters`` and ``True`` elsewhere.

    Returns
    -------
    filter : PyTree
        ``pytree`` with ``bool`` at every leaf.

    Raises
    ------
    KeyError
        If a path does not exist in ``pytree``.
    TypeError
        If ``parameters`` is not a path or a list of paths.

    Examples
    --------
    >>> boolean_filter({"a": 1.0, "b": {"c": 2.0}}, "b.c")  # doctest: +SKIP
    {'a': False, 'b': {'c': True}}
    """
    _warn("boolean_filter")
    return _boolean_filter(pytree, _flat_paths(parameters, "boolean_filter"), inverse)


@_note_replacement
def set_array(pytree: Any, parameters: Any = None) -> Any:
    """``pytree`` with the numeric leaves at ``parameters`` turned into float arrays.

    Python numbers, numpy values and integer or boolean arrays become jax arrays of the
    default float dtype (``float64`` when ``jax_enable_x64`` is on); float arrays keep their
    dtype and complex values stay complex. A path that names a sub-tree converts every
    numeric leaf in it and leaves the others (strings, functions) alone. Arrays have a
    ``shape`` and are differentiated by the equinox filters, which plain numbers are not.

    Parameters
    ----------
    pytree : PyTree
        Any pytree.
    parameters : str | zdx_base.Path | list | None, default None
        A path, or a (nested) list of paths; ``None`` converts every numeric leaf.

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

    Examples
    --------
    >>> set_array({"n": 3, "name": "star"}, "n")["n"].dtype  # doctest: +SKIP
    dtype('float32')
    """
    _warn("set_array")
    if parameters is None:
        return jax.tree.map(_as_float, pytree)
    return _set_array(pytree, _flat_paths(parameters, "set_array"), "set_array")


# ------------------------------------------------------------------------ transforms


@_note_replacement
def filter_jit(fun: Callable | None = None, **jit_kwargs: Any) -> Callable:
    """``equinox.filter_jit``: compile ``fun``, tracing its arrays and keeping the rest static.

    Usable as ``@filter_jit`` or ``@filter_jit(donate="all")``.

    Parameters
    ----------
    fun : callable, optional
        The function to compile. Leave it out to get a decorator.
    **jit_kwargs
        Passed to ``equinox.filter_jit`` (``donate``).

    Returns
    -------
    compiled : callable
        The compiled function, or a decorator when ``fun`` is not given.
    """
    _warn("filter_jit")
    if fun is None:
        return functools.partial(eqx.filter_jit, **jit_kwargs)
    return eqx.filter_jit(fun, **jit_kwargs)


def _by_paths(
    transform: Callable, function: str, parameters: Any, fun: Callable | None, kwargs: dict
) -> Callable:
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
            selected, rest = eqx.partition(pytree, _boolean_filter(pytree, paths, False))

            def of_selected(selected: Any, rest: Any) -> Any:
                return func(eqx.combine(selected, rest), *args, **func_kwargs)

            return transform(of_selected, **kwargs)(selected, rest)

        return differentiated

    return decorate if fun is None else decorate(fun)


@_note_replacement
def filter_grad(parameters: Any, fun: Callable | None = None, **grad_kwargs: Any) -> Callable:
    """Differentiate a function of a pytree with respect to the leaves at ``parameters`` only.

    The function's first argument is the pytree; it must return a scalar (or
    ``(scalar, aux)`` with ``has_aux=True``). The gradient is a pytree shaped like the
    input, with arrays at ``parameters`` and ``None`` everywhere else, ready for
    :func:`apply_updates` or an optax optimiser from :func:`get_optimiser`. Numeric leaves
    at ``parameters`` are made float arrays first (as :func:`set_array` does), so each
    named parameter gets a gradient.

    Usable as ``@filter_grad("a.b")`` or ``filter_grad("a.b", fun)``.

    Parameters
    ----------
    parameters : str | zdx_base.Path | list
        A path, or a (nested) list of paths, to differentiate with respect to.
    fun : callable, optional
        The function to differentiate; leave it out to get a decorator.
    **grad_kwargs
        Passed to ``equinox.filter_grad`` (``has_aux``).

    Returns
    -------
    grad_fn : callable
        ``grad_fn(pytree, *args, **kwargs)`` returns the gradient (and ``aux``), or a
        decorator when ``fun`` is not given.

    Raises
    ------
    KeyError
        When called, if a path does not exist in the pytree.
    TypeError
        If ``parameters`` is not a path or a list of paths.

    Examples
    --------
    >>> @filter_grad("a")  # doctest: +SKIP
    ... def loss(tree):
    ...     return tree["a"] ** 2 + tree["b"] ** 2
    >>> loss({"a": 3.0, "b": 1.0})  # doctest: +SKIP
    {'a': Array(6., dtype=float32), 'b': None}
    """
    _warn("filter_grad")
    return _by_paths(eqx.filter_grad, "filter_grad", parameters, fun, grad_kwargs)


@_note_replacement
def filter_value_and_grad(
    parameters: Any, fun: Callable | None = None, **grad_kwargs: Any
) -> Callable:
    """Like :func:`filter_grad`, also returning the function's value: ``(value, grads)``.

    With ``has_aux=True`` the result is ``((value, aux), grads)``.

    Parameters
    ----------
    parameters : str | zdx_base.Path | list
        A path, or a (nested) list of paths, to differentiate with respect to.
    fun : callable, optional
        The function to differentiate; leave it out to get a decorator.
    **grad_kwargs
        Passed to ``equinox.filter_value_and_grad`` (``has_aux``).

    Returns
    -------
    value_and_grad_fn : callable
        ``value_and_grad_fn(pytree, *args, **kwargs)`` returns ``(value, grads)``, or a
        decorator when ``fun`` is not given.

    Raises
    ------
    KeyError
        When called, if a path does not exist in the pytree.
    TypeError
        If ``parameters`` is not a path or a list of paths.
    """
    _warn("filter_value_and_grad")
    return _by_paths(
        eqx.filter_value_and_grad, "filter_value_and_grad", parameters, fun, grad_kwargs
    )


@_note_replacement
def apply_updates(model: Any, updates: Any) -> Any:
    """``model`` with ``updates`` added leaf by leaf; leaves whose update is ``None`` stay.

    Parameters
    ----------
    model : PyTree
        The pytree to update.
    updates : PyTree
        A pytree shaped like ``model`` (or with ``None`` in place of any part of it), as
        :func:`filter_grad` and optax optimisers return.

    Returns
    -------
    model : PyTree
        The updated copy.
    """
    _warn("apply_updates")
    return eqx.apply_updates(model, updates)


# ------------------------------------------------------------------------ optimisers


def _check_real(value: Any, name: str, function: str, minimum: float | None = None) -> float:
    ok = not isinstance(value, bool)
    try:
        number = float(value)
    except (TypeError, ValueError):
        ok = False
    if ok and (not math.isfinite(number) or (minimum is not None and number < minimum)):
        ok = False
    if not ok:
        bound = "" if minimum is None else f" >= {minimum}"
        raise ValueError(
            f"{function}(): `{name}` must be a finite real number{bound}, got {value!r}."
        )
    return number


def _check_step(value: Any, name: str, function: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{function}(): `{name}` must be an integer step >= 0, got {value!r}.")
    return int(value)


def _scheduler(lr: Any, start: Any, changes: Sequence[Any], function: str) -> optax.Schedule:
    rate = _check_real(lr, "lr", function)
    begin = _check_step(start, "start", function)
    steps: list[int] = []
    factors: list[float] = []
    for change in changes:
        if not isinstance(change, (tuple, list)) or len(change) != 2:
            raise ValueError(
                f"{function}(): each schedule change must be a (step, multiplier) pair, got "
                f"{change!r}."
            )
        steps.append(_check_step(change[0], "step of a schedule change", function))
        factors.append(_check_real(change[1], "multiplier of a schedule change", function, 0.0))

    def schedule(count: Any) -> jax.Array:
        value = jnp.where(count >= begin, jnp.asarray(rate, dtype=float), 0.0)
        for step, factor in zip(steps, factors):
            value = jnp.where(count >= step, value * factor, value)
        return value

    return schedule


@_note_replacement
def scheduler(lr: float, start: int, *changes: tuple[int, float]) -> optax.Schedule:
    """A learning-rate schedule: zero before step ``start``, then ``lr``, rescaled at steps.

    At step ``count`` the rate is ``lr`` times the product of the multipliers of every
    ``(step, multiplier)`` pair with ``step <= count``, and ``0`` while ``count < start``
    (optax counts the first update as step 0). Use it to hold parameters still until others
    have settled.

    Parameters
    ----------
    lr : float
        The learning rate from step ``start`` on.
    start : int
        The first step with a non-zero rate (``>= 0``).
    *changes : tuple[int, float]
        ``(step, multiplier)`` pairs; the multipliers must be finite and ``>= 0``.

    Returns
    -------
    schedule : optax.Schedule
        A function of the step count, to pass as an optax learning rate.

    Raises
    ------
    ValueError
        If ``lr`` is not finite, a step is not an integer ``>= 0``, or a change is not a
        ``(step, multiplier)`` pair with a finite multiplier ``>= 0``.

    Examples
    --------
    >>> schedule = scheduler(0.1, 5, (10, 0.5))  # doctest: +SKIP
    >>> [float(schedule(step)) for step in (0, 5, 10)]  # doctest: +SKIP
    [0.0, 0.1, 0.05]
    """
    _warn("scheduler")
    return _scheduler(lr, start, changes, "scheduler")


@_note_replacement
def sgd(lr: float, start: int, *changes: tuple[int, float]) -> optax.GradientTransformation:
    """``optax.sgd`` with Nesterov momentum 0.6 and the learning rate of :func:`scheduler`.

    The rate is zero before step ``start``; the momentum still accumulates the gradients
    of those steps, as it did in zodiax 0.4.

    Parameters
    ----------
    lr : float
        The learning rate from step ``start`` on.
    start : int
        The first step with a non-zero rate (``>= 0``).
    *changes : tuple[int, float]
        ``(step, multiplier)`` pairs rescaling the rate, as in :func:`scheduler`.

    Returns
    -------
    optimiser : optax.GradientTransformation

    Raises
    ------
    ValueError
        As :func:`scheduler`.
    """
    _warn("sgd")
    return optax.sgd(_scheduler(lr, start, changes, "sgd"), momentum=0.6, nesterov=True)


@_note_replacement
def adam(lr: float, start: int, *changes: tuple[int, float]) -> optax.GradientTransformation:
    """``optax.adam`` with the learning rate of :func:`scheduler` (zero before ``start``).

    Parameters
    ----------
    lr : float
        The learning rate from step ``start`` on.
    start : int
        The first step with a non-zero rate (``>= 0``).
    *changes : tuple[int, float]
        ``(step, multiplier)`` pairs rescaling the rate, as in :func:`scheduler`.

    Returns
    -------
    optimiser : optax.GradientTransformation

    Raises
    ------
    ValueError
        As :func:`scheduler`.
    """
    _warn("adam")
    return optax.adam(_scheduler(lr, start, changes, "adam"))


def _is_transformation(obj: Any) -> bool:
    return callable(getattr(obj, "init", None)) and callable(getattr(obj, "update", None))


@_note_replacement
def get_optimiser(pytree: Any, parameters: Any, optimisers: Any) -> tuple[Any, Any]:
    """One optax optimiser per parameter (or group of parameters); every other leaf frozen.

    ``parameters[i]`` (a path, or a list of paths sharing one optimiser) is optimised by
    ``optimisers[i]``. Every other leaf gets a zero update. Numeric leaves at
    ``parameters`` are made float arrays (as :func:`set_array` does) before the state is
    built, so give the optimiser the gradients of :func:`filter_grad` (or
    :func:`filter_value_and_grad`) over the same ``parameters``, and apply its updates with
    :func:`apply_updates`.

    Parameters
    ----------
    pytree : PyTree
        The model to optimise.
    parameters : str | zdx_base.Path | list
        A path, or a list whose entries are paths or lists of paths.
    optimisers : optax.GradientTransformation | list
        One optimiser per entry of ``parameters``. A single optimiser (not in a list) is
        used for every path in ``parameters``.

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
        If the number of optimisers differs from the number of entries of ``parameters``,
        or a path is given twice.

    Examples
    --------
    >>> model = {"a": 1.0, "b": 2.0}
    >>> optim, state = get_optimiser(model, ["a"], [sgd(0.1, 0)])  # doctest: +SKIP
    """
    _warn("get_optimiser")
    if _is_transformation(optimisers):
        groups = [_flat_paths(parameters, "get_optimiser")]
        optimisers = [optimisers]
    else:
        if not isinstance(optimisers, (list, tuple)):
            raise TypeError(
                "get_optimiser(): `optimisers` must be an optax GradientTransformation or a "
                f"list of them, got {optimisers!r} of type {type(optimisers).__name__}."
            )
        is_list = isinstance(parameters, (list, tuple)) and not isinstance(
            parameters, zdx_base.Path
        )
        entries = parameters if is_list else [parameters]
        groups = [_flat_paths(entry, "get_optimiser") for entry in entries]
        if len(groups) != len(optimisers):
            raise ValueError(
                f"get_optimiser(): got {len(groups)} entries in `parameters` ({parameters!r}) "
                f"but {len(optimisers)} optimisers; give one optimiser per entry (an entry "
                "may be a list of paths that share an optimiser)."
            )
    for i, optimiser in enumerate(optimisers):
        if not _is_transformation(optimiser):
            raise TypeError(
                f"get_optimiser(): optimiser {i} must be an optax GradientTransformation "
                f"(with init and update), got {optimiser!r}."
            )
    paths = [path for group in groups for path in group]
    _check_unique(paths, "get_optimiser")

    labels = jax.tree.map(lambda _: "frozen", pytree)
    transforms: dict[str, Any] = {"frozen": optax.set_to_zero()}
    for i, (group, optimiser) in enumerate(zip(groups, optimisers)):
        label = f"group {i}"
        labels = zdx_base.set(labels, group, label)
        transforms[label] = optimiser

    optimiser = optax.multi_transform(transforms, labels)
    arrays = eqx.filter(_set_array(pytree, paths, "get_optimiser"), eqx.is_array)
    return optimiser, optimiser.init(arrays)


# ---------------------------------------------------------------- Fisher information


def _fail_if_not_finite(x: jax.Array, message: str) -> jax.Array:
    bad = ~jnp.all(jnp.isfinite(x))
    try:
        is_bad = bool(bad)
    except jax.errors.ConcretizationTypeError:  # traced, under jit: check at run time
        return eqx.error_if(x, bad, message)
    if is_bad:
        raise ValueError(message)
    return x


def _perturbation_shape(path: Any, value: Any, shape_dict: dict, function: str) -> tuple:
    if path not in shape_dict:
        return tuple(jnp.shape(value))
    shape = shape_dict[path]
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (int(shape),)
    if not isinstance(shape, (tuple, list)) or not all(
        isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1 for n in shape
    ):
        raise ValueError(
            f"{function}(): shape_dict[{path!r}] must be a shape (a tuple of positive "
            f"integers), got {shape!r}."
        )
    shape = tuple(int(n) for n in shape)
    try:
        broadcast = jnp.broadcast_shapes(jnp.shape(value), shape)
    except ValueError:
        broadcast = None
    if broadcast != tuple(jnp.shape(value)):
        raise ValueError(
            f"{function}(): shape_dict[{path!r}] = {shape} does not broadcast onto the "
            f"parameter's shape {tuple(jnp.shape(value))}; give a shape that numpy "
            "broadcasting stretches to it, such as (1,) for one shift of every element."
        )
    return shape


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
    if not callable(loglike_fn):
        raise TypeError(
            f"{function}(): `loglike_fn` must be a function of the pytree, got {loglike_fn!r}."
        )
    paths = _flat_paths(parameters, function)
    if not paths:
        raise ValueError(f"{function}(): `parameters` is empty; name at least one parameter.")
    _check_unique(paths, function)
    shape_dict = {} if shape_dict is None else shape_dict
    if not isinstance(shape_dict, dict):
        raise TypeError(
            f"{function}(): `shape_dict` must be a dict of path to shape, got {shape_dict!r}."
        )

    pytree = _set_array(pytree, paths, function)
    values = [zdx_base.get(pytree, path, to_array=False) for path in paths]
    for path, value in zip(paths, values):
        if not (hasattr(value, "shape") and hasattr(value, "dtype")):
            raise TypeError(
                f"{function}(): the parameter {path!r} is a {type(value).__name__}, not an "
                "array; name the arrays inside it, one path each."
            )
    shapes = tuple(_perturbation_shape(p, v, shape_dict, function) for p, v in zip(paths, values))
    hessian = _hessian_of_shift(
        loglike_fn, pytree, tuple(paths), shapes, bool(save_memory), args, kwargs, function
    )
    return _fail_if_not_finite(
        -hessian,
        f"{function}(): the Hessian of the log-likelihood has non-finite entries at the "
        "current parameter values; check that loglike_fn is finite and twice "
        "differentiable there.",
    )


class _ShiftedLoglike(eqx.Module):
    """``loglike_fn`` as a function of one flat vector of shifts added to the parameters.

    A module, so that zdx-batching keeps one compiled Hessian per log-likelihood, tree
    structure, paths and shapes: the arrays it holds are arguments of that program.
    """

    loglike_fn: Callable = eqx.field(static=True)
    pytree: Any
    paths: tuple = eqx.field(static=True)
    shapes: tuple = eqx.field(static=True)
    args: tuple
    kwargs: tuple  # (name, value) pairs: zdx-batching keys a dict field by identity

    def __call__(self, flat: jax.Array) -> jax.Array:
        shifted, start = [], 0
        for path, shape in zip(self.paths, self.shapes):
            value = zdx_base.get(self.pytree, path, to_array=False)
            size = math.prod(shape)
            shift = flat[start : start + size].reshape(shape)
            shifted.append(value + jnp.broadcast_to(shift, value.shape))
            start += size
        return self.loglike_fn(
            zdx_base.set(self.pytree, list(self.paths), shifted), *self.args, **dict(self.kwargs)
        )


def _hessian_of_shift(
    loglike_fn: Callable,
    pytree: Any,
    paths: tuple,
    shapes: tuple,
    save_memory: bool,
    args: tuple,
    kwargs: dict,
    function: str,
) -> jax.Array:
    """The Hessian of the log-likelihood with respect to shifts of the parameters, from
    ``zdx_batching.hessian`` (one column per block when ``save_memory``)."""
    shifted = _ShiftedLoglike(loglike_fn, pytree, paths, shapes, args, tuple(kwargs.items()))
    origin = jnp.zeros(sum(math.prod(shape) for shape in shapes), dtype=float)
    try:
        hessian, _ = zdx_batching.hessian(shifted, origin, origin.size if save_memory else 1)
    except ValueError:
        out = jax.eval_shape(shifted, origin)
        if jnp.shape(out) != ():  # zodiax 0.4 raised TypeError here
            raise TypeError(
                f"{function}(): `loglike_fn` must return a scalar log-likelihood, but it "
                f"returned an array of shape {jnp.shape(out)}."
            ) from None
        raise
    return hessian


@_note_replacement
def fisher_matrix(
    pytree: Any,
    parameters: Any,
    loglike_fn: Callable,
    *loglike_args: Any,
    shape_dict: dict | None = None,
    save_memory: bool = False,
    **loglike_kwargs: Any,
) -> jax.Array:
    """The Fisher information of ``loglike_fn`` with respect to the leaves at ``parameters``.

    The matrix is minus the Hessian of ``loglike_fn(pytree, *loglike_args,
    **loglike_kwargs)`` with respect to the parameters, evaluated at their current values.
    Its rows and columns follow the parameters in the order given, each array flattened
    in row-major order (a scalar takes one row).

    ``shape_dict`` changes what is differentiated: ``shape_dict={"wfe": (1,)}``
    differentiates with respect to one shift added to every element of ``"wfe"`` rather
    than to each element. The shape must broadcast onto the parameter's shape; keys that
    are not in ``parameters`` are ignored.

    Parameters
    ----------
    pytree : PyTree
        The model, passed as the first argument of ``loglike_fn``.
    parameters : str | zdx_base.Path | list
        A path, or a (nested) list of paths, each naming an array or a number.
    loglike_fn : callable
        ``loglike_fn(pytree, *loglike_args, **loglike_kwargs)``, returning a scalar.
    *loglike_args
        Further positional arguments of ``loglike_fn`` (the data).
    shape_dict : dict, optional
        ``{path: shape}`` for parameters to differentiate through a broadcast shift.
    save_memory : bool, default False
        Build the matrix one column at a time from Hessian-vector products, keeping the
        memory of one column instead of the whole Hessian computation.
    **loglike_kwargs
        Further keyword arguments of ``loglike_fn``.

    Returns
    -------
    fisher : jax.Array
        The ``(n, n)`` Fisher matrix, ``n`` the number of differentiated scalars.

    Raises
    ------
    KeyError
        If a path does not exist in ``pytree``.
    TypeError
        If a path names something other than an array or a number, or ``loglike_fn``
        does not return a scalar.
    ValueError
        If ``parameters`` is empty or repeats a path, a ``shape_dict`` shape does not
        broadcast onto its parameter, or the Hessian has non-finite entries.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> def loglike(model, data):
    ...     return -0.5 * jnp.sum((data - model["mean"]) ** 2)
    >>> fisher_matrix({"mean": 0.0}, "mean", loglike, jnp.ones(4))  # doctest: +SKIP
    Array([[4.]], dtype=float32)
    """
    _warn("fisher_matrix")
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


@_note_replacement
def covariance_matrix(
    pytree: Any,
    parameters: Any,
    loglike_fn: Callable,
    *loglike_args: Any,
    shape_dict: dict | None = None,
    save_memory: bool = False,
    **loglike_kwargs: Any,
) -> jax.Array:
    """The inverse of :func:`fisher_matrix`: the Laplace covariance of ``parameters``.

    Takes the same arguments as :func:`fisher_matrix`.

    Returns
    -------
    covariance : jax.Array
        The ``(n, n)`` covariance matrix.

    Raises
    ------
    ValueError
        As :func:`fisher_matrix`, and when the Fisher matrix is singular (its inverse is
        not finite).
    """
    _warn("covariance_matrix")
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
    return _fail_if_not_finite(
        jnp.linalg.inv(fisher),
        "covariance_matrix(): the Fisher matrix is singular, so it has no inverse; some "
        "parameters are not constrained by the log-likelihood (fix them or drop them from "
        "`parameters`).",
    )
