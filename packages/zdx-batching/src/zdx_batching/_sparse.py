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
from jax.sharding import PartitionSpec

from ._checks import check_callable
from ._columns import replicated
from ._program import global_inputs
from ._sparse_matrix import SparseMatrix
from ._sparsity import (
    DEFAULT_DENSE_SIZE,
    Sparsity,
    build_sparsity,
    check_dense_size,
)
from ._transforms import _devices, _signature
from .compat import import_asdex, mesh_of, shard_map

_AXIS = "colours"

DEFAULT_CHECKS = 2
# Products per block on a CPU when nbatches is left to the library. Few products at a time
# keep an image model's values in the caches: on the 32 x 32 detector-calibration model,
# 100 products took 5.6 ms each in blocks of one or two, 7.8 ms in blocks of four and 24 ms
# all at once (vmap). Accelerators take every product at once.
CPU_BLOCK = 2


def _products(
    kind: str, f: Callable, with_args: bool, x: Any, args: Any, directions, nbatches, devices=None
):
    """``M d`` for each row ``d`` of ``directions`` (``M`` the Jacobian, Hessian or Fisher
    matrix of ``f`` at ``x``), as rows, ``nbatches`` blocks of rows at a time; with several
    ``devices``, the rows are dealt out over them (``x`` and ``args`` replicated)."""
    if devices is not None and len(devices) > 1:
        count, ndev = directions.shape[0], len(devices)
        padded = jnp.pad(directions, ((0, -count % ndev), (0, 0)))  # zero rows: zero products
        local = shard_map(
            lambda x, args, d: _products(kind, f, with_args, x, args, d, nbatches),
            mesh=mesh_of(devices, _AXIS),
            in_specs=(PartitionSpec(), PartitionSpec(), PartitionSpec(_AXIS)),
            out_specs=PartitionSpec(_AXIS),
        )
        return local(x, args, padded)[:count]
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
        devices: Any = None,
    ) -> None:
        name = f"sparse_{kind}_fn"
        check_callable(name, f)
        self.devices = _devices(name, devices)
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
        devices = self.devices
        with jax.ensure_compile_time_eval():  # concrete even when first called in a trace
            arrays = global_inputs(jax.device_put(arrays), devices)

        @functools.partial(jax.jit, out_shardings=replicated(devices))
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
                devices,
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

        if len(devices) == 1:
            return functools.partial(program, arrays=arrays)

        def spread(x: Any, args: Any) -> SparseMatrix:
            if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x)):
                return program(x, args, arrays)
            return program(*global_inputs((x, args), devices), arrays)

        return spread

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
    devices: Any = None,
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
    devices
        The devices the products are dealt out over (a sequence of ``jax.Device``; with
        several processes under ``jax.distributed``, the global ``jax.devices()``). ``None``
        (the default): every device of ``jax.devices()``. The matrix comes back whole on
        every device.

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
        devices=devices,
    )


def sparse_hessian_fn(
    f: Callable,
    *,
    sparsity: Sparsity | None = None,
    declare: Mapping | None = None,
    dense_size: int = DEFAULT_DENSE_SIZE,
    nbatches: int | None = None,
    checks: int = DEFAULT_CHECKS,
    devices: Any = None,
) -> SparseTransform:
    """The Hessian of a scalar ``f`` by symmetric colouring, as a transform.

    Each leaf's columns are the pattern of the gradient's Jacobian with respect to that leaf
    (detected, declared or dense); the pattern is made symmetric and star-coloured, and one
    Hessian-vector product per colour recovers the whole matrix.

    Parameters
    ----------
    f
        ``x -> scalar`` or ``(x, args) -> scalar``.
    sparsity, dense_size, nbatches, checks, devices
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
        devices=devices,
    )


def sparse_fisher_fn(
    f: Callable,
    *,
    sparsity: Sparsity | None = None,
    declare: Mapping | None = None,
    dense_size: int = DEFAULT_DENSE_SIZE,
    nbatches: int | None = None,
    checks: int = DEFAULT_CHECKS,
    devices: Any = None,
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
    sparsity, declare, dense_size, nbatches, checks, devices
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
        devices=devices,
    )
