"""NUTS and MAMS in compiled segments, with a checkpoint between them.

The steps are those of :func:`zdx_sample._program.run` (the same functions: start,
warm-up, the sampling keys split up front, sampling), cut into segments of
``checkpoint.every`` steps per chain; a segment that straddles the end of warm-up runs the
last warm-up steps and the first sampling steps. Between segments the chains' state
(random keys, step-size adaptation, the metric's factor and window, the kernel state) and
the draws so far are written, so a resumed run continues with the very numbers an
uninterrupted one would have had. The chains run vectorised on one device.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as onp

import zdx_base

from . import _progress
from ._compiled import Program
from ._program import (
    Settings,
    outputs,
    sample,
    sampling_keys,
    start_chains,
    warmup,
    warmup_xs,
)

_STATIC = ("settings", "num")


def _start(density, starts, keys, settings: Settings, num: int):
    return start_chains(settings, density, starts, keys)


def _warmup_segment(density, chains, xs, offset, settings: Settings, num: int):
    return warmup(settings, density, chains, num, xs, offset)


def _keys(chains, settings: Settings, num: int):
    return sampling_keys(settings, chains, num)


def _sample_segment(density, chains, carry, xs, offset, settings: Settings, num: int):
    return sample(settings, density, chains, num, carry, xs, offset)


def _outputs(chains, warmup_steps, position, logp, diverging, steps, num: int):
    return outputs(chains, num, warmup_steps, position, logp, diverging, steps)


_START = Program(_start, static_argnames=_STATIC)
_WARMUP = Program(_warmup_segment, static_argnames=_STATIC)
_KEYS = Program(_keys, static_argnames=_STATIC)
_SAMPLE = Program(_sample_segment, static_argnames=_STATIC)
_OUTPUTS = Program(_outputs, static_argnames=("num",))
_DRAWS = ("position", "log_density", "diverging", "gradients")


def _joined(parts: list) -> Any:
    return jax.tree.map(lambda *xs: onp.concatenate(xs, axis=0), *parts) if parts else None


def _entries(chains, divergences, warm_parts: list, sample_parts: list) -> dict:
    out = {f"chains.{i}": leaf for i, leaf in enumerate(jax.tree.leaves(chains))}
    out["divergences"] = divergences
    if warm_parts:
        out["warmup_gradients"] = _joined(warm_parts)
    if sample_parts:
        out.update(zip(_DRAWS, _joined(sample_parts)))
    return out


def run_in_segments(
    checkpoint: zdx_base.Checkpoint,
    settings: Settings,
    density: Any,
    starts: jax.Array,
    keys: jax.Array,
) -> dict:
    """The outputs of :func:`zdx_sample._program.run` for these chains, computed in
    segments written to ``checkpoint`` (and resumed from it when it holds a run)."""
    s = settings
    num = starts.shape[0]
    total = s.num_warmup + s.num_samples
    offset = jnp.zeros((), jnp.int32)
    chains = _START(density, starts, jax.random.key_data(keys), settings=s, num=num)
    divergences = _progress.zero_divergences()
    warm_parts: list = []
    sample_parts: list = []
    done = 0
    loaded = checkpoint.load()
    if loaded is not None:
        entries, done = loaded
        chain_def = jax.tree.structure(chains)
        leaves = [jnp.asarray(entries[f"chains.{i}"]) for i in range(chain_def.num_leaves)]
        chains = jax.tree.unflatten(chain_def, leaves)
        divergences = jnp.asarray(entries["divergences"])
        if "warmup_gradients" in entries:
            warm_parts.append(entries["warmup_gradients"])
        if "position" in entries:
            sample_parts.append(tuple(entries[name] for name in _DRAWS))

    schedule = warmup_xs(s)
    step_keys = None
    with checkpoint.interruptible():
        for start, stop in checkpoint.segments(done, total):
            if start < s.num_warmup:
                end = min(stop, s.num_warmup)
                xs = tuple(x[start:end] for x in schedule)
                chains, gradients = _WARMUP(density, chains, xs, offset, settings=s, num=num)
                warm_parts.append(onp.asarray(gradients))
            if stop > s.num_warmup:
                first = max(start, s.num_warmup)
                if step_keys is None:
                    step_keys = _KEYS(chains, settings=s, num=num)
                xs = (
                    jnp.arange(first, stop),
                    step_keys[first - s.num_warmup : stop - s.num_warmup],
                )
                (states, divergences), draws = _SAMPLE(
                    density, chains, (chains.state, divergences), xs, offset, settings=s, num=num
                )
                chains = chains._replace(state=states)
                sample_parts.append(tuple(onp.asarray(a) for a in draws))
            checkpoint.reached(
                stop,
                total,
                functools.partial(_entries, chains, divergences, warm_parts, sample_parts),
            )

    batch = (num,) if num > 1 else ()
    warm = _joined(warm_parts)
    if warm is None:
        warm = onp.zeros((0, *batch), onp.int32)
    return _OUTPUTS(chains, warm, *_joined(sample_parts), num=num)
