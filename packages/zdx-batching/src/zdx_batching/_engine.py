"""The engine: from a checked request to its result, with or without a cached program.

1. Inside someone else's trace (``jax.jit``, ``vmap``, ``grad``), or with ``jit=False``,
   the blocks run inline (the outer transformation compiles).
2. Otherwise the call is described (``_capture``): array leaves plus a key compared by
   value. A program stored under that key is called with the new leaves; none is traced
   again.
3. On a miss, a :class:`~._program.Program` is built and called, then stored under the
   key the call has *after* tracing (a function that counts its own traces has changed).
4. A call that cannot be described (:class:`~._capture.Opaque`) gets a fresh program,
   never stored: traced again every time, never stale.

A function that needs concrete values of the arrays it captures (``np.asarray(data)``)
fails to trace with them as inputs: it is traced again with them baked in, keyed by
their contents, and that is remembered for the next calls of the same kind.
"""

from __future__ import annotations

from typing import Any

import jax

from . import _cache, _program
from ._capture import (
    Capture,
    Opaque,
    Traced,
    array_types,
    capture,
    capture_with_entries,
    changed_entries,
)
from ._columns import plan_blocks
from ._early import Attempt
from ._flat import abstract, make_unflatten
from ._precision import warn_if_float32, warn_if_not_finite
from ._program import Program, global_inputs, is_finite
from ._request import Request, make_request
from ._shortcut import build as build_matcher

# Raised while tracing when ``f`` needs a concrete value of something it captured.
_NEEDS_CONCRETE = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerIntegerConversionError,
    jax.errors.NonConcreteBooleanIndexError,
)


def compute(request: Request, early: Attempt | None = None) -> tuple[jax.Array, bool | None]:
    """The flat result of ``request`` and whether it is finite (``None`` when traced).

    ``early`` is the call's early start (``_early.py``): its result is used only if the
    ordinary lookup below chooses the same program and arrays."""
    if request.traced or not request.jit:
        return _inline(request)
    devices = tuple(jax.devices())
    setting = (
        request.columns.name,
        request.layout.key,
        None if request.vector is None else abstract(request.vector),
        request.nbatches,
        request.limit,
        request.checkpoint,
        request.progress,
        tuple(device.id for device in devices),
        bool(jax.config.jax_enable_x64),
    )
    pair = (request.f, request.args)
    state = _cache.state_entries()
    if not state:  # a repeated call of a common shape: checked without describing it
        found = _cache.shortcut(setting, pair)
        if found is not None:
            program, leaves = found
            inputs = global_inputs((request.x_leaves, leaves, request.vector), devices)
            if early is not None and len(devices) == 1:
                if early.agrees(program, inputs):
                    return program.finish(early.result)
                early.remember(request, setting)
            return program(inputs)
    try:
        described = capture(pair, state=state)
        bake_key = (setting, described.key)
        bake = bool(described.leaves) and _cache.needs_baking(bake_key)
        if bake:
            described = capture(pair, bake=True, state=state)
    except Traced:  # f captures values of an outer trace: that trace compiles
        return _inline(request, traced=True)
    except Opaque:
        return _fresh(request, devices, None)
    baked = not described.leaves
    try:
        return _cached(request, devices, setting, described, baked, shortcut=not bake)
    except _NEEDS_CONCRETE:
        if baked:
            raise
    _cache.remember_baking(bake_key)
    try:
        described = capture(pair, bake=True, state=state)
        return _cached(request, devices, setting, described, True, shortcut=False)
    except Opaque:
        return _fresh(request, devices, None)


def _program_key(setting: tuple, described: Capture) -> Any:
    return (setting, described.key, tuple(abstract(leaf) for leaf in described.leaves))


def _function_of(request: Request, described: Capture | None):
    if described is None or described.rebuild is None:
        original = (request.f, request.args)
        return lambda leaves: original
    return lambda leaves: described.rebuild(iter(leaves))


def _inputs(request: Request, described: Capture | None, devices: tuple) -> tuple:
    leaves = () if described is None else described.leaves
    return global_inputs((request.x_leaves, leaves, request.vector), devices)


def _fresh(request: Request, devices: tuple, described: Capture | None) -> tuple:
    program = Program(request, _function_of(request, described), devices)
    inputs = _inputs(request, described, devices)
    program.build(inputs)
    return program(inputs)


def _cached(
    request: Request,
    devices: tuple,
    setting: tuple,
    described: Capture,
    baked: bool,
    shortcut: bool,
) -> tuple:
    program = _cache.lookup(_program_key(setting, described))
    inputs = _inputs(request, described, devices)
    if program is not None:
        return program(inputs)
    pair, state = (request.f, request.args), _cache.state_entries()
    _, before = capture_with_entries(pair, bake=baked, state=state)
    program = Program(request, _function_of(request, described), devices)
    program.build(inputs)
    result, finite = program(inputs)
    try:  # entries the function wrote while traced (a call counter) are its state
        _, after = capture_with_entries(pair, bake=baked, state=state)
        changed = changed_entries(before, after)
        if changed:
            _cache.remember_state(changed)
        final = capture(pair, bake=baked, state=_cache.state_entries())
    except (Opaque, Traced):
        return result, finite
    key = _program_key(setting, final)
    stored = _cache.store(key, program)
    if stored and shortcut and not _cache.state_entries():  # a matcher can find the arrays
        matcher = build_matcher(pair, array_types())
        if matcher is not None:
            _cache.store_shortcut(setting, matcher, program, key)
    return result, finite


def _inline(request: Request, traced: bool = False) -> tuple[jax.Array, bool | None]:
    """The blocks run op by op (``jit=False``) or inside an outer trace, on one device."""
    devices = (jax.devices()[0],)
    plan = plan_blocks(request.ncolumns, request.nbatches, devices)
    program = Program(request, _function_of(request, None), devices)
    traced = traced or request.traced
    show = request.progress and not traced
    bar = _program.progress_bar(request.columns.name, plan.blocks) if show else None

    def tick(_: Any) -> None:
        bar.update(1)

    result = None
    try:
        run = program.traceable(plan, None if bar is None else tick)
        result = run(request.x_leaves, (), request.vector)
    finally:
        if bar is not None:
            if result is not None:
                jax.block_until_ready(result)
            jax.effects_barrier()
            bar.close()
    if traced:
        return result, None
    return result, is_finite(request.columns, result)


def evaluate(request: Request, early: Attempt | None = None) -> jax.Array:
    """Compute ``request`` (with the call's early start, if any) and warn about float32
    and non-finite results."""
    name = request.columns.name
    if request.columns.second_order:
        warn_if_float32(name)
    result, finite = compute(request, early)
    if finite is False:
        warn_if_not_finite(name, finite)
    return result


def matrix(
    columns: Any,
    f: Any,
    x: Any,
    nbatches: Any,
    jit: Any,
    checkpoint: Any,
    args: Any,
    max_memory: Any,
    progress: Any,
) -> tuple[jax.Array, Any]:
    """What a public function of columns returns: the result of the checked request and
    the ``unflatten`` of ``x``'s layout. A call like the last one starts its program
    before it is checked (``_early.py``)."""
    early = Attempt(columns, f, x, args, (nbatches, jit, checkpoint, max_memory, progress))
    request = make_request(
        columns,
        f,
        x,
        args=args,
        nbatches=nbatches,
        jit=jit,
        checkpoint=checkpoint,
        max_memory=max_memory,
        progress=progress,
    )
    return evaluate(request, early), make_unflatten(request.layout)
