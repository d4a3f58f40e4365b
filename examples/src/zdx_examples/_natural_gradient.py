"""Natural-gradient descent on the optics fit's loss (the tutorial's section 5)."""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as onp
import optax
from tqdm.auto import tqdm

import zdx_base
import zdx_opt
from zdx_base import checks

from ._curvature import loss_curvature, loss_curvature_fn
from ._fit import loss_fn

_FN = "natural_gradient_descent"


class _Descent(NamedTuple):
    """Where the descent stands after a step: all its checkpoint holds."""

    params: dict
    state: Any
    losses: list
    history: list
    best: dict
    best_loss: float


def _entries(now: _Descent) -> dict:
    out = {"losses": onp.asarray(now.losses), "best_loss": onp.asarray(now.best_loss)}
    out["history"] = onp.stack(now.history)
    for name, tree in (("params", now.params), ("state", now.state), ("best", now.best)):
        for i, leaf in enumerate(jax.tree.leaves(tree)):
            out[f"{name}.{i}"] = leaf
    return out


def _resume(saver: zdx_base.Checkpoint, first: _Descent) -> _Descent:
    """The descent saved in ``saver``, or ``first`` when there is none yet."""
    loaded = saver.load()
    if loaded is None:
        return first
    entries, _ = loaded

    def tree(name, like):
        leaves, treedef = jax.tree.flatten(like)
        restored = []
        for i, leaf in enumerate(leaves):
            value = entries[f"{name}.{i}"]
            if isinstance(leaf, (jax.Array, onp.ndarray)):
                restored.append(jnp.asarray(value, leaf.dtype))
            else:  # a Python number
                restored.append(type(leaf)(value.item()))
        return jax.tree.unflatten(treedef, restored)

    return _Descent(
        params=tree("params", first.params),
        state=tree("state", first.state),
        losses=[float(v) for v in entries["losses"]],
        history=list(entries["history"]),
        best=tree("best", first.params),
        best_loss=float(entries["best_loss"]),
    )


def check_learning_rate(fn: str, learning_rate: float) -> float:
    """``learning_rate`` as a float in ``(0, 10]``: a step in units of the Newton step."""
    return checks.check_number(fn, "learning_rate", learning_rate, positive=True, maximum=10)


def _unusable_curvature(params: dict, args: tuple) -> str | None:
    """Why the loss curvature at ``params`` cannot be the natural gradient's metric (not
    finite, or not positive definite), or None when it can."""
    optics, observations = args
    matrix = onp.asarray(loss_curvature(params, optics, observations))
    try:
        checks.check_finite_matrix(_FN, "the refreshed loss curvature", matrix)
        checks.decompose_positive_definite(
            _FN,
            "the refreshed loss curvature",
            matrix,
            names=zdx_base.scalar_names(params),
        )
    except ValueError as error:
        return str(error)
    return None


def natural_gradient_descent(
    params: dict,
    args: tuple,
    steps: int = 100,
    learning_rate: float = 0.1,
    refresh_every: int = 5,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 10,
) -> tuple[dict, jax.Array, jax.Array]:
    """Natural-gradient descent on :func:`loss_fn`, the tutorial's section 5.

    ``optax.chain(zdx_opt.natural_gradient(C, refresh_every=...), optax.sgd(learning_rate,
    momentum=0.5))``, with ``C(params)`` the loss curvature (:func:`loss_curvature`)
    recomputed every ``refresh_every`` steps. Two departures from the tutorial, both for
    robustness: the curvature is refreshed (at a start with no wavefront error the even
    aberrations are barely constrained, so the start's matrix is a poor metric once they
    grow), and every parameter moves from the first step (with the natural gradient all of
    them settle at the same rate; holding the wavefront error still while the positions
    settle can lead into the mirror-image minimum, where the even aberrations have the
    wrong sign). Stops early, with a warning, if the loss stops being finite or a
    refreshed curvature is not positive definite.

    Parameters
    ----------
    params, args
        The start, and the loss's ``(optics, observations)``.
    steps : int
        Number of steps, >= 1.
    learning_rate : float
        Step size in units of the Newton step, in (0, 10].
    refresh_every : int
        Recompute the loss curvature every this many steps, >= 1.
    progress : bool
        Show a ``tqdm`` bar with the loss.
    checkpoint : str or os.PathLike, optional
        A file that keeps the descent's progress every ``checkpoint_every`` steps
        (``zdx_base.Checkpoint``: the parameters, the optimiser's state, the best point
        and the history). When it exists the descent continues from it and ends with the
        same result, bit for bit, as one never stopped; one written for another start,
        other data or other settings is refused. SIGINT and SIGTERM write a last
        checkpoint and stop cleanly (``zdx_base.CheckpointInterrupted``).
    checkpoint_every : int
        Steps between checkpoints, >= 1.

    Returns
    -------
    params : dict
        The parameters with the lowest loss seen.
    losses : Array
        ``(steps_done,)`` the loss before each step.
    history : Array
        ``(steps_done + 1, n)`` the flattened parameters at the start and after each step.

    Raises
    ------
    TypeError
        If a setting has the wrong type.
    ValueError
        If a setting is out of range.
    """
    steps = checks.check_int(_FN, "steps", steps, minimum=1)
    learning_rate = check_learning_rate(_FN, learning_rate)
    refresh_every = checks.check_int(_FN, "refresh_every", refresh_every, minimum=1)
    optim = optax.chain(
        zdx_opt.natural_gradient(
            eqx.Partial(loss_curvature_fn, args=args), refresh_every=refresh_every
        ),
        optax.sgd(learning_rate, momentum=0.5),
    )
    state = eqx.filter_jit(optim.init)(params)
    saver = None
    if checkpoint is not None:
        saver = zdx_base.Checkpoint(
            _FN,
            checkpoint,
            model=(params, args),
            settings={"steps": steps, "learning_rate": learning_rate, "refresh": refresh_every},
            every=checkpoint_every,
        )
    value_and_grad = eqx.filter_value_and_grad(loss_fn)

    @eqx.filter_jit
    def step(params, state, args):
        loss, grads = value_and_grad(params, args)
        updates, state = optim.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    descent = _Descent(params, state, [], [onp.asarray(zdx_base.ravel(params)[0])], params, onp.inf)
    if saver is not None:
        descent = _resume(saver, descent)
    params, state, losses, history, best, best_loss = descent
    bar = tqdm(
        total=steps, initial=len(losses), desc="natural gradient", unit="step", disable=not progress
    )
    guard = saver.interruptible() if saver is not None else contextlib.nullcontext()
    with guard:
        while len(losses) < steps:
            try:
                new, state, loss = step(params, state, args)
            except RuntimeError:  # raised inside the compiled step: was it the metric?
                reason = _unusable_curvature(params, args)
                if reason is None:
                    raise
                warnings.warn(
                    f"natural gradient: stopped after {len(losses)} steps: {reason}",
                    RuntimeWarning,
                    stacklevel=2,
                )
                break
            loss = float(loss)
            if not onp.isfinite(loss):
                warnings.warn(
                    f"natural gradient: the loss became {loss} after {len(losses)} steps; "
                    "stopping there (try a smaller learning_rate).",
                    RuntimeWarning,
                    stacklevel=2,
                )
                break
            if loss < best_loss:
                best, best_loss = params, loss
            params = new
            losses.append(loss)
            history.append(onp.asarray(zdx_base.ravel(params)[0]))
            bar.update(1)
            bar.set_postfix(log10_loss=f"{onp.log10(loss):.4f}")
            if saver is not None and (len(losses) % saver.every == 0 or len(losses) == steps):
                now = _Descent(params, state, losses, history, best, best_loss)
                saver.reached(len(losses), steps, functools.partial(_entries, now))
    bar.close()
    final = float(eqx.filter_jit(loss_fn)(params, args)) if losses else onp.inf
    if onp.isfinite(final) and final <= best_loss:
        best = params
    return best, jnp.asarray(losses), jnp.asarray(onp.array(history))
