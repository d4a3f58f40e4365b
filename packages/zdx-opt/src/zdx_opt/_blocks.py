"""Run one data set's computation over many data sets: vmapped, in blocks, over devices.

The machinery under :func:`zdx_opt.fit_many` and :func:`zdx_opt.hessian_many`: ``args``
batched along ``args_axes`` (as ``jax.vmap``'s ``in_axes``), the parameters flattened per
data set, and ``jax.vmap`` of a single data set's computation run ``block_size`` data sets
at a time (one compiled program per block shape, re-used for every block), each block
split over ``jax.devices()`` with ``shard_map`` along the data-set axis, with a ``tqdm``
bar over the blocks.

A compiled program is reused under the family's one rule (``zdx_batching.capture``): the
computation, with the user's functions and the non-array part of ``args``, travels into
the program as a pytree whose leaves are the arrays the functions capture. A new
``lambda`` of the same code and equal captures runs the program compiled before, with the
values of its own arrays; anything else traces again. What the rule cannot describe (a
plain object read by the function...) is traced afresh at every call by a program of its
own, which is dropped after the call: never a stale number, and no cache that grows.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

import zdx_base
from zdx_base import checks
from zdx_batching import NEEDS_VALUES, Captured, CapturedJit, capture
from zdx_batching.compat import mesh_of, shard_map

_AXIS = "datasets"
# Keys of the captures that needed values: their next calls go straight to a program of
# their own (bounded; forgetting costs one failed trace).
_needs_values: dict = {}
_MAX_NEEDS_VALUES = 256


def _axes_of_leaves(args: Any, in_axes: Any) -> Any:
    """``in_axes`` (a prefix of ``args``, 0 or None per sub-tree) spread to every leaf."""
    try:
        return jax.tree.map(
            lambda axis, sub: jax.tree.map(lambda _: axis, sub),
            in_axes,
            args,
            is_leaf=lambda x: x is None,
        )
    except ValueError as error:
        raise ValueError(
            f"`args_axes` must be 0, None, or a prefix of `args` made of 0 and None: {error}"
        ) from None


def _array_leaves(args: Any) -> list:
    return [leaf for leaf in jax.tree.leaves(args) if eqx.is_array(leaf)]


def _count(function: str, params: Any, args: Any, arg_axes: Any) -> int:
    """The number of data sets: the common leading length of every batched leaf."""
    sizes = {
        leaf.shape[0] if getattr(leaf, "ndim", 0) else None for leaf in jax.tree.leaves(params)
    }
    axes = _leaf_axes(args, arg_axes)
    batched = [leaf for leaf, axis in zip(_array_leaves(args), axes) if axis == 0]
    sizes |= {leaf.shape[0] if leaf.ndim else None for leaf in batched}
    if not jax.tree.leaves(params):
        raise ValueError(f"{function}: `params` has no array leaves.")
    if None in sizes or len(sizes) != 1:
        raise ValueError(
            f"{function}: every leaf of `params` (and of the batched `args`) needs the same "
            f"leading axis, one entry per data set; got leading lengths {sorted(sizes, key=str)}."
        )
    (n,) = sizes
    if n < 1:
        raise ValueError(f"{function}: there are no data sets (leading axis of length 0).")
    return n


def run_blocks(
    single: Callable,
    flat_params: jax.Array,
    args: Any,
    arg_axes: Any,
    block_size: int | None,
    vectorise: bool,
    progress: bool,
    desc: str,
    checkpoint: zdx_base.Checkpoint | None = None,
) -> Any:
    """``single`` over the data sets, ``block_size`` at a time, over all devices.

    Each device's share of a block runs as ``jax.vmap(single)`` when ``vectorise``, else as
    ``jax.lax.map(single)`` (one data set after another inside the compiled program).

    ``single(x, one_args)`` sees one data set's flattened parameters and arguments; it is
    a pytree (an ``equinox.Module`` whose user functions are ordinary fields), captured
    with the non-array part of ``args`` under the reuse rule (see the module's
    docstring). Blocks are padded with copies of the last data set and the padding is
    dropped from the results.

    With a ``checkpoint`` (made with ``every`` in blocks), the outputs of the blocks done
    so far (a tuple of arrays per block) are written after every ``every`` blocks, and a
    run finding a checkpoint starts after its last block.
    """
    from tqdm.auto import tqdm

    devices = tuple(jax.devices())
    ndev = len(devices)
    total = flat_params.shape[0]
    block = total if block_size is None else min(block_size, total)
    block = -(-block // ndev) * ndev  # a multiple of the number of devices
    nblocks = -(-total // block)
    padded = nblocks * block

    dynamic, static = eqx.partition(args, eqx.is_array)

    def pad(leaf, axis):
        if axis != 0:
            return leaf
        extra = padded - leaf.shape[0]
        if extra == 0:
            return leaf
        return jnp.concatenate([leaf, jnp.repeat(leaf[-1:], extra, axis=0)])

    leaves, treedef = jax.tree.flatten(dynamic)
    axes = tuple(_leaf_axes(args, arg_axes))
    batched = [pad(leaf, axis) for leaf, axis in zip(leaves, axes)]
    flat_params = pad(flat_params, 0)
    layout = _Layout(treedef, axes, devices, vectorise, jax.process_count() > 1)
    captured = capture((single, static))
    if captured.key in _needs_values:
        captured = Captured.unique((single, static), "it needs the values of its arrays")
    program = _PROGRAM.for_inputs(captured)

    batched_leaves = [leaf for leaf, axis in zip(batched, axes) if axis == 0]
    shared_leaves = [leaf for leaf, axis in zip(batched, axes) if axis != 0]
    outputs: list = []
    first = 0
    if checkpoint is not None:
        loaded = checkpoint.load()
        if loaded is not None:
            entries, first = loaded
            if first:
                outputs.append(tuple(jnp.asarray(entries[f"out.{i}"]) for i in range(len(entries))))
    bar = tqdm(total=nblocks, desc=desc, unit="block", disable=not progress, leave=False)
    bar.update(first)
    guard = checkpoint.interruptible() if checkpoint is not None else contextlib.nullcontext()
    with guard:
        for k in range(first, nblocks):
            rows = slice(k * block, (k + 1) * block)
            inputs = (flat_params[rows], [leaf[rows] for leaf in batched_leaves], shared_leaves)
            try:
                out = program(layout, captured, *inputs)
            except NEEDS_VALUES:
                if k != first or not captured.leaves:
                    raise
                # The function reads the values of arrays it captures: trace it afresh,
                # with them as constants of a program of its own.
                if len(_needs_values) >= _MAX_NEEDS_VALUES:
                    _needs_values.clear()
                _needs_values[captured.key] = True
                captured = Captured.unique((single, static), "it needs the values of its arrays")
                program = _PROGRAM.fresh()
                out = program(layout, captured, *inputs)
            outputs.append(jax.block_until_ready(out))
            bar.update(1)
            if checkpoint is not None and ((k + 1) % checkpoint.every == 0 or k + 1 == nblocks):
                checkpoint.reached(k + 1, nblocks, functools.partial(_joined, outputs))
    bar.close()
    stacked = jax.tree.map(lambda *parts: jnp.concatenate(parts)[:total], *outputs)
    return stacked


def _joined(outputs: list) -> dict:
    """The outputs of the blocks done so far, one array per output (for a checkpoint)."""
    joined = jax.tree.map(lambda *parts: jnp.concatenate(parts), *outputs)
    return {f"out.{i}": leaf for i, leaf in enumerate(jax.tree.leaves(joined))}


class _Layout(NamedTuple):
    """What a block program's shape depends on besides its inputs (static, hashed)."""

    treedef: Any  # of the array leaves of ``args``
    axes: tuple  # 0 (batched) or None (shared) per array leaf
    devices: tuple
    vectorise: bool
    gather: bool  # several processes: every process gets every data set's result


def _block_program(layout: _Layout, captured: Captured, x, batched_leaves, shared_leaves):
    """Every data set of a block: ``single`` vmapped (or mapped) over the rows of ``x`` and
    of the batched leaves, each device taking its share of the rows."""

    def local(x, batched_leaves, shared_leaves, captured):
        single, static = captured.function

        def one(x_i, b_i):
            merged, bi, si = [], iter(b_i), iter(shared_leaves)
            for axis in layout.axes:
                merged.append(next(bi) if axis == 0 else next(si))
            dyn = jax.tree.unflatten(layout.treedef, merged)
            return single(x_i, eqx.combine(dyn, static))

        if layout.vectorise:
            return jax.vmap(one)(x, batched_leaves)
        return jax.lax.map(lambda pair: one(*pair), (x, batched_leaves))

    if len(layout.devices) == 1:
        return local(x, batched_leaves, shared_leaves, captured)
    data_sets, shared = PartitionSpec(_AXIS), PartitionSpec()
    mesh = mesh_of(layout.devices, _AXIS)
    sharded = shard_map(
        local,
        mesh=mesh,
        in_specs=(data_sets, data_sets, shared, shared),
        out_specs=data_sets,
    )
    out = sharded(x, batched_leaves, shared_leaves, captured)
    if layout.gather:  # under jax.distributed: a full copy on every device of every process
        out = jax.lax.with_sharding_constraint(out, NamedSharding(mesh, PartitionSpec()))
    return out


# The program every reusable capture shares (JAX's cache, keyed by the layout and the
# capture's tree definition, finds it again for equal functions and shapes); a capture the
# rule cannot describe gets a program of its own, dropped with the call.
_PROGRAM = CapturedJit(_block_program, static_argnums=0)


class Unravel(eqx.Module):
    """``flat -> pytree`` for one data set's parameters; equal for equal layouts."""

    treedef: Any = eqx.field(static=True)
    shapes: tuple = eqx.field(static=True)
    dtypes: tuple = eqx.field(static=True)

    def __call__(self, flat: jax.Array) -> Any:
        leaves, start = [], 0
        for shape, dtype in zip(self.shapes, self.dtypes):
            size = math.prod(shape)
            leaves.append(flat[start : start + size].reshape(shape).astype(dtype))
            start += size
        return jax.tree.unflatten(self.treedef, leaves)


def _leaf_axes(args: Any, arg_axes: Any) -> list:
    """The axis (0 or None) of every array leaf of ``args``, in ``jax.tree.leaves`` order."""
    leaves, treedef = jax.tree.flatten(args)
    axes = treedef.flatten_up_to(arg_axes)
    return [axis for leaf, axis in zip(leaves, axes) if eqx.is_array(leaf)]


def check_vectorise(function: str, vectorise: Any) -> bool:
    """``vectorise`` as a bool; ``None`` gives False on CPU and True on GPU and TPU."""
    if vectorise is None:
        return jax.default_backend() != "cpu"
    return checks.check_bool(function, "vectorise", vectorise)


def prepare(function: str, params: Any, args: Any, args_axes: Any):
    """The flattened parameters of every data set, their unravel and the axis of each leaf.

    Returns
    -------
    flat : Array
        ``(N, n)``: row ``i`` is ``zdx_base.ravel`` of data set ``i``'s parameters.
    unravel : Unravel
        Turns one row back into one data set's parameter pytree.
    arg_axes : PyTree
        ``args_axes`` spread to every leaf of ``args`` (0 or None each).

    Raises
    ------
    ValueError
        If ``args_axes`` holds something other than 0 and None or does not match
        ``args``, or the leading axes do not give one common number of data sets
        (see ``_count``); the messages start with ``function``.
    """
    arg_axes = _axes_of_leaves(args, args_axes)
    for axis in jax.tree.leaves(arg_axes, is_leaf=lambda x: x is None):
        if axis not in (0, None):
            raise ValueError(f"{function}: `args_axes` may hold only 0 and None, got {axis!r}.")
    _count(function, params, args, arg_axes)
    leaves, treedef = jax.tree.flatten(params)
    leaves = [jnp.asarray(leaf) for leaf in leaves]
    unravel = Unravel(
        treedef=treedef,
        shapes=tuple(leaf.shape[1:] for leaf in leaves),
        dtypes=tuple(str(leaf.dtype) for leaf in leaves),
    )
    flat = jax.vmap(lambda p: zdx_base.ravel(p).flat)(params)
    return flat, unravel, arg_axes
