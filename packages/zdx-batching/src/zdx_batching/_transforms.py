"""The transforms: ``hessian_fn(f)`` and its siblings, JAX-style.

A transform holds ``f`` and the options, and is called as ``transform(x, args=None)``
(``hvp_fn``: ``transform(x, v, args=None)``). Its program is ``jax.jit`` of the blocks of
columns (``_columns``), so a held transform called again costs what ``jax.jit`` costs,
and it composes with ``jax.jit``, ``jax.vmap`` and ``jax.grad`` like any JAX function.
The choices that depend on shapes are made while tracing, once per shape, as ``jax.jit``
caches them: the grouping of ``nbatches=None`` (``_grouping``), and the checks of ``x``.
``max_memory`` needs compiled programs to measure, so it is searched on the first call
for each shape and structure of the inputs, and the chosen program is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.extend.core
import numpy as np

import zdx_base

from . import _program
from ._checks import check_callable, check_flag, check_nbatches, parse_memory
from ._columns import (
    Columns,
    DiagonalColumns,
    FisherColumns,
    HessianColumns,
    HvpColumns,
    JacobianColumns,
    plan_blocks,
    replicated,
    run_blocks,
)
from ._flat import flat_vector, layout_of, make_unflatten
from ._grouping import CPU_BLOCK, blocks_pay
from ._program import global_inputs, search_block


class Transform:
    """A batched curvature transform of ``f`` (see :func:`hessian_fn`).

    Call it as ``transform(x, args=None)``: ``f(x)`` is differentiated, or ``f(x, args)``
    when ``args`` is given. ``unflatten(x)`` maps a flat vector back to ``x``'s structure.
    """

    def __init__(
        self,
        columns: Columns,
        f: Callable,
        *,
        nbatches: int | None = None,
        max_memory: int | str | None = None,
        checkpoint: bool = False,
        progress: bool = False,
        devices: Sequence | None = None,
        on_trace: Callable[[], None] | None = None,
    ):
        name = columns.name + "_fn"
        check_callable(name, f)
        check_flag(name, "checkpoint", checkpoint)
        check_flag(name, "progress", progress)
        check_nbatches(name, nbatches, None)
        self.name = name
        self.columns = columns
        self.f = f
        self.nbatches = nbatches
        self.limit = parse_memory(name, max_memory)
        self.checkpoint = checkpoint
        self.progress = progress
        self.devices = _devices(name, devices)
        self._on_trace = on_trace
        self._bar: Any = None
        self._showing = False  # a call with a progress bar is running
        self._searched: dict = {}  # input signature -> (block, compiled program)
        self._jit = self._compile_plan(None)
        self._call = self._jit if self._direct else self._call_with_extras

    @property
    def _direct(self) -> bool:
        """Whether a call is just the jitted program (no bar, search or global inputs)."""
        return self.limit is None and not self.progress and len(self.devices) == 1

    def __call__(self, x: Any, args: Any = None) -> jax.Array:
        return self._call(x, args, None)

    def __repr__(self) -> str:
        options = f"nbatches={self.nbatches}, max_memory={self.limit}"
        return f"{self.name}({getattr(self.f, '__name__', self.f)!r}, {options})"

    def unflatten(self, x: Any) -> Callable[[Any], Any]:
        """The function mapping a flat vector of ``x``'s ``n`` scalars back to its
        structure (as ``zdx_base.ravel(x).unravel``)."""
        return make_unflatten(layout_of(self.name, x)[0])

    # --- the program ---------------------------------------------------------------------

    def _compile_plan(self, block: int | None) -> Callable:
        sharding = replicated(self.devices)
        program = self.program(block)
        if sharding is None:
            return jax.jit(program)
        return jax.jit(program, out_shardings=sharding)

    def program(self, block: int | None = None, shared_f: Callable | None = None) -> Callable:
        """``(x, args, vector) -> result``, traceable, for blocks of ``block`` columns
        (``None``: from ``nbatches`` and the grouping rule)."""

        def traced(x: Any, args: Any, vector: Any) -> Any:
            if self._on_trace is not None:
                self._on_trace()
            return self._blocks(x, args, vector, block, shared_f)

        return traced

    def _flat_function(self, unravel: Callable) -> Callable:
        columns, f, checkpoint = self.columns, self.f, self.checkpoint

        def f_flat_of(inputs: tuple) -> Callable:
            _, args = inputs

            def f_flat(z: jax.Array) -> jax.Array:
                x = unravel(z)
                return columns.check_output(f(x) if args is None else f(x, args))

            return jax.checkpoint(f_flat) if checkpoint else f_flat

        return f_flat_of

    def _blocks(self, x: Any, args: Any, vector: Any, block: int | None, shared_f) -> Any:
        columns, name = self.columns, self.name
        layout, _ = layout_of(name, x)
        flat, given_flat = (None, False)
        if vector is not None:
            flat, given_flat = flat_vector(name, layout, vector)
        ncolumns = 1 if flat is not None else layout.n
        check_nbatches(name, self.nbatches, ncolumns)
        f_flat_of = shared_f or self._flat_function(zdx_base.ravel(x).unravel)

        def x_flat_of(inputs: tuple) -> jax.Array:
            return zdx_base.ravel(inputs[0]).flat

        inputs = (x, args)
        plan = plan_blocks(ncolumns, self.nbatches, self.devices, block)
        if block is None and self._groups_by_shape(flat, ncolumns):
            whole = jax.make_jaxpr(lambda i: columns.all_at_once(f_flat_of(i), x_flat_of(i)))
            closed = whole(inputs)
            itemsize = np.dtype(layout.dtype).itemsize
            if not blocks_pay(closed.jaxpr, ncolumns, itemsize):  # keep JAX's own program
                if self.progress:
                    jax.debug.callback(self._ticker(1), 0)
                leaves = jax.tree_util.tree_leaves(inputs)
                return jax.extend.core.jaxpr_as_fun(closed)(*leaves)[0]
            plan = plan_blocks(ncolumns, self.nbatches, self.devices, CPU_BLOCK)
        tick = self._ticker(plan.blocks) if self.progress else None
        result = run_blocks(columns, f_flat_of, x_flat_of, inputs, flat, plan, tick)
        if vector is not None and not given_flat:
            return layout.unravel(result)
        return result

    def _groups_by_shape(self, vector: Any, ncolumns: int) -> bool:
        """Whether the grouping is the library's to choose from the program's shapes:
        ``nbatches=None`` for a matrix on one CPU device (``_grouping``)."""
        return (
            self.nbatches is None
            and vector is None
            and ncolumns > CPU_BLOCK
            and len(self.devices) == 1
            and self.devices[0].platform == "cpu"
        )

    # --- calls with a progress bar, a memory bound or several devices ---------------------

    def _call_with_extras(self, x: Any, args: Any, vector: Any) -> Any:
        inputs = (x, args, vector)
        if len(self.devices) > 1 and not _traced(inputs):
            inputs = global_inputs(inputs, self.devices)
        run = self._jit if self.limit is None else self._searched_program(inputs)
        if not self.progress or _traced(inputs):
            return run(*inputs)
        return self.with_bar(run, *inputs)

    def with_bar(self, run: Callable, *inputs: Any) -> Any:
        """``run(*inputs)`` with the progress bar shown (made at the first tick, which
        brings the number of blocks of the plan chosen while tracing)."""
        self._showing = True
        result = None
        try:
            result = run(*inputs)
            jax.block_until_ready(result)
            jax.effects_barrier()  # the ticks arrive while the program runs
        finally:
            self._showing = False
            bar, self._bar = self._bar, None
            if bar is not None:
                bar.close()
        return result

    def _searched_program(self, inputs: tuple) -> Callable:
        """The program chosen for ``max_memory`` for inputs of this signature (searched
        on the first call with it)."""
        signature = _signature(inputs)
        if signature not in self._searched:
            self._searched[signature] = self._search(inputs)
        block, compiled = self._searched[signature]
        if _traced(inputs):  # inside another transformation: its trace compiles
            return self.program(block)
        return compiled

    def _search(self, inputs: tuple) -> tuple[int, Any]:
        x, _, vector = inputs
        layout, _ = layout_of(self.name, x)
        ncolumns = 1 if vector is not None else layout.n
        largest = plan_blocks(ncolumns, self.nbatches, self.devices).block
        # The programs of every block size call one jitted f: traced once for all.
        f_flat_of = self._flat_function(zdx_base.ravel(x).unravel)
        shared = jax.jit(lambda z, i: f_flat_of(i)(z))

        def shared_f(i: tuple) -> Callable:
            return lambda z: shared(z, i)

        sharding = replicated(self.devices)

        def lower(block: int) -> Any:
            program = self.program(block, shared_f)
            jitted = (
                jax.jit(program) if sharding is None else jax.jit(program, out_shardings=sharding)
            )
            return jitted.lower(*_abstract(inputs))

        return search_block(self.columns.name, self.limit, largest, lower, self.devices)

    def _ticker(self, total: int) -> Callable:
        """The callback the program calls after each of its ``total`` blocks."""

        def tick(_: Any) -> None:
            if not self._showing:
                return
            if self._bar is None:
                self._bar = _program.progress_bar(self.columns.name, total)
            self._bar.update(1)

        return tick


class HvpTransform(Transform):
    """The Hessian-vector product transform (see :func:`hvp_fn`)."""

    def __call__(self, x: Any, v: Any, args: Any = None) -> Any:  # type: ignore[override]
        return self._call(x, args, v)


def _devices(name: str, devices: Sequence | None) -> tuple:
    if devices is None:
        return tuple(jax.devices())
    devices = tuple(devices)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise TypeError(
            f"{name}: devices must be a non-empty sequence of jax.Device (e.g. jax.devices()), "
            f"got {devices!r:.80}."
        )
    return devices


def _traced(inputs: Any) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(inputs))


def _abstract(inputs: Any) -> Any:
    def shape_of(leaf: Any) -> Any:
        leaf = leaf if hasattr(leaf, "dtype") else np.asarray(leaf)
        return jax.ShapeDtypeStruct(
            np.shape(leaf), leaf.dtype, sharding=getattr(leaf, "sharding", None)
        )

    return jax.tree_util.tree_map(shape_of, inputs)


def _signature(inputs: Any) -> tuple:
    """What a compiled program depends on: the structure, and each leaf's shape, dtype
    and weak type, read the same way from values and from tracers."""
    leaves, treedef = jax.tree_util.tree_flatten(inputs)
    return treedef, tuple(_abstract_key(leaf) for leaf in leaves)


def _abstract_key(leaf: Any) -> tuple:
    aval = getattr(leaf, "aval", None)  # a tracer
    if aval is not None:
        return (aval.shape, np.dtype(aval.dtype), bool(aval.weak_type))
    if isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
        return (leaf.shape, np.dtype(leaf.dtype), bool(getattr(leaf, "weak_type", False)))
    dtype = jax.dtypes.canonicalize_dtype(np.result_type(type(leaf)))
    return ((), np.dtype(dtype), True)  # a Python scalar


# --- the public constructors -----------------------------------------------------------------


def hessian_fn(
    f: Callable,
    *,
    nbatches: int | None = None,
    max_memory: int | str | None = None,
    checkpoint: bool = False,
    progress: bool = False,
    devices: Sequence | None = None,
) -> Transform:
    """The Hessian transform of a scalar ``f``: ``hessian_fn(f)(x, args=None)`` is the
    ``(n, n)`` Hessian in the flat coordinates of ``x`` (``jax.flatten_util.ravel_pytree``
    order), equal to ``jax.hessian`` of ``f`` on the flat parameters.

    The columns are computed in blocks inside one ``jax.jit`` program: held and called
    again it costs what ``jax.jit`` costs, and it composes with ``jax.jit``, ``jax.vmap``
    and ``jax.grad``. The NaN check, the float32 warning and ``unflatten`` belong to
    :func:`hessian`, the zodiax call over this transform.

    Parameters
    ----------
    f
        ``f(x)``, or ``f(x, args)`` when the transform is called with ``args``: a real
        scalar.
    nbatches, checkpoint, progress
        As in :func:`hessian`; ``nbatches`` is checked against ``n`` when ``x`` is known.
    max_memory
        As in :func:`hessian`: the block size is searched on the first call for each
        shape and structure of the inputs, and kept.
    devices
        The devices the blocks are dealt out over (default: ``jax.devices()``).

    Returns
    -------
    A :class:`Transform` ``(x, args=None) -> H``; ``transform.unflatten(x)`` maps a flat
    vector back to ``x``'s structure.

    Raises
    ------
    TypeError
        If ``f`` is not callable or an option has the wrong type; when called, if a leaf
        of ``x`` is not floating-point or ``f`` does not return a floating-point array.
    ValueError
        If ``nbatches`` is below 1 or ``max_memory`` is malformed; when called, if
        ``nbatches`` is above ``n`` or ``f`` does not return a scalar.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> curvature = hessian_fn(lambda p, a: jnp.sum(a * p["x"] ** 4))
    >>> curvature({"x": jnp.ones(2)}, 2.0)
    Array([[24.,  0.],
           [ 0., 24.]], dtype=float64)
    >>> jax.vmap(curvature, in_axes=(None, 0))({"x": jnp.ones(2)}, jnp.arange(2.0)).shape
    (2, 2, 2)
    """
    return Transform(HessianColumns(), f, **_options(locals()))


def hessian_diagonal_fn(
    f: Callable,
    *,
    nbatches: int | None = None,
    max_memory: int | str | None = None,
    checkpoint: bool = False,
    progress: bool = False,
    devices: Sequence | None = None,
) -> Transform:
    """The transform of the Hessian's diagonal: ``hessian_diagonal_fn(f)(x, args=None)``
    is the ``(n,)`` vector ``H[k, k]``, without holding ``H``. Options and errors as
    :func:`hessian_fn`.

    >>> import jax.numpy as jnp
    >>> hessian_diagonal_fn(lambda p: jnp.sum(p**3))(jnp.array([1.0, 2.0]))
    Array([ 6., 12.], dtype=float64)
    """
    return Transform(DiagonalColumns(), f, **_options(locals()))


def jacobian_fn(
    f: Callable,
    *,
    nbatches: int | None = None,
    max_memory: int | str | None = None,
    checkpoint: bool = False,
    progress: bool = False,
    devices: Sequence | None = None,
) -> Transform:
    """The Jacobian transform: ``jacobian_fn(f)(x, args=None)`` has shape
    ``(*f(x).shape, n)``, equal to ``jax.jacfwd`` of ``f`` on the flat parameters. Options
    and errors as :func:`hessian_fn`, except that ``f`` may return an
    array of any shape.

    >>> import jax.numpy as jnp
    >>> jacobian_fn(lambda p: p["a"] * p["b"])({"a": jnp.array([1.0, 2.0]), "b": 3.0}).shape
    (2, 3)
    """
    return Transform(JacobianColumns(), f, **_options(locals()))


def fisher_fn(
    f: Callable,
    *,
    nbatches: int | None = None,
    max_memory: int | str | None = None,
    checkpoint: bool = False,
    progress: bool = False,
    devices: Sequence | None = None,
) -> Transform:
    """The Fisher-matrix transform: ``fisher_fn(f)(x, args=None)`` is ``J^T J`` for ``f``
    the model divided by its errors, by forward mode only (see :func:`fisher`). Options
    and errors as :func:`jacobian_fn`.

    >>> import jax.numpy as jnp
    >>> t = jnp.linspace(0.0, 1.0, 5)
    >>> fisher_fn(lambda p: (p["a"] + p["b"] * t) / 0.1)({"a": 0.0, "b": 1.0}).shape
    (2, 2)
    """
    return Transform(FisherColumns(), f, **_options(locals()))


def hvp_fn(f: Callable, *, checkpoint: bool = False, devices: Sequence | None = None) -> Transform:
    """The Hessian-vector product transform: ``hvp_fn(f)(x, v, args=None)`` is ``H(x) v``
    in the form ``v`` was given (a pytree like ``x``, or a flat ``(n,)`` array), by one
    forward-over-reverse product. ``checkpoint``, ``devices`` and the errors as
    :func:`hessian_fn`; when called, a ``v`` of neither form is a ``ValueError``.

    >>> import jax.numpy as jnp
    >>> product = hvp_fn(lambda p: jnp.sum(p**3))
    >>> product(jnp.array([1.0, 2.0]), jnp.array([1.0, 0.0]))
    Array([6., 0.], dtype=float64)
    """
    return HvpTransform(HvpColumns(), f, nbatches=1, checkpoint=checkpoint, devices=devices)


def _options(given: dict) -> dict:
    """The options among a constructor's ``locals()``."""
    return {name: value for name, value in given.items() if name != "f"}
