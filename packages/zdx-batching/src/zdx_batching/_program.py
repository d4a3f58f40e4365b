"""One compiled program: build it (choosing the block plan), measure its memory, call it."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ._columns import Plan, largest_block, plan_blocks, replicated, run_blocks
from ._grouping import CPU_BLOCK, blocks_pay
from ._memory import choose_block, footprint, too_small
from ._request import Request


def progress_bar(name: str, total: int) -> Any:
    """The ``tqdm`` bar shown with ``progress=True``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"{name} column blocks", unit="block", leave=False)


class Program:
    """The program computing ``request`` for functions read as ``function_of(leaves)``.

    ``function_of`` maps the captured leaves (inputs of the program) to ``(f, args)``;
    it is called while tracing. :meth:`build` picks the plan (searching the block size
    when ``max_memory`` is given) and compiles; calling the object runs it.
    """

    def __init__(self, request: Request, function_of: Callable, devices: tuple):
        self.request = request
        self.function_of = function_of
        self.devices = devices
        self.plan: Plan | None = None
        self._run: Callable | None = None
        self._bar: Any = None
        self._on_cpu = all(device.platform == "cpu" for device in devices)
        self._f_flat_of: Callable = lambda inputs: self._flat_function(inputs[1])

    def _plan(self, block: int | None = None) -> Plan:
        request = self.request
        return plan_blocks(request.ncolumns, request.nbatches, self.devices, block)

    def _flat_function(self, leaves: tuple) -> Callable:
        """``f`` of the flat parameters, rebuilt from the captured ``leaves``."""
        request = self.request
        columns, layout = request.columns, request.layout
        f, args = self.function_of(leaves)

        def f_flat(z: jax.Array) -> jax.Array:
            return columns.check_output(request.call(f, args, layout.unravel(z)))

        return jax.checkpoint(f_flat) if request.checkpoint else f_flat

    def _share_traces(self) -> None:
        """From now on, the programs of every block size call one jitted ``f``: JAX traces
        ``f`` and differentiates it once for all of them (the search lowers several)."""
        shared = jax.jit(lambda z, leaves: self._flat_function(leaves)(z))
        self._f_flat_of = lambda inputs: lambda z: shared(z, inputs[1])

    def traceable(self, plan: Plan, tick: Callable | None) -> Callable:
        """``(x_leaves, leaves, vector) -> result`` for ``plan`` (not compiled)."""
        request = self.request
        columns, layout = request.columns, request.layout
        f_flat_of = self._f_flat_of

        def x_flat_of(inputs: tuple) -> jax.Array:
            return layout.ravel(list(inputs[0]))

        def program(x_leaves: tuple, leaves: tuple, vector: Any) -> jax.Array:
            inputs = (x_leaves, leaves)
            return run_blocks(columns, f_flat_of, x_flat_of, inputs, vector, plan, tick)

        return program

    def _jitted(self, plan: Plan) -> Callable:
        program = self.traceable(plan, self._tick if self.request.progress else None)
        sharding = replicated(self.devices)
        if sharding is None:
            return jax.jit(program)
        return jax.jit(program, out_shardings=sharding)

    def _groups_by_shape(self) -> bool:
        """Whether the grouping is the library's to choose from the program's shapes:
        ``nbatches=None`` for a matrix on one CPU device (``_grouping``)."""
        request = self.request
        return (
            request.nbatches is None
            and request.vector is None
            and request.ncolumns > CPU_BLOCK
            and self._on_cpu
            and len(self.devices) == 1
        )

    def _choose_grouping(self, inputs: tuple) -> None:
        """Keep every column at once, or switch to blocks of ``CPU_BLOCK`` columns when
        the traced program of every column at once says they pay (``_grouping``). The
        trace is JAX's: when every column at once is kept, the call reuses it."""
        trace = getattr(self._run, "trace", None)
        if trace is None:  # pragma: no cover - a jax without ahead-of-time tracing
            return
        request = self.request
        itemsize = np.dtype(request.layout.dtype).itemsize
        if blocks_pay(trace(*inputs).jaxpr, request.ncolumns, itemsize):
            self.plan = self._plan(CPU_BLOCK)
            self._run = self._jitted(self.plan)

    def build(self, inputs: tuple) -> None:
        """Choose the plan and compile (with ``max_memory``: the largest block that fits,
        from the compiled programs' memory analysis; the chosen one is kept; with
        ``nbatches=None`` on one CPU device: every column at once or blocks, from the
        traced program's shapes)."""
        request = self.request
        if request.limit is None:
            self.plan = self._plan()
            self._run = self._jitted(self.plan)
            if self._groups_by_shape():
                self._choose_grouping(inputs)
            return
        compiled: dict = {}  # block -> program compiled in full (the one to run)
        probes: dict = {}  # block -> program compiled only to be measured
        name = request.columns.name
        platform = self.devices[0].platform
        self._share_traces()

        lowered: dict = {}  # block -> lowered program (a probe's is compiled again in full)

        def lower(block: int) -> Any:
            if block not in lowered:
                lowered[block] = self._jitted(self._plan(block)).lower(*inputs)
            return lowered[block]

        def prefetch(blocks: tuple) -> None:
            # Each compiles while the next is traced, all side by side (XLA releases the
            # GIL while it compiles).
            with concurrent.futures.ThreadPoolExecutor(len(blocks)) as pool:
                pending = {}
                for block in blocks:
                    pending[block] = pool.submit(compile_to_measure, lower(block), platform)
                for block, future in pending.items():
                    probes[block] = future.result()

        def measure_in_full(block: int) -> int:
            if block not in compiled:
                compiled[block] = lower(block).compile()
            return footprint(compiled[block], name)

        def measure(block: int) -> int:
            if block in compiled:
                return footprint(compiled[block], name)
            if block not in probes:
                # One column, or the first prediction, is usually the program: compiled
                # in full. The blocks of the line, and any step down, only to be measured.
                if block == 1 or (block not in _LINE_BLOCKS and not compiled):
                    return measure_in_full(block)
                probes[block] = compile_to_measure(lower(block), platform)
            return footprint(probes[block], name)

        largest = largest_block(request.ncolumns, request.nbatches, self.devices)
        block, _ = choose_block(name, request.limit, largest, measure, prefetch)
        while measure_in_full(block) > request.limit:  # the probe was wrong: step down
            if block == 1:
                raise ValueError(too_small(name, request.limit, measure_in_full(1)))
            block -= 1
        self.plan = self._plan(block)
        self._run = compiled[block]

    def __call__(self, inputs: tuple) -> tuple[jax.Array, bool]:
        """Run the program on ``(x_leaves, leaves, vector)``: the result and whether it is
        finite."""
        if not self.request.progress:
            return self.finish(self._run(*inputs))
        self._bar = progress_bar(self.request.columns.name, self.plan.blocks)
        result = None
        try:
            result = self._run(*inputs)
        finally:
            self._close_bar(result)
        return self.finish(result)

    def start(self, inputs: tuple) -> jax.Array:
        """Dispatch the program on ``inputs`` without a progress bar and without waiting
        (:meth:`finish` completes the call)."""
        return self._run(*inputs)

    def finish(self, result: jax.Array) -> tuple[jax.Array, bool]:
        """``result`` and whether it is finite (waits for it)."""
        columns = self.request.columns
        if self._on_cpu:  # a view of the result, no copy
            return result, bool(columns.finite(np.asarray(result), np))
        return result, is_finite(columns, result)

    def _tick(self, _: Any) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def _close_bar(self, result: Any) -> None:
        bar = self._bar
        if bar is None:
            return
        try:  # the ticks arrive while the program runs: wait for them, then close
            if result is not None:
                jax.block_until_ready(result)
            jax.effects_barrier()
        finally:
            self._bar = None
            bar.close()


# Compiled only to read its memory analysis. XLA's buffer assignment (what the analysis
# reports) is decided on the optimised HLO, before code generation, so code generated
# cheaply has the footprint of the full compile: without LLVM's optimisations, and on CPU
# with the older fusion emitters, it compiles in about a third of the time (a test checks
# that the footprints agree).
_MEASURE_ONLY = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
_MEASURE_ONLY_CPU = {**_MEASURE_ONLY, "xla_cpu_use_fusion_emitters": False}


def measure_only_options(platform: str) -> dict:
    """The compiler options of a program compiled only to be measured on ``platform``."""
    return _MEASURE_ONLY_CPU if platform == "cpu" else _MEASURE_ONLY


def compile_to_measure(lowered: Any, platform: str = "cpu") -> Any:
    """``lowered`` compiled for its memory analysis only (not to be run).

    Options that this jaxlib does not know are dropped (the ordinary compile, at worst);
    any other error of the compiler is raised.
    """
    tried = [measure_only_options(platform)]
    if tried[0] is not _MEASURE_ONLY:
        tried.append(_MEASURE_ONLY)
    for options in tried:
        try:
            return lowered.compile(options)
        except Exception as error:  # jaxlib raises its own runtime error class
            if "compile option" not in str(error):
                raise
    return lowered.compile()


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
