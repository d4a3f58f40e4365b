"""L-BFGS in the latent space whitened by the loss curvature (the tutorial's section 6)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as onp
from tqdm.auto import tqdm

import zdx_opt
from zdx_base import checks

from ._fit import loss_fn


class _LossRecorder:
    """Keeps the loss of every evaluation and moves a progress bar (a host callback)."""

    def __init__(self, bar: Any):
        self.losses: list[float] = []
        self.bar = bar

    def __call__(self, loss: Any) -> None:
        loss = float(loss)
        self.losses.append(loss)
        self.bar.update(1)
        if onp.isfinite(loss) and loss > 0:
            self.bar.set_postfix(log10_loss=f"{onp.log10(loss):.4f}")


def whitened_lbfgs(
    params: dict,
    args: tuple,
    loss_curvature: jax.Array,
    max_steps: int = 256,
    progress: bool = True,
) -> tuple[zdx_opt.MinimiseResult, jax.Array]:
    """L-BFGS in the latent space whitened by ``loss_curvature``, the tutorial's section 6.

    One call to ``zdx_opt.minimise(loss_fn, params, args, fisher=loss_curvature)``; the
    loss of every evaluation is recorded (and moves a ``tqdm`` bar) through
    ``jax.debug.callback``.

    Parameters
    ----------
    params, args
        The start, and the loss's ``(optics, observations)``.
    loss_curvature : Array
        ``(n, n)`` the loss curvature (:func:`loss_curvature`) to whiten with.
    max_steps : int
        Most L-BFGS steps, >= 1.
    progress : bool
        Show a ``tqdm`` bar over the loss evaluations.

    Returns
    -------
    result : zdx_opt.MinimiseResult
        ``params``, ``num_steps``, ``result``...
    losses : Array
        The loss at each evaluation, in order.

    Raises
    ------
    TypeError, ValueError
        If ``max_steps`` is not an integer >= 1.
    """
    max_steps = checks.check_int("whitened_lbfgs", "max_steps", max_steps, minimum=1)
    bar = tqdm(desc="L-BFGS", unit="eval", disable=not progress)
    recorder = _LossRecorder(bar)

    def recorded_loss(params, args):
        loss = loss_fn(params, args)
        jax.debug.callback(recorder, loss, ordered=True)
        return loss

    try:
        result = zdx_opt.minimise(
            recorded_loss, params, args, fisher=loss_curvature, max_steps=max_steps
        )
        jax.block_until_ready(result.params)
        jax.effects_barrier()
    finally:
        bar.close()
    return result, jnp.asarray(recorder.losses)
