"""Many independent fits in one compiled program: natural-gradient fits and their Hessians.

A batch of ``N`` data sets (many stars, exposures, epochs, or the replications of a
calibration) is fitted by one program: ``jax.vmap`` over the data sets of a whole
natural-gradient descent (a ``lax.scan`` over its steps), and likewise for the Hessians
that give each fit its error bars. The data sets run in blocks of ``block_size`` (one
compiled program per block shape, re-used for every block), which bounds the memory; each
block is split over ``jax.devices()`` with ``shard_map`` along the data-set axis, and a
``tqdm`` bar counts the blocks.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh, PartitionSpec

try:  # jax >= 0.6
    from jax import shard_map as _shard_map

    _VMA_FLAG = "check_vma"
except ImportError:  # pragma: no cover - older jax
    from jax.experimental.shard_map import shard_map as _shard_map

    _VMA_FLAG = "check_rep"

_AXIS = "datasets"


class ManyFits(eqx.Module):
    """The natural-gradient fits of many data sets (:func:`fit_many`).

    Attributes
    ----------
    params : PyTree
        The fit of every data set: the parameters with the lowest loss seen, each leaf with
        a leading axis of length ``N``.
    loss : Array
        ``(N,)`` the loss at ``params``.
    losses : Array
        ``(N, steps)`` the loss before each step (``nan`` after a fit stopped).
    steps_done : Array
        ``(N,)`` the steps each fit took; fewer than ``steps`` when its loss or its Fisher
        matrix stopped being finite (the fit then keeps the best parameters seen).
    """

    params: Any
    loss: jax.Array
    losses: jax.Array
    steps_done: jax.Array

    @property
    def stopped_early(self) -> jax.Array:
        """``(N,)`` True where a fit stopped before its last step."""
        return self.steps_done < self.losses.shape[1]


def _check_int(function: str, name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{function}: `{name}` must be an integer, got {type(value).__name__} {value!r}."
        )
    if value < minimum:
        raise ValueError(f"{function}: `{name}` must be >= {minimum}, got {value}.")
    return int(value)


def _check_real(function: str, name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{function}: `{name}` must be a number, got {type(value).__name__}.")
    if not (math.isfinite(value) and low <= value < high):
        raise ValueError(f"{function}: `{name}` must be in [{low}, {high}), got {value!r}.")
    return float(value)


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


def _run_blocks(
    single: Callable,
    flat_params: jax.Array,
    args: Any,
    arg_axes: Any,
    block_size: int | None,
    progress: bool,
    desc: str,
) -> Any:
    """``vmap(single)`` over the data sets, ``block_size`` at a time, over all devices.

    ``single(x, dynamic_args)`` sees one data set's flattened parameters and array
    arguments; the rest of ``args`` is closed over (static). Blocks are padded with copies
    of the last data set and the padding is dropped from the results.
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
    layout = _Layout(single=single, static=static, treedef=treedef, axes=axes, devices=devices)

    batched_leaves = [leaf for leaf, axis in zip(batched, axes) if axis == 0]
    shared_leaves = [leaf for leaf, axis in zip(batched, axes) if axis != 0]
    outputs = []
    bar = tqdm(range(nblocks), desc=desc, unit="block", disable=not progress, leave=False)
    for k in bar:
        rows = slice(k * block, (k + 1) * block)
        out = _block_program(
            layout, flat_params[rows], [leaf[rows] for leaf in batched_leaves], shared_leaves
        )
        outputs.append(jax.block_until_ready(out))
    bar.close()
    stacked = jax.tree.map(lambda *parts: jnp.concatenate(parts)[:total], *outputs)
    return stacked


class _Layout(eqx.Module):
    """Everything static about a block program: compiled once per distinct layout (same
    functions, settings, shapes), and found again by ``eqx.filter_jit``'s cache."""

    single: Any
    static: Any
    treedef: Any = eqx.field(static=True)
    axes: tuple = eqx.field(static=True)
    devices: tuple = eqx.field(static=True)


@eqx.filter_jit
def _block_program(layout: _Layout, x, batched_leaves, shared_leaves):
    def local(x, batched_leaves, shared_leaves):
        def one(x_i, b_i):
            merged, bi, si = [], iter(b_i), iter(shared_leaves)
            for axis in layout.axes:
                merged.append(next(bi) if axis == 0 else next(si))
            dyn = jax.tree.unflatten(layout.treedef, merged)
            return layout.single(x_i, eqx.combine(dyn, layout.static))

        return jax.vmap(one)(x, batched_leaves)

    if len(layout.devices) == 1:
        return local(x, batched_leaves, shared_leaves)
    mesh = Mesh(np.asarray(layout.devices), (_AXIS,))
    sharded = _shard_map(
        local,
        mesh=mesh,
        in_specs=(PartitionSpec(_AXIS), PartitionSpec(_AXIS), PartitionSpec()),
        out_specs=PartitionSpec(_AXIS),
        **{_VMA_FLAG: False},
    )
    return sharded(x, batched_leaves, shared_leaves)


class _Unravel(eqx.Module):
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


def _prepare(function: str, params: Any, args: Any, args_axes: Any):
    arg_axes = _axes_of_leaves(args, args_axes)
    for axis in jax.tree.leaves(arg_axes, is_leaf=lambda x: x is None):
        if axis not in (0, None):
            raise ValueError(f"{function}: `args_axes` may hold only 0 and None, got {axis!r}.")
    _count(function, params, args, arg_axes)
    leaves, treedef = jax.tree.flatten(params)
    leaves = [jnp.asarray(leaf) for leaf in leaves]
    unravel = _Unravel(
        treedef=treedef,
        shapes=tuple(leaf.shape[1:] for leaf in leaves),
        dtypes=tuple(str(leaf.dtype) for leaf in leaves),
    )
    flat = jax.vmap(lambda p: ravel_pytree(p)[0])(params)
    return flat, unravel, arg_axes


class _NaturalGradientFit(eqx.Module):
    """One data set's natural-gradient fit, ``(x0, args) -> (best, loss, losses, steps)``."""

    loss_fn: Any = eqx.field(static=True)
    fisher_fn: Any = eqx.field(static=True)
    unravel: _Unravel
    steps: int = eqx.field(static=True)
    learning_rate: float = eqx.field(static=True)
    momentum: float = eqx.field(static=True)
    refresh_every: int = eqx.field(static=True)
    damping: float = eqx.field(static=True)

    def __call__(self, x0, one_args):
        loss_fn, fisher_fn, unravel = self.loss_fn, self.fisher_fn, self.unravel
        steps, learning_rate, momentum = self.steps, self.learning_rate, self.momentum
        refresh_every, damping = self.refresh_every, self.damping

        def loss(x):
            return loss_fn(unravel(x), one_args)

        def metric(x):
            if fisher_fn is None:
                return jax.hessian(loss)(x)
            return jnp.asarray(fisher_fn(unravel(x), one_args))

        def factor(x):
            fisher = metric(x)
            fisher = (fisher + fisher.T) / 2
            diag = jnp.diagonal(fisher)
            floor = jnp.finfo(x.dtype).eps * jnp.max(jnp.abs(diag))
            return jnp.linalg.cholesky(fisher + damping * jnp.diag(jnp.maximum(diag, floor)))

        value_and_grad = jax.value_and_grad(loss)

        def step(carry, i):
            x, velocity, chol, best_x, best_loss, alive, done = carry
            chol = jax.lax.cond(i % refresh_every == 0, factor, lambda _: chol, x)
            value, grad = value_and_grad(x)
            direction = jax.scipy.linalg.cho_solve((chol, True), grad)
            new_velocity = direction + momentum * velocity
            new_x = x - learning_rate * new_velocity
            ok = alive & jnp.isfinite(value) & jnp.all(jnp.isfinite(new_x))
            better = ok & (value < best_loss)
            best_x = jnp.where(better, x, best_x)
            best_loss = jnp.where(better, value, best_loss)
            x = jnp.where(ok, new_x, x)
            velocity = jnp.where(ok, new_velocity, velocity)
            done = done + ok.astype(done.dtype)
            record = jnp.where(alive & jnp.isfinite(value), value, jnp.nan)
            return (x, velocity, chol, best_x, best_loss, ok, done), record

        n = x0.shape[0]
        init = (
            x0,
            jnp.zeros_like(x0),
            jnp.eye(n, dtype=x0.dtype),
            x0,
            jnp.asarray(jnp.inf, x0.dtype),
            jnp.asarray(True),
            jnp.asarray(0),
        )
        carry, losses = jax.lax.scan(step, init, jnp.arange(steps))
        x, _, _, best_x, best_loss, alive, done = carry
        last = loss(x)
        use_last = alive & jnp.isfinite(last) & (last <= best_loss)
        best_x = jnp.where(use_last, x, best_x)
        best_loss = jnp.where(use_last, last, best_loss)
        return best_x, best_loss, losses, done


class _HessianOf(eqx.Module):
    """One data set's symmetrised Hessian of ``fn``."""

    fn: Any = eqx.field(static=True)
    unravel: _Unravel

    def __call__(self, x, one_args):
        hessian = jax.hessian(lambda y: self.fn(self.unravel(y), one_args))(x)
        return (hessian + hessian.T) / 2


def fit_many(
    loss_fn: Callable[[Any, Any], Any],
    params: Any,
    args: Any = None,
    *,
    args_axes: Any = 0,
    fisher_fn: Callable[[Any, Any], Any] | None = None,
    steps: int = 100,
    learning_rate: float = 0.1,
    momentum: float = 0.5,
    refresh_every: int = 5,
    damping: float = 1e-8,
    block_size: int | None = None,
    progress: bool = False,
) -> ManyFits:
    """Fit many independent data sets by natural-gradient descent, in one compiled program.

    Each data set ``i`` is fitted from ``params[i]`` by the steps of
    ``optax.chain(natural_gradient(F, damping, refresh_every), optax.sgd(learning_rate,
    momentum))``: ``v <- F^-1 g + momentum v``, ``x <- x - learning_rate v``, with ``g`` the
    gradient of ``loss_fn(params_i, args_i)`` and ``F = fisher_fn(params_i, args_i)``
    recomputed every ``refresh_every`` steps (Marquardt damping ``F + damping diag(F)``).
    The whole descent of every data set is ``jax.vmap``-ed into one program; the data
    sets run ``block_size`` at a time, each block spread over ``jax.devices()``.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(params, args) -> scalar`` for one data set, traceable by JAX.
    params : PyTree
        One start per data set: every leaf has a leading axis of length ``N``.
    args : PyTree, optional
        The data; leaves batched along ``args_axes``.
    args_axes : 0, None or a prefix pytree of them
        As ``jax.vmap``'s ``in_axes`` for ``args``: 0 where a leaf has one entry per data set,
        None where it is shared (e.g. ``(None, 0)`` for ``args = (optics, observations)``).
        Non-array leaves are always shared.
    fisher_fn : callable, optional
        ``fisher_fn(params, args) -> (n, n)`` a positive-definite metric in
        ``ravel_pytree(params)`` order (e.g. a Gauss-Newton matrix); default the Hessian
        of ``loss_fn``.
    steps : int, default 100
        Steps per fit, >= 1.
    learning_rate : float, default 0.1
        In units of the Newton step, in (0, 10).
    momentum : float, default 0.5
        In [0, 1).
    refresh_every : int, default 5
        Steps between recomputations of the metric, >= 1.
    damping : float, default 1e-8
        Relative Marquardt damping, >= 0.
    block_size : int, optional
        Data sets per compiled block (rounded up to a multiple of the device count);
        default all of them in one block. Smaller blocks bound the memory.
    progress : bool, default False
        Show a ``tqdm`` bar over the blocks.

    Returns
    -------
    ManyFits
        ``params`` (the lowest-loss point of each fit), ``loss``, ``losses`` and
        ``steps_done`` per data set.

    Raises
    ------
    TypeError
        If ``loss_fn`` or ``fisher_fn`` is not callable, or a setting has the wrong type.
    ValueError
        If a setting is out of range, or the leading axes of ``params`` and the batched
        ``args`` differ.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> data = jnp.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
    >>> loss = lambda p, d: jnp.sum((p["x"] - d) ** 2)
    >>> fits = fit_many(loss, {"x": jnp.zeros((3, 2))}, data, steps=30, learning_rate=1.0)
    >>> bool(jnp.allclose(fits.params["x"], data))
    True
    """
    name = "fit_many"
    if not callable(loss_fn):
        raise TypeError(f"{name}: `loss_fn` must be callable, got {type(loss_fn).__name__}.")
    if fisher_fn is not None and not callable(fisher_fn):
        raise TypeError(f"{name}: `fisher_fn` must be callable or None.")
    steps = _check_int(name, "steps", steps, 1)
    refresh_every = _check_int(name, "refresh_every", refresh_every, 1)
    learning_rate = _check_real(name, "learning_rate", learning_rate, 0.0, 10.0)
    if learning_rate == 0:
        raise ValueError(f"{name}: `learning_rate` must be > 0, got 0.")
    momentum = _check_real(name, "momentum", momentum, 0.0, 1.0)
    damping = _check_real(name, "damping", damping, 0.0, math.inf)
    if block_size is not None:
        block_size = _check_int(name, "block_size", block_size, 1)
    flat, unravel, arg_axes = _prepare(name, params, args, args_axes)

    single = _NaturalGradientFit(
        loss_fn=loss_fn,
        fisher_fn=fisher_fn,
        unravel=unravel,
        steps=steps,
        learning_rate=learning_rate,
        momentum=momentum,
        refresh_every=refresh_every,
        damping=damping,
    )
    best, loss, losses, done = _run_blocks(
        single, flat, args, arg_axes, block_size, progress, "fits (blocks of data sets)"
    )
    return ManyFits(params=jax.vmap(unravel)(best), loss=loss, losses=losses, steps_done=done)


def hessian_many(
    fn: Callable[[Any, Any], Any],
    params: Any,
    args: Any = None,
    *,
    args_axes: Any = 0,
    block_size: int | None = None,
    progress: bool = False,
) -> jax.Array:
    """The Hessian of ``fn(params_i, args_i)`` for every data set, in one compiled program.

    With ``fn`` minus a log-likelihood, at the best fit of each data set, the inverses are
    the covariances of the fits (their error bars). The data sets run ``block_size`` at a
    time, vmapped, each block spread over ``jax.devices()``.

    Parameters
    ----------
    fn : callable
        ``fn(params, args) -> scalar`` for one data set, traceable by JAX.
    params : PyTree
        Where to take each Hessian: leaves with a leading axis of length ``N``.
    args : PyTree, optional
        The data, batched along ``args_axes`` (see :func:`fit_many`).
    args_axes : 0, None or a prefix pytree of them
        As for :func:`fit_many`.
    block_size : int, optional
        Data sets per compiled block; default all in one.
    progress : bool, default False
        Show a ``tqdm`` bar over the blocks.

    Returns
    -------
    hessians : Array
        ``(N, n, n)`` in ``ravel_pytree(params_i)`` order, symmetrised.

    Raises
    ------
    TypeError
        If ``fn`` is not callable.
    ValueError
        If the leading axes differ or a setting is out of range.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> scale = jnp.array([1.0, 2.0])
    >>> fn = lambda p, s: s * jnp.sum(p ** 2)
    >>> hessian_many(fn, jnp.zeros((2, 3)), scale)[:, 0, 0].tolist()
    [2.0, 4.0]
    """
    name = "hessian_many"
    if not callable(fn):
        raise TypeError(f"{name}: `fn` must be callable, got {type(fn).__name__}.")
    if block_size is not None:
        block_size = _check_int(name, "block_size", block_size, 1)
    flat, unravel, arg_axes = _prepare(name, params, args, args_axes)

    single = _HessianOf(fn=fn, unravel=unravel)
    return _run_blocks(single, flat, args, arg_axes, block_size, progress, "Hessians (blocks)")
