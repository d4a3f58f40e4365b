"""Structured curvature: Jacobians, Hessians and Fisher matrices by graph colouring.

``sparse_jacobian_fn(f)`` (and ``sparse_hessian_fn``, ``sparse_fisher_fn``) returns a
function of ``(x, args)`` that computes the matrix from one product per colour of its
sparsity pattern (``_sparsity.py``) instead of one per parameter, and returns it as a
:class:`SparseMatrix`. Each call also multiplies the result by a few fixed random vectors
and compares with the same products computed directly (``SparseMatrix.mismatch``); the
zodiax-style calls (``sparse_jacobian(f, x)``...) raise :class:`SparsityError` when they
differ by more than rounding, naming the leaves whose pattern is wrong.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ._calls import _call_pair
from ._checks import check_callable, check_parameters
from ._reuse import NEEDS_VALUES, Captured, capture
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
from ._transforms import _signature
from .compat import import_asdex

DEFAULT_CHECKS = 2
# Products per block on a CPU when nbatches is left to the library. Few products at a time
# keep an image model's values in the caches: on the 32 x 32 detector-calibration model,
# 100 products took 5.6 ms each in blocks of one or two, 7.8 ms in blocks of four and 24 ms
# all at once (vmap). Accelerators take every product at once.
CPU_BLOCK = 2
_MAX_HELD = 32


def _products(kind: str, f: Callable, with_args: bool, x: Any, args: Any, directions, nbatches):
    """``M d`` for each row ``d`` of ``directions`` (``M`` the Jacobian, Hessian or Fisher
    matrix of ``f`` at ``x``), as rows, ``nbatches`` blocks of rows at a time."""
    flat, unravel = ravel_pytree(x)
    directions = directions.astype(flat.dtype)

    def value(v):
        point = unravel(v)
        return f(point, args) if with_args else f(point)

    if kind == "hessian":
        _, product = jax.linearize(jax.grad(value), flat)
    else:
        _, forward = jax.linearize(lambda v: jnp.ravel(value(v)), flat)
        if kind == "jacobian":
            product = forward
        else:
            backward = jax.linear_transpose(forward, flat)
            product = lambda d: backward(forward(d))[0]  # noqa: E731
    count = directions.shape[0]
    if nbatches is None:
        if jax.default_backend() != "cpu":
            return jax.vmap(product)(directions)
        size = min(CPU_BLOCK, count)  # see CPU_BLOCK
    else:
        size = math.ceil(count / min(nbatches, count))
    if size >= count:
        return jax.vmap(product)(directions)
    return jax.lax.map(product, directions, batch_size=size)


def _probes(checks: int, n: int) -> np.ndarray:
    """Fixed random directions for the check (the same on every run)."""
    return np.random.default_rng(20261207).standard_normal((checks, n))


def _mismatch(matrix: SparseMatrix, probes, direct) -> jax.Array:
    """The largest ``|M_sparse p - M p|`` over the probes, relative to the largest entry
    of ``|M_sparse| |p|``."""
    rows, cols = matrix.indices[:, 0], matrix.indices[:, 1]
    probes = probes.astype(matrix.data.dtype)
    sparse_products = jax.vmap(lambda p: matrix @ p)(probes)
    scale = jax.vmap(
        lambda p: jax.ops.segment_sum(
            jnp.abs(matrix.data) * jnp.abs(p[cols]), rows, num_segments=matrix.shape[0]
        )
    )(probes)
    tiny = jnp.finfo(matrix.data.dtype).tiny
    return jnp.max(jnp.abs(sparse_products - direct)) / jnp.maximum(jnp.max(scale), tiny)


def _seeds(sparsity: Sparsity) -> np.ndarray:
    """One seed vector per colour: ones on the parameters of that colour."""
    colours = np.asarray(sparsity.colouring.colors)
    return colours[None, :] == np.arange(sparsity.colouring.num_colors)[:, None]


def _matrix(sparsity: Sparsity, data: jax.Array, indices: jax.Array, mismatch) -> SparseMatrix:
    return SparseMatrix(data, indices, sparsity.shape, sparsity.names, mismatch)


def _indices(sparsity: Sparsity) -> np.ndarray:
    return np.stack([sparsity.rows, sparsity.cols], axis=1).astype(np.int32)


def _normal_matrix(jacobian: SparseMatrix, colours: jax.Array, colouring: Any, asdex: Any):
    """The entries of ``J^T J`` from the sparse ``J``: the products ``J^T (J s)`` for each
    colour ``s`` of its symmetric colouring, by sparse sums one colour at a time (memory of
    the order of ``J``'s entries), then decompressed. Never an ``n x n`` or ``m x n`` array."""
    rows, cols = jacobian.indices[:, 0], jacobian.indices[:, 1]
    m, n = jacobian.shape
    column_colours = colours[cols]

    def product(colour):
        seeded = jnp.where(column_colours == colour, jacobian.data, 0)
        forward = jax.ops.segment_sum(seeded, rows, num_segments=m, indices_are_sorted=True)
        return jax.ops.segment_sum(jacobian.data * forward[rows], cols, num_segments=n)

    compressed = jax.lax.map(product, jnp.arange(colouring.num_colors))
    return asdex.decompress_data(compressed, colouring)


class SparseTransform:
    """A structured-curvature transform: call it as ``(x, args=None)``.

    It finds the sparsity pattern for each structure and shape of its inputs on the first
    call (or takes the one it was given), keeps it with its compiled program, and returns
    a :class:`SparseMatrix` whose ``mismatch`` says how well a few random products agree
    with direct automatic differentiation. It composes with ``jax.jit`` (the pattern is
    found from shapes alone).
    """

    def __init__(
        self,
        kind: str,
        f: Callable,
        *,
        sparsity: Sparsity | None = None,
        declare: Mapping | None = None,
        dense_size: int = DEFAULT_DENSE_SIZE,
        nbatches: int | None = None,
        checks: int = DEFAULT_CHECKS,
    ) -> None:
        name = f"sparse_{kind}_fn"
        check_callable(name, f)
        if sparsity is not None and not isinstance(sparsity, Sparsity):
            raise TypeError(
                f"{name}: sparsity must be a Sparsity (from zdx_batching.find_sparsity), got "
                f"{type(sparsity).__name__}."
            )
        if sparsity is not None and sparsity.kind != kind:
            raise ValueError(f"{name}: sparsity is a {sparsity.kind} pattern, not a {kind} one.")
        if nbatches is not None and (
            isinstance(nbatches, bool) or not isinstance(nbatches, int) or nbatches < 1
        ):
            raise ValueError(f"{name}: nbatches must be None or an int >= 1, got {nbatches!r}.")
        if isinstance(checks, bool) or not isinstance(checks, int) or checks < 1:
            raise ValueError(f"{name}: checks must be an int >= 1, got {checks!r}.")
        self.kind, self.f, self.name = kind, f, name
        self.declare, self.dense_size = declare, check_dense_size(name, dense_size)
        self.nbatches, self.checks = nbatches, checks
        self._given = sparsity
        self._found: dict = {}

    def __repr__(self) -> str:
        return f"{self.name}({getattr(self.f, '__name__', self.f)!r})"

    def sparsity(self, x: Any, args: Any = None) -> Sparsity:
        """The pattern used for inputs like ``(x, args)``: found once per structure and
        shapes (given at construction, it is checked against ``x``'s size)."""
        return self._entry(x, args)[0]

    def forget(self, x: Any, args: Any = None) -> None:
        """Drop the pattern and program kept for inputs like ``(x, args)``."""
        self._found.pop(_signature((x, args)), None)

    def _entry(self, x: Any, args: Any) -> tuple[Sparsity, Callable]:
        key = _signature((x, args))
        entry = self._found.get(key)
        if entry is None:
            sparsity = self._given
            if sparsity is None:
                sparsity = build_sparsity(
                    self.name,
                    self.kind,
                    self.f,
                    x,
                    args,
                    declare=self.declare,
                    dense_size=self.dense_size,
                )
            n = sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(x))
            if sparsity.shape[1] != n:
                raise ValueError(
                    f"{self.name}: the sparsity has {sparsity.shape[1]} columns; x has {n} "
                    "parameters."
                )
            entry = (sparsity, self._program(sparsity, args is not None))
            self._found[key] = entry
        return entry

    def _program(self, sparsity: Sparsity, with_args: bool) -> Callable:
        """The computation for one pattern: products with one seed per colour (and the
        probes), decompressed; a Fisher matrix is then ``J^T J`` of the sparse Jacobian.
        The pattern's arrays are inputs of the compiled program, never constants in it
        (XLA would fold them into copies the size of the matrix)."""
        asdex = import_asdex()  # the pattern was coloured by asdex, so it is installed

        kind, f, nbatches = self.kind, self.f, self.nbatches
        measured = sparsity.jacobian or sparsity  # what the function's products give
        arrays = {
            "directions": np.concatenate(
                [_seeds(measured), _probes(self.checks, sparsity.shape[1])]
            ),
            "ncolours": measured.colouring.num_colors,
            "measured": (measured.colouring, _indices(measured)),
        }
        if kind == "fisher":
            arrays["normal"] = (
                sparsity.colouring,
                np.asarray(sparsity.colouring.colors, np.int32),
                _indices(sparsity),
            )
        static = {"ncolours": arrays.pop("ncolours")}
        with jax.ensure_compile_time_eval():  # concrete even when first called in a trace
            arrays = jax.device_put(arrays)

        @jax.jit
        def program(x: Any, args: Any, arrays: dict) -> SparseMatrix:
            directions = arrays["directions"]
            products = _products(
                "jacobian" if kind == "fisher" else kind,
                f,
                with_args,
                x,
                args,
                directions,
                nbatches,
            )
            ncolours = static["ncolours"]
            compressed, direct = products[:ncolours], products[ncolours:]
            colouring, indices = arrays["measured"]
            data = asdex.decompress_data(compressed, colouring)
            matrix = _matrix(measured, data, indices, jnp.zeros(()))
            mismatch = _mismatch(matrix, directions[ncolours:], direct)
            if kind != "fisher":
                return _matrix(sparsity, data, indices, mismatch)
            colouring, colours, indices = arrays["normal"]
            data = _normal_matrix(matrix, colours, colouring, asdex)
            return _matrix(sparsity, data, indices, mismatch)

        return functools.partial(program, arrays=arrays)

    def __call__(self, x: Any, args: Any = None) -> SparseMatrix:
        return self._entry(x, args)[1](x, args)

    def leaf_mismatches(self, x: Any, args: Any = None) -> dict[str, float]:
        """The check's mismatch with random vectors confined to one leaf at a time: which
        leaves' columns the pattern gets wrong (op by op; for error messages)."""
        sparsity, run = self._entry(x, args)
        matrix = run(x, args)
        probes = _probes(1, sparsity.shape[1])[0]
        out = {}
        for path, part in sparsity.leaf_slices.items():
            probe = np.zeros_like(probes)
            probe[part] = probes[part]
            direct = _products(
                self.kind, self.f, args is not None, x, args, jnp.asarray(probe)[None], None
            )
            out[path] = float(_mismatch(matrix, jnp.asarray(probe)[None], direct))
        return out


def sparse_jacobian_fn(
    f: Callable,
    *,
    sparsity: Sparsity | None = None,
    declare: Mapping | None = None,
    dense_size: int = DEFAULT_DENSE_SIZE,
    nbatches: int | None = None,
    checks: int = DEFAULT_CHECKS,
) -> SparseTransform:
    """The Jacobian of ``f`` by colouring its columns, as a transform.

    ``f`` maps the parameters ``x`` (any pytree of floating-point arrays), or ``(x, args)``,
    to one array of any shape. Columns of the Jacobian that share no row get one colour and one
    forward-mode product recovers them all: ``ncolours`` products instead of ``n``.

    Parameters
    ----------
    f
        ``x -> array`` or ``(x, args) -> array``.
    sparsity
        A pattern found before (:func:`find_sparsity`); ``None`` (the default) finds it on
        the first call for each structure and shapes of the inputs.
    declare
        Patterns declared by leaf path, used instead of detection for those leaves:
        ``"dense"``, ``"elementwise"`` (the leaf's scalar at index ``i`` touches only the
        outputs whose trailing axes equal ``i``, as a pixel response does over a stack of
        images), or a boolean array / ``scipy.sparse`` matrix of the leaf's columns
        (``(m, leaf size)``).
    dense_size
        Leaves with at most this many scalars take dense columns without detection (default
        32): finding their pattern would cost more than it saves.
    nbatches
        Split the products into this many blocks (more blocks, less memory). ``None`` (the
        default): blocks of two on a CPU (faster for image models), all at once elsewhere.
    checks
        How many random products the result is checked against (default 2).

    Returns
    -------
    SparseTransform
        Called as ``(x, args=None)``, it returns a :class:`SparseMatrix` of shape ``(m, n)``.

    Raises
    ------
    TypeError, ValueError
        On a bad argument, naming it. :class:`SparsityError` (on the first call) when a
        large leaf's pattern cannot be detected: declare it.
    """
    return SparseTransform(
        "jacobian",
        f,
        sparsity=sparsity,
        declare=declare,
        dense_size=dense_size,
        nbatches=nbatches,
        checks=checks,
    )


def sparse_hessian_fn(
    f: Callable,
    *,
    sparsity: Sparsity | None = None,
    declare: Mapping | None = None,
    dense_size: int = DEFAULT_DENSE_SIZE,
    nbatches: int | None = None,
    checks: int = DEFAULT_CHECKS,
) -> SparseTransform:
    """The Hessian of a scalar ``f`` by symmetric colouring, as a transform.

    Each leaf's columns are the pattern of the gradient's Jacobian with respect to that leaf
    (detected, declared or dense); the pattern is made symmetric and star-coloured, and one
    Hessian-vector product per colour recovers the whole matrix.

    Parameters
    ----------
    f
        ``x -> scalar`` or ``(x, args) -> scalar``.
    sparsity, dense_size, nbatches, checks
        As in :func:`sparse_jacobian_fn`.
    declare
        As in :func:`sparse_jacobian_fn`, for the Hessian's columns: ``"dense"``,
        ``"elementwise"`` (the leaf's scalars do not couple with each other, only with the
        other leaves), or a boolean array / ``scipy.sparse`` matrix of shape ``(n, leaf size)``.

    Returns
    -------
    SparseTransform
        Called as ``(x, args=None)``, it returns a symmetric :class:`SparseMatrix` ``(n, n)``.
    """
    return SparseTransform(
        "hessian",
        f,
        sparsity=sparsity,
        declare=declare,
        dense_size=dense_size,
        nbatches=nbatches,
        checks=checks,
    )


def sparse_fisher_fn(
    f: Callable,
    *,
    sparsity: Sparsity | None = None,
    declare: Mapping | None = None,
    dense_size: int = DEFAULT_DENSE_SIZE,
    nbatches: int | None = None,
    checks: int = DEFAULT_CHECKS,
) -> SparseTransform:
    """The Fisher matrix ``J^T J`` by symmetric colouring, as a transform.

    ``f`` returns the model divided by its standard error, as for :func:`fisher`. The pattern
    of ``J`` is found leaf by leaf (as in :func:`sparse_jacobian_fn`), the pattern of
    ``J^T J`` follows from it, and one product ``J^T (J s)`` per colour of its symmetric
    colouring recovers the matrix: never ``J`` itself, never an ``n x n`` array.

    Parameters
    ----------
    f
        ``x -> array`` or ``(x, args) -> array``: the model over its standard error.
    sparsity, declare, dense_size, nbatches, checks
        As in :func:`sparse_jacobian_fn` (declarations describe ``J``'s columns).

    Returns
    -------
    SparseTransform
        Called as ``(x, args=None)``, it returns a symmetric :class:`SparseMatrix` ``(n, n)``.
    """
    return SparseTransform(
        "fisher",
        f,
        sparsity=sparsity,
        declare=declare,
        dense_size=dense_size,
        nbatches=nbatches,
        checks=checks,
    )


# --- the zodiax-style calls ------------------------------------------------------------------


def _declare_key(declare: Any) -> Any:
    """A hashable key for ``declare``, or ``None`` when it holds arrays (not kept)."""
    if declare is None:
        return ()
    if not isinstance(declare, Mapping) or not all(isinstance(v, str) for v in declare.values()):
        return None
    return tuple(sorted(declare.items()))


@functools.lru_cache(maxsize=_MAX_HELD)
def _held(kind: str, declare: tuple, dense_size: int, nbatches: Any, checks: int):
    return SparseTransform(
        kind,
        _call_pair,
        declare=dict(declare) or None,
        dense_size=dense_size,
        nbatches=nbatches,
        checks=checks,
    )


def _tolerance(name: str, rtol: Any, dtype: Any) -> float:
    if rtol is None:
        return float(np.sqrt(np.finfo(dtype).eps))
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not rtol > 0:
        raise ValueError(f"{name}: rtol must be a positive number or None, got {rtol!r}.")
    return float(rtol)


def _sparse_call(kind, f, x, args, sparsity, declare, dense_size, nbatches, checks, rtol):
    name = f"sparse_{kind}"
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
        sparsity=sparsity, declare=declare, dense_size=dense_size, nbatches=nbatches, checks=checks
    )
    captured = capture((f, args))
    key = _declare_key(declare)
    if captured.reusable and key is not None and sparsity is None:
        transform = _held(kind, key, dense_size, nbatches, checks)
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
    sparsity, declare, dense_size, nbatches, checks
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
        "jacobian", f, x, args, sparsity, declare, dense_size, nbatches, checks, rtol
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
        "hessian", f, x, args, sparsity, declare, dense_size, nbatches, checks, rtol
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
    return _sparse_call("fisher", f, x, args, sparsity, declare, dense_size, nbatches, checks, rtol)


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
