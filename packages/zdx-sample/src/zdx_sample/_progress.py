"""A tqdm bar ticked from inside a compiled sampler, every few steps rather than every step.

The compiled program calls :func:`report` (through ``jax.debug.callback``) with the
number of steps done so far. The program is compiled once and reused, so the callback
cannot hold a bar of its own: it updates whichever bar is open in :func:`progress_bar`.
Steps are absolute counts, so a report that arrives twice (once per device when chains
run on several devices) moves the bar once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as onp
from tqdm.auto import tqdm

_OPEN: list[tqdm] = []
# How many times a bar moves over a run, at most (a report costs a host round trip).
REPORTS_PER_RUN = 50


def report_interval(total_steps: int) -> int:
    """Steps between two reports for a run of ``total_steps`` steps."""
    return max(1, -(-int(total_steps) // REPORTS_PER_RUN))


@contextlib.contextmanager
def progress_bar(total: int, desc: str, enabled: bool) -> Iterator[None]:
    """Open a bar of ``total`` steps that :func:`report` moves (nothing when disabled)."""
    if not enabled:
        yield
        return
    bar = tqdm(total=int(total), desc=desc, unit="step", leave=True)
    _OPEN.append(bar)
    try:
        yield
        bar.update(bar.total - bar.n)  # the last report may fall short of the end
    finally:
        _OPEN.remove(bar)
        bar.close()


def _move(done, postfix) -> None:
    if not _OPEN:
        return
    bar = _OPEN[-1]
    done = int(done)
    if done > bar.n:
        bar.update(done - bar.n)
    if postfix:
        values = {name: onp.asarray(value).item() for name, value in postfix.items()}
        bar.set_postfix(values, refresh=False)


def report(step: jax.Array, every: int, done: jax.Array, **postfix: jax.Array) -> None:
    """Inside a compiled loop: send ``done`` steps (and the scalars ``postfix``, shown
    beside the bar) to the open bar when ``step`` is a multiple of ``every`` (``step``
    counts from 1)."""
    jax.lax.cond(
        step % every == 0,
        lambda: jax.debug.callback(_move, done, postfix),
        lambda: None,
    )


def zero_divergences() -> jax.Array:
    return jnp.zeros((), jnp.int32)
