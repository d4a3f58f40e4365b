"""Around the compiled programs: the block search of ``max_memory``, the measuring
compile, the progress bar, the finite check and inputs replicated over devices."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ._columns import replicated
from ._memory import choose_block, footprint, too_small
from .compat import supported_compile_options


def progress_bar(name: str, total: int) -> Any:
    """The ``tqdm`` bar shown with ``progress=True``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"{name} column blocks", unit="block", leave=False)


def search_block(name: str, limit: int, largest: int, lower: Callable, devices: tuple) -> tuple:
    """The largest block size whose program fits in ``limit`` bytes per device, and that
    program compiled (``_memory`` describes the search).

    ``lower(block)`` lowers the program for ``block`` columns per block; the two small
    blocks of the first line are compiled side by side and only to be measured, the
    chosen one in full.

    Raises
    ------
    ValueError
        If even one column at a time does not fit in ``limit``.
    """
    platform = devices[0].platform
    compiled: dict = {}  # block -> program compiled in full (the one to run)
    probes: dict = {}  # block -> program compiled only to be measured
    lowered: dict = {}

    def lowered_for(block: int) -> Any:
        if block not in lowered:
            lowered[block] = lower(block)
        return lowered[block]

    def prefetch(blocks: tuple) -> None:
        # Each compiles while the next is traced, side by side (XLA releases the GIL).
        with concurrent.futures.ThreadPoolExecutor(len(blocks)) as pool:
            pending = {b: pool.submit(compile_to_measure, lowered_for(b), platform) for b in blocks}
            for block, future in pending.items():
                probes[block] = future.result()

    def measure_in_full(block: int) -> int:
        if block not in compiled:
            compiled[block] = lowered_for(block).compile()
        return footprint(compiled[block], name)

    def measure(block: int) -> int:
        if block in compiled:
            return footprint(compiled[block], name)
        if block not in probes:
            # One column, or the first prediction, is usually the program: compiled in
            # full. The blocks of the line, and any step down, only to be measured.
            if block == 1 or (block not in _LINE_BLOCKS and not compiled):
                return measure_in_full(block)
            probes[block] = compile_to_measure(lowered_for(block), platform)
        return footprint(probes[block], name)

    block, _ = choose_block(name, limit, largest, measure, prefetch)
    while measure_in_full(block) > limit:  # the probe was wrong: step down
        if block == 1:
            raise ValueError(too_small(name, limit, measure_in_full(1)))
        block -= 1
    return block, compiled[block]


# Compiled only to read its memory analysis. XLA's buffer assignment (what the analysis
# reports) is decided on the optimised HLO, before code generation, so code generated
# cheaply has the footprint of the full compile: without LLVM's optimisations, and on CPU
# with the older fusion emitters, it compiles in about a third of the time (a test checks
# that the footprints agree). Options this jaxlib does not know are left out.
MEASURE_ONLY = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
MEASURE_ONLY_CPU = {**MEASURE_ONLY, "xla_cpu_use_fusion_emitters": False}


def measure_only_options(platform: str) -> dict:
    """The compiler options of a program compiled only to be measured on ``platform``
    (those this jaxlib accepts)."""
    wanted = MEASURE_ONLY_CPU if platform == "cpu" else MEASURE_ONLY
    return supported_compile_options(wanted, platform)


def compile_to_measure(lowered: Any, platform: str = "cpu") -> Any:
    """``lowered`` compiled for its memory analysis only (not to be run)."""
    return lowered.compile(measure_only_options(platform))


_LINE_BLOCKS = (2, 3)  # the blocks ``choose_block`` draws its first line through


_FINITE_CHECKS: dict = {}


def is_finite(columns: Any, result: jax.Array) -> bool:
    """``columns.finite(result)``: with numpy on a CPU result (a view, no copy; a second
    output of the main program would cost more than the check), else compiled."""
    if all(device.platform == "cpu" for device in result.sharding.device_set):
        return bool(columns.finite(np.asarray(result), np))
    kind = type(columns)
    if kind not in _FINITE_CHECKS:
        _FINITE_CHECKS[kind] = jax.jit(columns.finite)
    return bool(_FINITE_CHECKS[kind](result))


def global_inputs(inputs: Any, devices: tuple) -> Any:
    """With several devices, every input as an array replicated over all of them (with
    several processes, ``jax.distributed``, each passes the same values: SPMD)."""
    sharding = replicated(devices)
    if sharding is None:
        return inputs
    return jax.tree_util.tree_map(lambda leaf: jax.device_put(leaf, sharding), inputs)
