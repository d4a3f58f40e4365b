"""The machinery every public function shares: check, look up or compile, run, warn."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._blocks import (
    Columns,
    HessianColumns,
    Plan,
    largest_block,
    plan_blocks,
    replicated,
    run_blocks,
)
from ._cache import contains, get_or_create, store
from ._checks import check_callable, check_flag, check_nbatches, parse_memory
from ._closure import Split, split_callable
from ._flat import Layout, abstract, layout_of, make_unflatten
from ._memory import choose_block, footprint
from ._precision import warn_if_float32, warn_if_not_finite

# Raised while tracing when ``f`` needs a concrete value of something it captured.
_NEEDS_CONCRETE = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerIntegerConversionError,
    jax.errors.NonConcreteBooleanIndexError,
)


def has_tracer(leaves: Any) -> bool:
    """Whether any leaf is being traced (the call happens inside jit, vmap, grad...)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def shape_struct(leaf: Any) -> jax.ShapeDtypeStruct:
    """An abstract stand-in for ``leaf``, for lowering without data."""
    shape, dtype, weak = abstract(leaf)
    return jax.ShapeDtypeStruct(shape, dtype, weak_type=weak)


def _settings_key() -> tuple:
    """JAX settings that change what a traced program means."""
    return (bool(jax.config.jax_enable_x64),)


class _Entry:
    """A compiled program and what a call needs besides it."""

    __slots__ = ("plan", "program", "sink", "unflatten")

    def __init__(self, program: Callable, unflatten: Callable, plan: Plan | None, sink: list):
        self.program = program
        self.unflatten = unflatten
        self.plan = plan
        self.sink = sink


def _flat_function(
    check_output: Callable, layout: Layout, f: Any, build: Callable | None, checkpoint: bool
) -> Callable[[tuple], Callable]:
    """``args -> f_flat``: rebuild ``f`` from its captured arrays, on flat parameters."""

    def f_flat_of(args: tuple) -> Callable:
        fn = f if build is None else build(iter(args[1]))

        def f_flat(z: jax.Array) -> jax.Array:
            return check_output(fn(layout.unravel(z)))

        return jax.checkpoint(f_flat) if checkpoint else f_flat

    return f_flat_of


def _x_flat_of(layout: Layout) -> Callable[[tuple], jax.Array]:
    def x_flat_of(args: tuple) -> jax.Array:
        return layout.ravel(list(args[0]))

    return x_flat_of


def _make_tick(sink: list) -> Callable:
    def tick(_: Any) -> None:
        bar = sink[0]
        if bar is not None:
            bar.update(1)

    return tick


def progress_bar(name: str, total: int) -> Any:
    """The ``tqdm`` bar shown with ``progress=True``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"{name} column blocks", unit="block", leave=False)


def _open_bar(sink: list, name: str, total: int) -> None:
    sink[0] = progress_bar(name, total)


def _close_bar(sink: list, result: Any) -> None:
    bar = sink[0]
    if bar is None:
        return
    try:
        if result is not None:
            jax.block_until_ready(result)
        jax.effects_barrier()
    finally:
        sink[0] = None
        bar.close()


def _global_inputs(args: Any, devices: tuple) -> Any:
    """With several processes (``jax.distributed``), make every input a global array
    replicated over all devices; each process passes the same values (SPMD)."""
    if jax.process_count() == 1:
        return args
    sharding = replicated(devices)
    return jax.tree_util.tree_map(lambda leaf: jax.device_put(leaf, sharding), args)


def _cached(key: Any, create: Callable[[], Any]) -> Any:
    try:
        hash(key)
    except TypeError:  # something in x's structure cannot be hashed: no caching
        return create()
    return get_or_create(key, create)


def _with_split(f: Any, base_key: tuple, attempt: Callable[[Split, tuple], Any]) -> Any:
    """Run ``attempt(split, key)``; if ``f`` needs concrete values of captured arrays,
    run it again with them baked in, and remember to bake for this kind of function."""
    split = split_callable(f)
    bake_key = ("bake", *base_key, split.key)
    must_bake = bool(split.leaves) and contains(bake_key)
    if not must_bake:
        key = (*base_key, split.key, tuple(abstract(leaf) for leaf in split.leaves))
        try:
            return attempt(split, key)
        except _NEEDS_CONCRETE:
            if not split.leaves:
                raise
        try:
            store(bake_key, True)
        except TypeError:
            pass
    split = split_callable(f, bake=True)
    return attempt(split, (*base_key, "baked", split.key))


def _search_block(
    name: str,
    limit: int,
    n: int,
    nbatches: int,
    devices: tuple,
    jitted_for: Callable[[Plan], Callable],
    args: tuple,
) -> int:
    """Pick the block size for ``max_memory`` by compiling candidate programs."""
    abstract_args = jax.tree_util.tree_map(shape_struct, args)

    def measure(block: int) -> int:
        program = jitted_for(plan_blocks(n, nbatches, devices, block))
        return footprint(program.lower(*abstract_args).compile(), name)

    block, _ = choose_block(name, limit, largest_block(n, nbatches, devices), measure)
    return block


def run_columns(
    columns: Columns,
    f: Any,
    x: Any,
    *,
    nbatches: Any,
    jit: Any,
    checkpoint: Any,
    max_memory: Any,
    progress: Any,
) -> tuple[jax.Array, Callable]:
    """Compute a matrix (or the diagonal) column block by column block; cached."""
    name = columns.name
    check_callable(name, f)
    check_flag(name, "jit", jit)
    check_flag(name, "checkpoint", checkpoint)
    check_flag(name, "progress", progress)
    layout, leaves = layout_of(name, x)
    nbatches = check_nbatches(name, nbatches, layout.n)
    limit = parse_memory(name, max_memory)
    if limit is not None and not jit:
        raise ValueError(
            f"{name}: max_memory={max_memory!r} needs jit=True (the block size comes from "
            "the compiled program's memory analysis); with jit=False choose nbatches."
        )
    if columns.second_order:
        warn_if_float32(name)
    checkpoint, progress = bool(checkpoint), bool(progress)
    x_leaves = tuple(leaves)

    def jitted_for_maker(split: Split | None, devices: tuple, sink: list, ticking: bool):
        f_flat_of = _flat_function(
            columns.check_output, layout, f, None if split is None else split.build, checkpoint
        )
        tick = _make_tick(sink) if ticking else None
        out_sharding = replicated(devices)
        made: dict = {}  # the program lowered to measure it is the one then called

        def jitted_for(plan: Plan) -> Callable:
            if plan not in made:
                made[plan] = new_jitted(plan)
            return made[plan]

        def new_jitted(plan: Plan) -> Callable:
            def program(x_leaves: tuple, dyn: tuple) -> tuple[jax.Array, jax.Array]:
                result = run_blocks(
                    columns, f_flat_of, _x_flat_of(layout), (x_leaves, dyn), plan, tick
                )
                return result, jnp.all(jnp.isfinite(result))

            if out_sharding is None:
                return jax.jit(program)
            return jax.jit(program, out_shardings=(out_sharding, out_sharding))

        return jitted_for

    def entry_for(split: Split | None, devices: tuple, args: tuple) -> _Entry:
        sink: list = [None]
        jitted_for = jitted_for_maker(split, devices, sink, progress)
        if limit is None:
            plan = plan_blocks(layout.n, nbatches, devices)
        else:
            block = _search_block(name, limit, layout.n, nbatches, devices, jitted_for, args)
            plan = plan_blocks(layout.n, nbatches, devices, block)
        return _Entry(jitted_for(plan), make_unflatten(layout), plan, sink)

    def execute(entry: _Entry, args: tuple) -> tuple[jax.Array, jax.Array]:
        if progress:
            _open_bar(entry.sink, name, entry.plan.blocks)
        result = None
        try:
            result, finite = entry.program(*_global_inputs(args, entry.plan.devices))
        finally:
            _close_bar(entry.sink, result)
        return result, finite

    def inline(traced: bool) -> tuple[jax.Array, Callable]:
        # Asked not to compile, or inside someone else's trace (jit, vmap, grad, or f
        # captures its tracers): run the same blocks inline on one device; the outer
        # jit, if any, compiles and caches.
        devices = (jax.devices()[0],)
        args = (x_leaves, ())
        if limit is None or traced:
            plan = plan_blocks(layout.n, nbatches, devices)
        else:
            jitted_for = jitted_for_maker(None, devices, [None], False)
            block = _search_block(name, limit, layout.n, nbatches, devices, jitted_for, args)
            plan = plan_blocks(layout.n, nbatches, devices, block)
        sink: list = [None]
        f_flat_of = _flat_function(columns.check_output, layout, f, None, checkpoint)
        tick = _make_tick(sink) if progress and not traced else None
        if tick is not None:
            _open_bar(sink, name, plan.blocks)
        result = None
        try:
            result = run_blocks(columns, f_flat_of, _x_flat_of(layout), args, plan, tick)
        finally:
            _close_bar(sink, result)
        if not traced:
            warn_if_not_finite(name, bool(jnp.all(jnp.isfinite(result))))
        return result, make_unflatten(layout)

    if not jit or has_tracer(x_leaves):
        return inline(has_tracer(x_leaves))

    devices = tuple(jax.devices())
    base_key = (
        name,
        layout.key,
        nbatches,
        limit,
        checkpoint,
        progress,
        tuple(device.id for device in devices),
        _settings_key(),
    )

    def attempt(split: Split, key: tuple) -> tuple:
        args = (x_leaves, tuple(split.leaves))
        if has_tracer(split.leaves):  # f captures values of an outer trace
            return None
        entry = _cached(key, lambda: entry_for(split, devices, args))
        result, finite = execute(entry, args)
        return result, finite, entry.unflatten

    outcome = _with_split(f, base_key, attempt)
    if outcome is None:
        return inline(True)
    result, finite, unflatten = outcome
    warn_if_not_finite(name, bool(finite))
    return result, unflatten


def run_hvp(f: Any, x: Any, v: Any, *, jit: Any, checkpoint: Any) -> Any:
    """``H(x) v`` for one vector ``v`` (a pytree like ``x`` or a flat vector); cached."""
    name = "hvp"
    check_callable(name, f)
    check_flag(name, "jit", jit)
    check_flag(name, "checkpoint", checkpoint)
    layout, leaves = layout_of(name, x)
    v_flat, flat_input = _vector(name, layout, v)
    warn_if_float32(name)
    check = HessianColumns(name).check_output
    x_leaves = tuple(leaves)

    def program_with(f_flat_of: Callable) -> Callable:
        def program(x_leaves: tuple, v_flat: jax.Array, dyn: tuple) -> jax.Array:
            f_flat = f_flat_of((x_leaves, dyn))
            x_flat = layout.ravel(list(x_leaves))
            _, out = jax.jvp(jax.grad(f_flat), (x_flat,), (v_flat.astype(x_flat.dtype),))
            return out

        return program

    def inline() -> jax.Array:
        f_flat_of = _flat_function(check, layout, f, None, bool(checkpoint))
        return program_with(f_flat_of)(x_leaves, v_flat, ())

    traced = has_tracer((*x_leaves, v_flat))
    if traced or not jit:
        out = inline()
    else:
        base_key = (name, layout.key, abstract(v_flat), bool(checkpoint), _settings_key())

        def attempt(split: Split, key: tuple) -> Any:
            if has_tracer(split.leaves):
                return None

            def create() -> _Entry:
                f_flat_of = _flat_function(check, layout, f, split.build, bool(checkpoint))
                return _Entry(jax.jit(program_with(f_flat_of)), make_unflatten(layout), None, [])

            entry = _cached(key, create)
            return entry.program(x_leaves, v_flat, tuple(split.leaves))

        out = _with_split(f, base_key, attempt)
        if out is None:
            traced = True
            out = inline()
    if not traced:
        warn_if_not_finite(name, bool(jnp.all(jnp.isfinite(out))))
    return out if flat_input else layout.unravel(out)


def _vector(name: str, layout: Layout, v: Any) -> tuple[jax.Array, bool]:
    """``v`` as a flat vector of ``n`` numbers; also whether it was given flat."""
    n = layout.n
    if isinstance(v, (jax.Array, np.ndarray)) and tuple(np.shape(v)) == (n,):
        leaves, given_flat = [v], True
    else:
        leaves, treedef = jax.tree_util.tree_flatten(v)
        shapes = tuple(tuple(np.shape(leaf)) for leaf in leaves)
        if treedef != layout.treedef or shapes != layout.shapes:
            raise ValueError(
                f"{name}: v must be a flat vector of shape ({n},) (the number of parameters) "
                f"or a pytree with the structure and leaf shapes of x {layout.shapes}; got "
                f"{v!r:.80}."
            )
        given_flat = False
    for leaf in leaves:
        dtype = np.dtype(jnp.result_type(leaf))
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"{name}: v must hold real floating-point numbers, got dtype {dtype}.")
    flat = leaves[0] if given_flat else layout.ravel(leaves)
    return jnp.asarray(flat), given_flat
