"""The zodiax-style calls over the structured-curvature transforms.

``sparse_jacobian(f, x)`` (and ``sparse_hessian``, ``sparse_fisher``) find or reuse the
transform held for their options, run it on the capture of ``(f, args)`` (the family's
reuse rule: the pattern and program are kept for a function of the same code and equal
captures) and raise :class:`SparsityError` when the result's check fails, after finding the
pattern afresh once. ``find_sparsity`` returns a pattern to pass on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from ._calls import _call_pair
from ._checks import check_callable, check_parameters
from ._reuse import NEEDS_VALUES, Captured, capture
from ._sparse import DEFAULT_CHECKS, SparseTransform
from ._sparse_matrix import SparseMatrix
from ._sparsity import (
    DEFAULT_DENSE_SIZE,
    Sparsity,
    SparsityError,
    build_sparsity,
    check_declare,
    check_dense_size,
    leaf_paths,
)
from ._transforms import _devices

_MAX_HELD = 32


def _declare_key(declare: Any) -> Any:
    """A hashable key for ``declare``, or ``None`` when it holds arrays (not kept)."""
    if declare is None:
        return ()
    if not isinstance(declare, Mapping) or not all(isinstance(v, str) for v in declare.values()):
        return None
    return tuple(sorted(declare.items()))


@functools.lru_cache(maxsize=_MAX_HELD)
def _held(kind: str, declare: tuple, dense_size: int, nbatches: Any, checks: int, devices):
    return SparseTransform(
        kind,
        _call_pair,
        declare=dict(declare) or None,
        dense_size=dense_size,
        nbatches=nbatches,
        checks=checks,
        devices=devices,
    )


def _tolerance(name: str, rtol: Any, dtype: Any) -> float:
    if rtol is None:
        return float(np.sqrt(np.finfo(dtype).eps))
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not rtol > 0:
        raise ValueError(f"{name}: rtol must be a positive number or None, got {rtol!r}.")
    return float(rtol)


def _sparse_call(kind, f, x, args, sparsity, declare, dense_size, nbatches, checks, rtol, devices):
    name = f"sparse_{kind}"
    devices = _devices(name, devices)
    check_callable(name, f)
    leaves, _ = check_parameters(name, x)
    dense_size = check_dense_size(name, dense_size)
    check_declare(name, declare, leaf_paths(x))
    if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
        raise TypeError(
            f"{name}: x holds tracers; inside jax.jit, vmap or grad use sparse_{kind}_fn, "
            "whose result carries its own check (SparseMatrix.mismatch)."
        )
    options = dict(
        sparsity=sparsity,
        declare=declare,
        dense_size=dense_size,
        nbatches=nbatches,
        checks=checks,
        devices=devices,
    )
    captured = capture((f, args))
    key = _declare_key(declare)
    if captured.reusable and key is not None and sparsity is None:
        transform = _held(kind, key, dense_size, nbatches, checks, devices)
    else:
        transform = SparseTransform(kind, _call_pair, **options)
    try:
        result = transform(x, captured)
    except NEEDS_VALUES:  # f needs the values of what it captures: no reuse
        captured = Captured.unique((f, args), "needs the values of its captures")
        transform = SparseTransform(kind, _call_pair, **options)
        result = transform(x, captured)
    tolerance = _tolerance(name, rtol, result.data.dtype)
    if float(result.mismatch) > tolerance and transform is not None and sparsity is None:
        # A pattern found for an earlier function of the same code may not fit this one's
        # captured values: find it again before blaming it.
        transform.forget(x, captured)
        result = transform(x, captured)
    if float(result.mismatch) > tolerance:
        raise _wrong_pattern(name, transform, x, captured, float(result.mismatch), tolerance)
    return result


def _wrong_pattern(name, transform, x, captured, mismatch, tolerance) -> SparsityError:
    sparsity = transform.sparsity(x, captured)
    per_leaf = transform.leaf_mismatches(x, captured)
    wrong = {path: value for path, value in per_leaf.items() if value > tolerance}
    described = ", ".join(
        f"{path!r} ({sparsity.sources.get(path, '?')}, mismatch {value:.2g})"
        for path, value in wrong.items()
    )
    return SparsityError(
        f"{name}: the sparsity pattern misses entries of the matrix: products with random "
        f"vectors differ from direct differentiation by {mismatch:.3g} (relative), above "
        f"{tolerance:.3g}. Leaves whose columns are wrong: {described or 'not found alone'}. "
        "Correct or drop their declaration (declare=...), or take them dense."
    )


def sparse_jacobian(
    f: Callable,
    x: Any,
    *,
    args: Any = None,
    sparsity: Sparsity | None = None,
    declare: Mapping | None = None,
    dense_size: int = DEFAULT_DENSE_SIZE,
    nbatches: int | None = None,
    checks: int = DEFAULT_CHECKS,
    rtol: float | None = None,
    devices: Any = None,
) -> SparseMatrix:
    """The Jacobian of ``f`` at ``x`` as a sparse matrix, by colouring.

    The zodiax-style call over :func:`sparse_jacobian_fn`: the pattern is found once for a
    function of the same code and equal captures (the package's reuse rule) and the same
    shapes, and kept with its compiled program. The result is checked against random
    products computed directly; a pattern that misses entries raises
    :class:`SparsityError` (after finding the pattern afresh once, in case it was found
    for an earlier function), never a wrong matrix.

    Parameters
    ----------
    f, x
        As in :func:`jacobian` (``f`` called as ``f(x)``, or ``f(x, args)`` when ``args``
        is given).
    args
        Data for ``f`` (keyword only), as in :func:`jacobian`.
    sparsity, declare, dense_size, nbatches, checks, devices
        As in :func:`sparse_jacobian_fn`.
    rtol
        The largest mismatch accepted, relative to the largest entry of ``|M| |v|``;
        ``None`` (the default): the square root of the dtype's machine epsilon.

    Returns
    -------
    SparseMatrix
        The matrix, with ``names`` for its parameters.

    Raises
    ------
    TypeError, ValueError
        On a bad argument, naming it (``x`` holding tracers: use the transform).
    SparsityError
        When a leaf's pattern cannot be detected (declare it), or the pattern misses
        entries.
    """
    return _sparse_call(
        "jacobian", f, x, args, sparsity, declare, dense_size, nbatches, checks, rtol, devices
    )


def sparse_hessian(
    f: Callable,
    x: Any,
    *,
    args: Any = None,
    sparsity: Sparsity | None = None,
    declare: Mapping | None = None,
    dense_size: int = DEFAULT_DENSE_SIZE,
    nbatches: int | None = None,
    checks: int = DEFAULT_CHECKS,
    rtol: float | None = None,
    devices: Any = None,
) -> SparseMatrix:
    """The Hessian of a scalar ``f`` at ``x`` as a sparse matrix, by colouring.

    The zodiax-style call over :func:`sparse_hessian_fn`, found, kept and checked as
    :func:`sparse_jacobian` describes; the same arguments (``f``, ``x`` and ``args`` as in
    :func:`hessian`) and the same errors.

    Returns
    -------
    SparseMatrix
        The symmetric ``(n, n)`` matrix, with ``names`` for its parameters.
    """
    return _sparse_call(
        "hessian", f, x, args, sparsity, declare, dense_size, nbatches, checks, rtol, devices
    )


def sparse_fisher(
    f: Callable,
    x: Any,
    *,
    args: Any = None,
    sparsity: Sparsity | None = None,
    declare: Mapping | None = None,
    dense_size: int = DEFAULT_DENSE_SIZE,
    nbatches: int | None = None,
    checks: int = DEFAULT_CHECKS,
    rtol: float | None = None,
    devices: Any = None,
) -> SparseMatrix:
    """The Fisher matrix ``J^T J`` at ``x`` as a sparse matrix, by colouring.

    The zodiax-style call over :func:`sparse_fisher_fn`, found, kept and checked as
    :func:`sparse_jacobian` describes; the same arguments (``f``, ``x`` and ``args`` as in
    :func:`fisher`) and the same errors.

    Returns
    -------
    SparseMatrix
        The symmetric ``(n, n)`` matrix, with ``names`` for its parameters.
    """
    return _sparse_call(
        "fisher", f, x, args, sparsity, declare, dense_size, nbatches, checks, rtol, devices
    )


def find_sparsity(
    kind: str,
    f: Callable,
    x: Any,
    args: Any = None,
    *,
    declare: Mapping | None = None,
    dense_size: int = DEFAULT_DENSE_SIZE,
) -> Sparsity:
    """The sparsity pattern of ``f``'s ``kind`` matrix at ``x``'s shapes, coloured.

    ``kind`` is ``"jacobian"``, ``"hessian"`` or ``"fisher"``. Leaves are taken one at a
    time: declared (``declare``), dense (at most ``dense_size`` scalars) or detected by
    abstract interpretation (asdex), which never evaluates a derivative and holds for every
    value of the inputs.

    Returns
    -------
    Sparsity
        ``rows``, ``cols``, ``shape``, ``names``, ``sources`` (how each leaf's columns were
        found) and ``ncolours`` (products needed). Pass it to the transforms or calls as
        ``sparsity=`` to skip finding it again.

    Raises
    ------
    SparsityError
        When a large leaf's pattern cannot be detected (declare it).
    """
    check_callable("find_sparsity", f)
    check_parameters("find_sparsity", x)
    return build_sparsity("find_sparsity", kind, f, x, args, declare=declare, dense_size=dense_size)
