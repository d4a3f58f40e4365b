"""Column blocks: how many, which columns, and the one program that runs them all.

A matrix with ``n`` columns (one per parameter) is computed ``block`` columns at a time:
block ``k`` holds the columns ``k * block, ..., k * block + block - 1``; columns past ``n``
(padding when ``n`` is not a multiple of the block size) are computed from zero tangents
and dropped. All blocks run inside one compiled program, in a ``lax.scan``, so nothing is
re-dispatched from Python between blocks. Within a block the products are vmapped (or, when
the plan says so, evaluated ``chunk`` columns at a time with ``lax.map``). With several
devices the blocks are dealt out over a one-dimensional mesh with ``shard_map``: each
device runs its share of the blocks and the result is gathered and replicated on every
device.

Each kind of result is a :class:`Columns`: the Jacobian, the Fisher matrix, the Hessian, its
diagonal, and a Hessian-vector product (one "column" whose tangent is the given vector).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from ._grouping import largest_value
from .compat import mesh_of, shard_map

_AXIS = "blocks"
# On CPU, when a block's working set would not stay in cache, its columns are evaluated
# this many at a time; "would not stay" is a block of columns whose largest intermediate
# values (one column's product each) take more than _CACHE_BYTES together.
CPU_CHUNK = 4
_CACHE_BYTES = 8 * 2**20


class Plan(NamedTuple):
    """``blocks`` blocks of ``block`` columns, ``blocks`` a multiple of ``len(devices)``;
    within a block, at most ``chunk`` columns at a time (``None``: the whole block; on
    CPU with several blocks per device ``CPU_CHUNK``, used only when the block's working
    set would not stay in cache)."""

    n: int
    block: int
    blocks: int
    devices: tuple
    chunk: int | None = None

    @property
    def padded(self) -> int:
        return self.block * self.blocks


def plan_blocks(
    n: int,
    nbatches: int | None,
    devices: tuple,
    block: int | None = None,
    chunk: int | None = None,
) -> Plan:
    """Choose the block layout for ``n`` columns.

    ``block`` defaults to ``ceil(n / max(nbatches, len(devices)))``: at least
    ``nbatches`` blocks (``None``, left to the library, counts as one here), and at
    least one per device.
    """
    ndev = len(devices)
    nbatches = 1 if nbatches is None else nbatches
    if block is None:
        block = -(-n // max(nbatches, min(ndev, n)))
    needed = -(-n // block)
    blocks = -(-needed // ndev) * ndev
    if chunk is None and blocks > ndev and getattr(devices[0], "platform", "cpu") == "cpu":
        chunk = CPU_CHUNK  # at most: run_blocks keeps cheap blocks whole
    if chunk is not None and chunk >= block:
        chunk = None
    return Plan(n, int(block), int(blocks), devices, chunk)


def largest_intermediate(product: Callable, tangent: jax.Array) -> int:
    """Bytes of the largest value one column's product makes (from its jaxpr: the linear
    map only is traced, not ``f``)."""
    return largest_value(jax.make_jaxpr(product)(tangent).jaxpr)


class Columns:
    """What one kind of matrix computes per block of tangent vectors.

    ``prepare`` runs once per device (linearising ``f`` at ``x``) and returns the linear
    map ``v -> product``; ``select`` keeps what is needed of a block of products (the rows
    ``product(e_k)`` for the block's columns ``k``), and ``finish`` turns the stacked
    blocks (``padded`` rows) into the result.
    """

    name = "columns"
    second_order = False

    def __init__(self, name: str | None = None):
        if name is not None:
            self.name = name

    def check_output(self, out: Any) -> jax.Array:
        return as_output(self.name, out)

    def prepare(self, f_flat: Callable, x_flat: jax.Array) -> Any:
        raise NotImplementedError

    def tangents(self, cols: jax.Array, n: int, dtype: Any, vector: Any) -> jax.Array:
        """The tangent vectors of a block: the basis vectors ``e_k`` of its columns."""
        return jax.nn.one_hot(cols, n, dtype=dtype)

    def finite(self, result: Any, xp: Any = jnp) -> Any:
        """Whether ``result`` holds no NaN or inf (a sum overflowing counts too), with
        ``xp`` numpy (on the host) or ``jax.numpy`` (traceable)."""
        return xp.isfinite(result.sum())

    def all_at_once(self, f_flat: Callable, x_flat: jax.Array) -> jax.Array | None:
        """The whole result in one go, as JAX's own transformation computes it (used for
        a single block of every column on one device); ``None`` if there is none."""
        return None

    def select(self, rows: jax.Array, columns: jax.Array) -> jax.Array:
        return rows

    def finish(self, stacked: jax.Array, n: int) -> jax.Array:
        raise NotImplementedError


def diagonal_sum(matrix: Any) -> Any:
    """The sum of an ``(n, n)`` matrix's diagonal, as a strided slice of its ``n`` numbers
    (XLA's ``trace`` of a large matrix reads the whole matrix)."""
    return matrix.reshape(-1)[:: matrix.shape[0] + 1].sum()


def as_output(name: str, out: Any) -> jax.Array:
    """Check that ``f`` returned one real floating-point array (traceable)."""
    if isinstance(out, float):
        out = jnp.asarray(out)
    if not isinstance(out, (jax.Array, np.ndarray, np.generic)):
        raise TypeError(
            f"{name}: f must return one array, but f(x) returned {type(out).__name__} "
            f"({out!r:.60}). Return a single array (e.g. jnp.concatenate the pieces)."
        )
    dtype = np.dtype(out.dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(
            f"{name}: f must return real floating-point values, but f(x) has dtype {dtype}."
        )
    return jnp.asarray(out)


def run_blocks(
    columns: Columns,
    f_flat_of: Callable[[Any], Callable],
    x_flat_of: Callable[[Any], jax.Array],
    inputs: Any,
    vector: Any,
    plan: Plan,
    tick: Callable | None,
) -> jax.Array:
    """Compute every block of ``columns`` and return the finished result (traceable).

    ``inputs`` are the program's inputs; ``f_flat_of(inputs)`` and ``x_flat_of(inputs)``
    rebuild the flat function and the flat parameters from them, so that the same code
    runs on one device or inside ``shard_map`` (which gets ``inputs`` replicated).
    ``vector`` is the tangent of a Hessian-vector product (``None`` otherwise).
    """
    n, block = plan.n, plan.block

    def local(inputs: Any, vector: Any, block_ids: jax.Array) -> jax.Array:
        x_flat = x_flat_of(inputs)
        product = columns.prepare(f_flat_of(inputs), x_flat)
        offsets = jnp.arange(block)
        chunk = plan.chunk
        if chunk is not None:  # chunks only when the whole block would not stay in cache
            first = columns.tangents(offsets[:1], x_flat.shape[0], x_flat.dtype, vector)[0]
            if block * largest_intermediate(product, first) <= _CACHE_BYTES:
                chunk = None

        def step(carry: None, k: jax.Array) -> tuple[None, jax.Array]:
            cols = k * block + offsets
            basis = columns.tangents(cols, x_flat.shape[0], x_flat.dtype, vector)
            if chunk is None:
                rows = jax.vmap(product)(basis)
            else:  # a few columns at a time: less memory, kinder to caches
                rows = jax.lax.map(product, basis, batch_size=chunk)
            out = columns.select(rows, cols)
            if tick is not None:
                jax.debug.callback(tick, k)
            return carry, out

        if plan.blocks // len(plan.devices) == 1:  # one block: no loop around it
            outs = step(None, block_ids[0])[1][None]
        else:
            _, outs = jax.lax.scan(step, None, block_ids)
        return outs.reshape((-1, *outs.shape[2:]))

    if len(plan.devices) == 1 and plan.blocks == 1 and block == n:
        # Every column at once: exactly JAX's own program (its constant basis lets XLA
        # simplify the products), as fast as jax.hessian / jax.jacfwd.
        whole = columns.all_at_once(f_flat_of(inputs), x_flat_of(inputs))
        if whole is not None:
            if tick is not None:
                jax.debug.callback(tick, jnp.zeros((), int))
            return whole
    block_ids = jnp.arange(plan.blocks)
    if len(plan.devices) == 1:
        stacked = local(inputs, vector, block_ids)
    else:
        sharded = shard_map(
            local,
            mesh=mesh_of(plan.devices, _AXIS),
            in_specs=(PartitionSpec(), PartitionSpec(), PartitionSpec(_AXIS)),
            out_specs=PartitionSpec(_AXIS),
        )
        stacked = sharded(inputs, vector, block_ids)
    return columns.finish(stacked, n)


def replicated(devices: tuple) -> NamedSharding | None:
    """The sharding that puts a full copy of the result on every device."""
    if len(devices) == 1:
        return None
    return NamedSharding(mesh_of(devices, _AXIS), PartitionSpec())


class JacobianColumns(Columns):
    """Columns ``J e_k`` by forward-mode products of ``f`` linearised once."""

    name = "jacobian"

    def prepare(self, f_flat: Callable, x_flat: jax.Array) -> Any:
        _, jvp = jax.linearize(f_flat, x_flat)
        return jvp

    def all_at_once(self, f_flat: Callable, x_flat: jax.Array) -> jax.Array | None:
        return jax.jacfwd(f_flat)(x_flat)

    def finish(self, stacked: jax.Array, n: int) -> jax.Array:
        return jnp.moveaxis(stacked[:n], 0, -1)


class FisherColumns(JacobianColumns):
    """``F = J^T J`` from the Jacobian blocks of ``f`` (residuals over their errors)."""

    name = "fisher"
    second_order = True

    def select(self, rows: jax.Array, columns: jax.Array) -> jax.Array:
        return rows.reshape(rows.shape[0], -1)

    def finish(self, stacked: jax.Array, n: int) -> jax.Array:
        # Padding rows of J are exact zeros: multiply first, cut afterwards.
        F = jnp.matmul(stacked, stacked.T, precision=jax.lax.Precision.HIGHEST)
        return F[:n, :n]

    def finite(self, result: Any, xp: Any = jnp) -> Any:
        # F[k, k] is the squared norm of column k of J: any NaN or inf of J shows there,
        # and checking n numbers costs nothing next to the matrix.
        return xp.isfinite(diagonal_sum(result))

    def all_at_once(self, f_flat: Callable, x_flat: jax.Array) -> jax.Array | None:
        J = jax.jacfwd(f_flat)(x_flat)
        J = J.reshape(-1, J.shape[-1])
        return jnp.matmul(J.T, J, precision=jax.lax.Precision.HIGHEST)


class HessianColumns(Columns):
    """Columns ``H e_k`` by forward-over-reverse products of ``grad f`` linearised once."""

    name = "hessian"
    second_order = True

    def check_output(self, out: Any) -> jax.Array:
        out = as_output(self.name, out)
        if out.shape != ():
            raise ValueError(
                f"{self.name}: f must return a scalar, but f(x) has shape {out.shape}. "
                "For a vector output use jacobian, or fisher for residuals divided by "
                "their errors."
            )
        return out

    def prepare(self, f_flat: Callable, x_flat: jax.Array) -> Any:
        _, hvp = jax.linearize(jax.grad(f_flat), x_flat)
        return hvp

    def finite(self, result: Any, xp: Any = jnp) -> Any:
        # The diagonal only (a full pass over n * n numbers would cost as much as the
        # Hessian of a cheap function): a NaN or inf in column k almost always reaches
        # H[k, k]. ``trace`` sums it without making a view first.
        return xp.isfinite(diagonal_sum(result))

    def all_at_once(self, f_flat: Callable, x_flat: jax.Array) -> jax.Array | None:
        return jax.hessian(f_flat)(x_flat)

    def finish(self, stacked: jax.Array, n: int) -> jax.Array:
        # Row k of the stack is H e_k, the k-th column: transpose to jax.hessian's layout.
        return stacked[:n].T


class DiagonalColumns(HessianColumns):
    """Only ``H[k, k]`` of each column: ``n`` numbers kept instead of ``n * n``."""

    name = "hessian_diagonal"

    def select(self, rows: jax.Array, columns: jax.Array) -> jax.Array:
        picked = jnp.clip(columns, 0, rows.shape[1] - 1)
        return jnp.take_along_axis(rows, picked[:, None], axis=1)[:, 0]

    def finish(self, stacked: jax.Array, n: int) -> jax.Array:
        return stacked[:n]

    def finite(self, result: Any, xp: Any = jnp) -> Any:
        return xp.isfinite(result.sum())

    def all_at_once(self, f_flat: Callable, x_flat: jax.Array) -> jax.Array | None:
        return jnp.diag(jax.hessian(f_flat)(x_flat))


class HvpColumns(HessianColumns):
    """One "column": the Hessian-vector product ``H v`` for the given tangent ``v``."""

    name = "hvp"

    def tangents(self, cols: jax.Array, n: int, dtype: Any, vector: Any) -> jax.Array:
        # Column 0 is v; padding columns (one block per device) are zeros.
        return jnp.where((cols == 0)[:, None], vector.astype(dtype)[None, :], 0)

    def finish(self, stacked: jax.Array, n: int) -> jax.Array:
        return stacked[0]

    def finite(self, result: Any, xp: Any = jnp) -> Any:
        return xp.isfinite(result.sum())

    def all_at_once(self, f_flat: Callable, x_flat: jax.Array) -> jax.Array | None:
        return None
