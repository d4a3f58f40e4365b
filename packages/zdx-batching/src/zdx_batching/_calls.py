"""The zodiax calls: ``hessian(f, x, nbatches)`` and its siblings over the transforms.

A call checks its arguments, captures ``(f, args)`` under the family's rule
(``_reuse.capture``: arrays become inputs, everything else is compared by equality),
and calls the transform held for its options with the capture as its ``args``. JAX's own
cache of that transform's ``jax.jit`` then decides reuse: a new ``lambda`` of the same
code and equal captures runs the program compiled for the first one, anything the rule
cannot prove unchanged traces again. The call adds what a user of a Hessian wants and a
transform leaves out: the float32 warning, the NaN/inf warning and ``unflatten``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import jax

from ._checks import check_callable, check_flag, check_nbatches, parse_memory
from ._columns import (
    Columns,
    DiagonalColumns,
    FisherColumns,
    HessianColumns,
    HvpColumns,
    JacobianColumns,
)
from ._flat import flat_vector, layout_of, make_unflatten
from ._precision import warn_if_float32, warn_if_not_finite
from ._program import is_finite
from ._reuse import NEEDS_VALUES, Captured, capture
from ._transforms import HvpTransform, Transform

_MAX_TRANSFORMS = 64  # transforms held for the calls: one per kind and options
_lock = threading.Lock()
_counts = {"calls": 0, "traces": 0}
# Keys of captures whose arrays had to be baked in: their next calls bake at once
# instead of failing to trace first (bounded; forgetting costs one failed trace).
_baked: dict = {}
_MAX_BAKED = 256


def _count_trace() -> None:
    with _lock:
        _counts["traces"] += 1


def _call_pair(x: Any, captured: Captured) -> Any:
    """``f(x)`` or ``f(x, args)`` for the captured pair ``(f, args)``."""
    f, args = captured.function
    return f(x) if args is None else f(x, args)


_KINDS = {
    "hessian": (HessianColumns(), Transform),
    "hessian_diagonal": (DiagonalColumns(), Transform),
    "jacobian": (JacobianColumns(), Transform),
    "fisher": (FisherColumns(), Transform),
    "hvp": (HvpColumns(), HvpTransform),
}


@functools.lru_cache(maxsize=_MAX_TRANSFORMS)
def _held(kind: str, nbatches: Any, limit: Any, checkpoint: bool, progress: bool, devices: tuple):
    """The transform that the calls of ``kind`` with these options share."""
    return _fresh(kind, nbatches, limit, checkpoint, progress, devices)


def _fresh(kind, nbatches, limit, checkpoint, progress, devices) -> Transform:
    columns, transform = _KINDS[kind]
    options = {"checkpoint": checkpoint, "devices": devices, "on_trace": _count_trace}
    if transform is not HvpTransform:
        options.update(nbatches=nbatches, max_memory=limit, progress=progress)
    return transform(columns, _call_pair, **options)


def _run(kind: str, f, x, nbatches, jit, checkpoint, args, max_memory, progress, v=None):
    """Check the call, run it and warn: the result and ``x``'s layout."""
    columns = _KINDS[kind][0]
    check_callable(kind, f)
    check_flag(kind, "jit", jit)
    check_flag(kind, "checkpoint", checkpoint)
    check_flag(kind, "progress", progress)
    layout, leaves = layout_of(kind, x)
    if v is not None:
        flat_vector(kind, layout, v)  # checked here, with the call's name
    nbatches = check_nbatches(kind, nbatches, 1 if v is not None else layout.n)
    limit = parse_memory(kind, max_memory)
    if limit is not None and not jit:
        raise ValueError(
            f"{kind}: max_memory={max_memory!r} needs jit=True (the block size comes from "
            "the compiled program's memory analysis); with jit=False choose nbatches."
        )
    if columns.second_order:
        warn_if_float32(kind)
    if not jit or any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
        # Op by op, or inside someone else's trace (which compiles): on one device.
        traced = bool(jit)
        devices = (jax.devices()[0],)
        transform = _fresh(kind, nbatches, None, checkpoint, progress and not traced, devices)
        pair = Captured.unique((f, args), "not compiled")
        if traced:
            return transform.program()(x, pair, v), layout
        result = transform.with_bar(transform.program(), x, pair, v)
        return _checked(columns, result), layout
    captured = capture((f, args))
    if captured.leaves and captured.key in _baked:
        captured = capture((f, args), bake=True)
    options = (kind, nbatches, limit, checkpoint, progress, tuple(jax.devices()))
    with _lock:
        _counts["calls"] += 1
    try:
        result = _transform_for(captured, options)._call(x, captured, v)
    except NEEDS_VALUES:
        if not captured.leaves:
            raise
        # f needs the values of arrays it captures: bake them in, keyed by their bytes.
        if len(_baked) >= _MAX_BAKED:
            _baked.clear()
        _baked[captured.key] = True
        captured = capture((f, args), bake=True)
        result = _transform_for(captured, options)._call(x, captured, v)
    return _checked(columns, result), layout


def _transform_for(captured: Captured, options: tuple) -> Transform:
    """The held transform of ``options``, or a fresh one (traced afresh and never kept)
    when the rule cannot prove ``captured`` unchanged."""
    return _held(*options) if captured.reusable else _fresh(*options)


def _checked(columns: Columns, result: Any) -> Any:
    """``result``, after warning if it holds NaN or inf (unless it is traced)."""
    leaf = jax.tree_util.tree_leaves(result)[0]
    if isinstance(leaf, jax.core.Tracer):  # f captured an outer trace's values
        return result
    finite = is_finite(columns, leaf)
    if not finite:
        warn_if_not_finite(columns.name, finite)
    return result


def clear_cache() -> None:
    """Forget the programs that :func:`hessian`, :func:`jacobian`, :func:`fisher`,
    :func:`hessian_diagonal` and :func:`hvp` compiled, and reset :func:`cache_info`.

    The next call traces and compiles again. Transforms held by the user (``hessian_fn``)
    keep their own programs, as ``jax.jit`` does.

    Examples
    --------
    >>> import zdx_batching
    >>> zdx_batching.clear_cache()
    """
    _held.cache_clear()
    _baked.clear()
    with _lock:
        _counts.update(calls=0, traces=0)


def cache_info() -> dict:
    """How the calls used their programs since the last :func:`clear_cache`.

    Returns
    -------
    A dict: ``"entries"`` (transforms held, one per kind and options), ``"max_entries"``,
    ``"misses"`` (programs traced and compiled) and ``"hits"`` (calls that ran a program
    compiled before).

    Examples
    --------
    >>> import zdx_batching
    >>> sorted(zdx_batching.cache_info())
    ['entries', 'hits', 'max_entries', 'misses']
    """
    with _lock:
        calls, traces = _counts["calls"], _counts["traces"]
    return {
        "entries": _held.cache_info().currsize,
        "max_entries": _MAX_TRANSFORMS,
        "hits": max(calls - traces, 0),
        "misses": traces,
    }


def hessian(
    f,
    x,
    nbatches: int | None = None,
    jit: bool = True,
    checkpoint: bool = False,
    *,
    args: Any = None,
    max_memory: int | str | None = None,
    progress: bool = False,
):
    """The Hessian of a scalar ``f`` at ``x``, computed ``ceil(n / nbatches)`` columns at a time.

    The zodiax call over :func:`hessian_fn`: column ``k`` is the forward-over-reverse
    product ``H e_k``; the blocks run inside one compiled program, spread over all of
    ``jax.devices()``. A new function with the same code and equal captures (the
    package README states the rule) and the same shapes runs the program compiled
    before: no trace, no compile, and never a stale number.

    Parameters
    ----------
    f
        A function of ``x`` (or of ``x, args``) returning a real scalar (e.g. a negative
        log-likelihood).
    x
        The point: any pytree (dict, list, tuple, ``equinox.Module``...) whose leaves are
        floating-point arrays or floats. Its ``n`` scalars are ordered as by
        ``jax.flatten_util.ravel_pytree``.
    nbatches
        How many blocks the ``n`` columns are split into (``1 <= nbatches <= n``; ``n``
        need not be a multiple). More blocks, less peak memory. ``None`` (the default)
        lets the library choose from the shapes of the program, the same way on every
        run: on one CPU device, blocks of four columns when each column makes values much
        larger than itself (they then stay in cache, often twice as fast), else every
        column at once, as ``jax.hessian``; elsewhere every column at once (one block per
        device). ``nbatches=1`` on one device is always every column at once.
    jit
        Compile (and cache) the whole computation. ``jit=False`` runs it op by op, for
        debugging; nothing is cached then.
    checkpoint
        Wrap ``f`` in ``jax.checkpoint``: recompute the forward pass instead of storing
        it, less memory for more computation.
    args
        Data for ``f``, any pytree (arrays, numbers, ``equinox`` modules...): given, ``f``
        is called as ``f(x, args)`` (optimistix's convention). Its arrays are inputs of
        the compiled program, so new data of the same shapes runs the same program.
        Keyword only; ``None`` (the default) calls ``f(x)``.
    max_memory
        A bound on the bytes one device may use, as a number or a string such as
        ``"2GB"`` or ``"512MiB"``: the block size is chosen from the compiled program's
        memory analysis (with at least ``nbatches`` blocks). Needs ``jit=True``.
    progress
        Show a ``tqdm`` progress bar over the column blocks.

    Returns
    -------
    H
        The ``(n, n)`` Hessian in flat coordinates, as ``jax.hessian`` of ``f`` on the
        flat parameters.
    unflatten
        Maps a flat vector of ``n`` numbers (a row, a column, a diagonal) back to the
        structure of ``x``. :func:`hessian_to_pytree` gives the whole matrix as blocks.

    Raises
    ------
    TypeError
        If ``f`` is not callable, a leaf of ``x`` is not a floating-point array or float,
        or ``f`` does not return a floating-point array.
    ValueError
        If ``f`` does not return a scalar, ``nbatches`` is below 1 or above ``n``, or
        ``max_memory`` is malformed or too small for one column.

    Warns
    -----
    UserWarning
        Once per process, when float64 is disabled (float32 second derivatives are often
        NaN or inaccurate).
    RuntimeWarning
        When the result contains NaN or inf.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> x = {"a": jnp.array([1.0, 2.0]), "b": 3.0}
    >>> f = lambda p: jnp.sum(p["a"] ** 2) * p["b"]
    >>> H, unflatten = hessian(f, x, nbatches=2)
    >>> H.shape
    (3, 3)
    >>> unflatten(H[0])["b"]
    Array(2., dtype=float64)
    """
    result, layout = _run("hessian", f, x, nbatches, jit, checkpoint, args, max_memory, progress)
    return result, make_unflatten(layout)


def hessian_diagonal(
    f: Callable[[Any], Any],
    x: Any,
    nbatches: int | None = None,
    *,
    jit: bool = True,
    checkpoint: bool = False,
    args: Any = None,
    max_memory: int | str | None = None,
    progress: bool = False,
) -> tuple[jax.Array, Callable[[Any], Any]]:
    """The diagonal of the Hessian of a scalar ``f`` at ``x``, without the full matrix.

    Each diagonal entry needs one Hessian-vector product, so the work is that of
    :func:`hessian`, but only ``n`` numbers are kept instead of ``n * n``: the memory of a
    block of products plus the output.

    Parameters
    ----------
    f, x, nbatches, jit, checkpoint, args, max_memory, progress
        As in :func:`hessian`.

    Returns
    -------
    diagonal
        The ``(n,)`` vector ``H[k, k]`` in flat coordinates.
    unflatten
        Maps it (or any flat vector of ``n`` numbers) back to the structure of ``x``.

    Raises
    ------
    TypeError, ValueError
        As in :func:`hessian`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> d, unflatten = hessian_diagonal(lambda p: jnp.sum(p ** 3), jnp.array([1.0, 2.0]))
    >>> d
    Array([ 6., 12.], dtype=float64)
    """
    result, layout = _run(
        "hessian_diagonal", f, x, nbatches, jit, checkpoint, args, max_memory, progress
    )
    return result, make_unflatten(layout)


def jacobian(
    f: Callable[[Any], Any],
    x: Any,
    nbatches: int | None = None,
    jit: bool = True,
    checkpoint: bool = False,
    *,
    args: Any = None,
    max_memory: int | str | None = None,
    progress: bool = False,
) -> tuple[jax.Array, Callable[[Any], Any]]:
    """The Jacobian of ``f`` at ``x``, computed ``ceil(n / nbatches)`` columns at a time.

    Column ``k`` is the forward-mode product ``J e_k``; ``f`` is linearised once and the
    products of a block are vmapped, every block inside one compiled program. The program
    is cached: calling again with the same function (or a new function with the same code
    and captures, see the package README) and the same shapes neither traces nor compiles.

    Parameters
    ----------
    f
        A function of ``x`` (or of ``x, args``) returning one real floating-point array
        of any shape.
    x, nbatches, jit, checkpoint, args, max_memory, progress
        As in :func:`hessian`.

    Returns
    -------
    J
        An array of shape ``(*f(x).shape, n)``, equal to ``jax.jacfwd`` of ``f`` on the
        flat parameters.
    unflatten
        Maps a flat vector of ``n`` numbers back to the structure of ``x``.

    Raises
    ------
    TypeError, ValueError
        As in :func:`hessian`, except that ``f`` may return an array of any shape.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> x = {"a": jnp.array([1.0, 2.0]), "b": 3.0}
    >>> J, unflatten = jacobian(lambda p: p["a"] * p["b"], x, nbatches=2)
    >>> J.shape
    (2, 3)
    """
    result, layout = _run("jacobian", f, x, nbatches, jit, checkpoint, args, max_memory, progress)
    return result, make_unflatten(layout)


def fisher(
    f: Callable[[Any], Any],
    x: Any,
    nbatches: int | None = None,
    *,
    jit: bool = True,
    checkpoint: bool = False,
    args: Any = None,
    max_memory: int | str | None = None,
    progress: bool = False,
) -> tuple[jax.Array, Callable[[Any], Any]]:
    """The Fisher information ``F = J^T J`` of a Gaussian likelihood, by forward mode.

    ``f`` returns the model divided by its standard error (the data need not be
    subtracted: it does not change ``J``). For independent Gaussian errors ``sigma``,
    ``F`` is the Fisher information of the log-likelihood and the Gauss-Newton
    approximation of its Hessian: exact in the parameters the model is linear in, and
    needing first derivatives only. The Jacobian ``J`` is built block by block from
    forward-mode products of ``f`` linearised once, then ``J^T J`` is formed, all in one
    cached compiled program: much cheaper than a Hessian of the log-likelihood.

    Parameters
    ----------
    f
        ``x -> model(x) / sigma``: one real floating-point array of any shape.
    x
        As in :func:`hessian`.
    nbatches
        How many blocks the ``n`` columns of ``J`` are split into
        (``1 <= nbatches <= n``). More blocks, less peak memory for the products; the
        whole ``J`` (``f(x).size * n`` numbers) is held once. ``None`` (the default):
        chosen by the library, as in :func:`hessian`.
    jit, checkpoint, args, max_memory, progress
        As in :func:`hessian`.

    Returns
    -------
    F
        The ``(n, n)`` matrix ``J^T J``, symmetric and positive semi-definite.
    unflatten
        Maps a flat vector of ``n`` numbers back to the structure of ``x``.

    Raises
    ------
    TypeError, ValueError
        As in :func:`jacobian`.

    Warns
    -----
    UserWarning
        Once per process, when float64 is disabled.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> t = jnp.linspace(0.0, 1.0, 5)
    >>> sigma = 0.1
    >>> F, unflatten = fisher(lambda p: (p["a"] + p["b"] * t) / sigma, {"a": 0.0, "b": 1.0})
    >>> F.shape
    (2, 2)
    """
    result, layout = _run("fisher", f, x, nbatches, jit, checkpoint, args, max_memory, progress)
    return result, make_unflatten(layout)


def hvp(
    f: Callable[[Any], Any],
    x: Any,
    v: Any,
    *,
    jit: bool = True,
    checkpoint: bool = False,
    args: Any = None,
) -> Any:
    """The Hessian-vector product ``H(x) v`` of a scalar ``f``, without forming ``H``.

    Computed forward-over-reverse (``jax.jvp`` of ``jax.grad(f)``) in one cached
    compiled program, at about the cost of two gradients: the same machinery as
    :func:`hessian`, with one column whose tangent is ``v``.

    Parameters
    ----------
    f, x
        As in :func:`hessian`.
    v
        The vector: a pytree with the structure and leaf shapes of ``x``, or a flat
        array of shape ``(n,)`` in ``ravel_pytree`` order.
    jit, checkpoint, args
        As in :func:`hessian`.

    Returns
    -------
    ``H v`` in the form ``v`` was given: a pytree like ``x``, or a flat ``(n,)`` array.

    Raises
    ------
    TypeError, ValueError
        As in :func:`hessian`, and if ``v`` has neither form.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> f = lambda p: jnp.sum(p["a"] ** 2) + p["a"][0] * p["b"]
    >>> x = {"a": jnp.array([1.0, 2.0]), "b": 3.0}
    >>> hvp(f, x, {"a": jnp.array([1.0, 0.0]), "b": 0.0})["b"]
    Array(1., dtype=float64)
    """
    result, _ = _run("hvp", f, x, None, jit, checkpoint, args, None, False, v=v)
    return result
