"""Many independent natural-gradient fits in one compiled program (:func:`fit_many`).

A batch of ``N`` data sets (many stars, exposures, epochs, or the replications of a
calibration) is fitted by one program: ``jax.vmap`` over the data sets of a whole
natural-gradient descent (a ``lax.scan`` over its steps), in blocks over all devices
(:mod:`zdx_opt._blocks`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

import zdx_base
from zdx_base import checks

from ._blocks import Unravel, check_vectorise, prepare, run_blocks
from ._metric import (
    DENSE,
    SPARSE,
    HostFactors,
    as_operator,
    as_sparse_matrix,
    cg_solve,
    check_cg_options,
    check_mismatch,
    damped_cholesky,
    metric_form,
    sparse_shift,
)


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
    solve_residual : Array
        ``(N,)`` the largest relative residual ``||g - F_d v|| / ||g||`` of the
        conjugate-gradient solves of each fit's steps (matrix-free metric); 0 where the
        metric is solved exactly (dense or structured).
    """

    params: Any
    loss: jax.Array
    losses: jax.Array
    steps_done: jax.Array
    solve_residual: jax.Array | None = None

    @property
    def stopped_early(self) -> jax.Array:
        """``(N,)`` True where a fit stopped before its last step."""
        return self.steps_done < self.losses.shape[1]


class _NaturalGradientFit(eqx.Module):
    """One data set's natural-gradient fit, ``(x0, args) -> (best, loss, losses, steps)``.

    The user's functions are ordinary fields: the block program captures them (their
    arrays are inputs, the rest compared by equality, ``zdx_batching.capture``)."""

    loss_fn: Callable
    fisher_fn: Callable | None
    unravel: Unravel
    steps: int = eqx.field(static=True)
    learning_rate: float = eqx.field(static=True)
    momentum: float = eqx.field(static=True)
    refresh_every: int = eqx.field(static=True)
    damping: float = eqx.field(static=True)
    rtol: float | None = eqx.field(static=True)
    max_steps: int | None = eqx.field(static=True)

    def __call__(self, x0, one_args):
        loss_fn, fisher_fn, unravel = self.loss_fn, self.fisher_fn, self.unravel
        steps, learning_rate, momentum = self.steps, self.learning_rate, self.momentum
        refresh_every, damping = self.refresh_every, self.damping
        rtol, max_steps = self.rtol, self.max_steps
        n = x0.shape[0]

        def loss(x):
            return loss_fn(unravel(x), one_args)

        def metric(x):
            if fisher_fn is None:
                return jax.hessian(loss)(x)
            return fisher_fn(unravel(x), one_args)

        form = metric_form("fit_many", "fisher_fn(params, args)", metric(x0))
        factors = HostFactors()

        # What a metric needs between refreshes: the Cholesky factor (dense), the matrix
        # and its damping (structured), the point to linearise at (matrix-free).
        def factor(x):
            if form == DENSE:
                chol, _ = damped_cholesky(jnp.asarray(metric(x)), damping)
                return chol
            if form == SPARSE:
                matrix = as_sparse_matrix("fit_many", "fisher_fn(params, args)", metric(x))
                matrix = check_mismatch("fit_many", matrix)
                return matrix, sparse_shift(matrix, damping)
            return x

        def solve(held, grad):
            """The direction, and the relative residual of its solve (0 when exact)."""
            zero = jnp.zeros((), grad.dtype)
            if form == DENSE:
                return jax.scipy.linalg.cho_solve((held, True), grad), zero
            if form == SPARSE:
                matrix, shift = held
                direction, ok = factors.solve(matrix, shift, grad)
                return jnp.where(ok, direction, jnp.nan), zero
            operator = as_operator(
                "fit_many", "fisher_fn(params, args)", metric(held), n, grad.dtype
            )
            direction, ok, residual, _ = cg_solve(operator, None, damping, grad, rtol, max_steps)
            return jnp.where(ok, direction, jnp.nan), residual

        value_and_grad = jax.value_and_grad(loss)

        def step(carry, i):
            x, velocity, held, best_x, best_loss, alive, done, worst = carry
            held = jax.lax.cond(i % refresh_every == 0, factor, lambda _: held, x)
            value, grad = value_and_grad(x)
            direction, residual = solve(held, grad)
            new_velocity = direction + momentum * velocity
            new_x = x - learning_rate * new_velocity
            ok = alive & jnp.isfinite(value) & jnp.all(jnp.isfinite(new_x))
            better = ok & (value < best_loss)
            best_x = jnp.where(better, x, best_x)
            best_loss = jnp.where(better, value, best_loss)
            x = jnp.where(ok, new_x, x)
            velocity = jnp.where(ok, new_velocity, velocity)
            done = done + ok.astype(done.dtype)
            worst = jnp.where(ok, jnp.maximum(worst, residual), worst)
            record = jnp.where(alive & jnp.isfinite(value), value, jnp.nan)
            return (x, velocity, held, best_x, best_loss, ok, done, worst), record

        held = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(factor, x0))
        init = (
            x0,
            jnp.zeros_like(x0),
            held,
            x0,
            jnp.asarray(jnp.inf, x0.dtype),
            jnp.asarray(True),
            jnp.asarray(0),
            jnp.zeros((), x0.dtype),
        )
        carry, losses = jax.lax.scan(step, init, jnp.arange(steps))
        x, _, _, best_x, best_loss, alive, done, worst = carry
        last = loss(x)
        use_last = alive & jnp.isfinite(last) & (last <= best_loss)
        best_x = jnp.where(use_last, x, best_x)
        best_loss = jnp.where(use_last, last, best_loss)
        return best_x, best_loss, losses, done, worst


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
    rtol: float | None = None,
    max_steps: int | None = None,
    block_size: int | None = None,
    vectorise: bool | None = None,
    progress: bool = False,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 1,
    checkpoint_seconds: float | None = None,
) -> ManyFits:
    """Fit many independent data sets by natural-gradient descent, in one compiled program.

    Each data set ``i`` is fitted from ``params[i]`` by the steps of
    ``optax.chain(natural_gradient(F, damping, refresh_every), optax.sgd(learning_rate,
    momentum))``: ``v <- F^-1 g + momentum v``, ``x <- x - learning_rate v``, with ``g`` the
    gradient of ``loss_fn(params_i, args_i)`` and ``F = fisher_fn(params_i, args_i)``
    recomputed every ``refresh_every`` steps (Marquardt damping ``F + damping diag(F)``).
    The metric may be dense, structured or matrix-free, as for :func:`natural_gradient`,
    and is solved the same way: Cholesky, ``zdx_batching.SchurFactor`` on the host
    (``jax.pure_callback``, one data set at a time), or conjugate gradients.
    The whole descent of every data set is ``jax.vmap``-ed into one program; the data
    sets run ``block_size`` at a time, each block spread over ``jax.devices()``.

    The program is reused under the family's rule (``zdx_batching.capture``): a call with
    the same functions, or new ones of the same code and equal captures (a new ``lambda``
    over the same data), and inputs of the same shapes runs the program compiled before,
    with the current values of every array, the arrays the functions capture included. A
    function the rule cannot describe (one that reads a plain object, say) is traced
    afresh at every call.

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
        ``fisher_fn(params, args) ->`` a positive-definite metric in
        ``zdx_base.ravel(params)`` order (e.g. a Gauss-Newton matrix): an ``(n, n)``
        array; a ``zdx_batching.SparseMatrix`` (``zdx_batching.sparse_fisher_fn(residuals)``
        called as ``(params, args)``), solved exactly; or a lineax operator or a
        Fisher-vector product ``v -> F v`` on flat vectors, solved by conjugate gradients
        with the damping ``F + damping * I`` (no diagonal to scale it by). Default the
        Hessian of ``loss_fn``, dense.
    steps : int, default 100
        Steps per fit, >= 1.
    learning_rate : float, default 0.1
        In units of the Newton step, in (0, 10].
    momentum : float, default 0.5
        In [0, 1).
    refresh_every : int, default 5
        Steps between recomputations of the metric, >= 1.
    damping : float, default 1e-8
        Relative Marquardt damping, >= 0.
    rtol, max_steps : optional
        The conjugate-gradient tolerance and step limit for a matrix-free metric, as in
        :func:`natural_gradient`; ignored otherwise. A fit whose solve does not reach
        ``rtol`` goes on with the direction found; ``solve_residual`` reports it.
    block_size : int, optional
        Data sets per compiled block (rounded up to a multiple of the device count);
        default all of them in one block. Smaller blocks bound the memory.
    vectorise : bool, optional
        ``True``: the data sets of a block (each device's share) run as one ``jax.vmap``-ed
        program. ``False``: one after another inside the same compiled program
        (``jax.lax.map``), with the same results, no Python between data sets and the
        memory of one data set. Default ``False`` on CPU, where on the optics fits it ran
        as fast as or faster than the vectorised program and, for 100 data sets, compiled in
        seconds instead of about 30 s (benchmarks/README.md); ``True`` on GPU and TPU.
    progress : bool, default False
        Show a ``tqdm`` bar over the blocks.
    checkpoint : str or os.PathLike, optional
        A file that keeps the fits of the blocks done so far (``zdx_base.Checkpoint``).
        When it exists, the run starts after its last block and ends with the same
        result, bit for bit, as a run never stopped (each block is the same compiled
        program either way); one written for other functions, data, starts or
        settings (the block size and the device count included) is refused. SIGINT and
        SIGTERM let the block in progress finish, write a last checkpoint and stop the
        run (``zdx_base.CheckpointInterrupted``). Progress is saved block by block: give
        a ``block_size`` for a long run.
    checkpoint_every : int, default 1
        Blocks between checkpoints.
    checkpoint_seconds : float, optional
        Write at most this often instead (the last block is always written).

    Returns
    -------
    ManyFits
        ``params`` (the lowest-loss point of each fit), ``loss``, ``losses``,
        ``steps_done`` and ``solve_residual`` per data set.

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
    checks.check_callable(name, "loss_fn", loss_fn, "a function (params, args) -> scalar")
    if fisher_fn is not None:
        checks.check_callable(
            name, "fisher_fn", fisher_fn, "a function (params, args) -> a Fisher matrix"
        )
    steps = checks.check_int(name, "steps", steps, minimum=1)
    refresh_every = checks.check_int(name, "refresh_every", refresh_every, minimum=1)
    learning_rate = checks.check_number(
        name, "learning_rate", learning_rate, positive=True, maximum=10
    )
    momentum = checks.check_number(name, "momentum", momentum, minimum=0)
    if momentum >= 1:  # a momentum of 1 never forgets a step
        raise ValueError(f"{name}: momentum must be a number in [0, 1), got momentum={momentum}.")
    damping = checks.check_number(name, "damping", damping, minimum=0)
    rtol, max_steps = check_cg_options(name, rtol, max_steps)
    block_size = checks.check_int(name, "block_size", block_size, minimum=1, allow_none=True)
    vectorise = check_vectorise(name, vectorise)
    flat, unravel, arg_axes = prepare(name, params, args, args_axes)

    fit_settings = (steps, learning_rate, momentum, refresh_every, damping, rtol, max_steps)
    single = _NaturalGradientFit(loss_fn, fisher_fn, unravel, *fit_settings)
    saver = None
    if checkpoint is not None:
        saver = zdx_base.Checkpoint(
            name,
            checkpoint,
            model=(loss_fn, fisher_fn, params, args, args_axes),
            settings=dict(
                steps=steps,
                learning_rate=learning_rate,
                momentum=momentum,
                refresh_every=refresh_every,
                damping=damping,
                rtol=rtol,
                max_steps=max_steps,
                block_size=block_size,
                vectorise=vectorise,
                devices=len(jax.devices()),
            ),
            every=checkpoint_every,
            seconds=checkpoint_seconds,
            unit="blocks",
        )
    best, loss, losses, done, residual = run_blocks(
        single, flat, args, arg_axes, block_size, vectorise, progress, "fits (blocks)", saver
    )
    return ManyFits(
        params=jax.vmap(unravel)(best),
        loss=loss,
        losses=losses,
        steps_done=done,
        solve_residual=residual,
    )
