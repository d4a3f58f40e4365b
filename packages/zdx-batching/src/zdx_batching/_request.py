"""One request: every argument of a public call checked once, in one place."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import check_callable, check_flag, check_nbatches, parse_memory
from ._columns import Columns
from ._flat import Layout, layout_of


class Request(NamedTuple):
    """What a public call asks for, checked.

    ``ncolumns`` is ``n`` for a matrix or diagonal and 1 for a Hessian-vector product,
    whose tangent is ``vector`` (flat); ``vector_given_flat`` says in which form to give
    the product back.
    """

    columns: Columns
    f: Any
    args: Any
    layout: Layout
    x_leaves: tuple
    nbatches: int | None
    limit: int | None
    jit: bool
    checkpoint: bool
    progress: bool
    vector: jax.Array | None = None
    vector_given_flat: bool = False

    @property
    def ncolumns(self) -> int:
        return 1 if self.vector is not None else self.layout.n

    @property
    def traced(self) -> bool:
        """Whether the call happens inside someone else's trace (jit, vmap, grad)."""
        values = (*self.x_leaves, *jax.tree_util.tree_leaves(self.vector))
        return any(isinstance(value, jax.core.Tracer) for value in values)

    def call(self, f: Any, args: Any, x: Any) -> Any:
        """``f(x)``, or ``f(x, args)`` when ``args`` was given."""
        return f(x) if args is None else f(x, args)


def make_request(
    columns: Columns,
    f: Any,
    x: Any,
    *,
    args: Any,
    nbatches: Any,
    jit: Any,
    checkpoint: Any,
    max_memory: Any,
    progress: Any,
    v: Any = None,
) -> Request:
    """Check the arguments of a call of ``columns.name`` and gather them (every option as
    the public function received it: their defaults are the public functions' own).

    Raises
    ------
    TypeError
        If ``f`` is not callable, a flag is not a bool, ``nbatches`` is not an integer,
        a leaf of ``x`` (or of ``v``) is not real floating-point.
    ValueError
        If ``nbatches`` is out of range, ``max_memory`` is malformed or given with
        ``jit=False``, or ``v`` has neither the form of ``x`` nor ``(n,)``.
    """
    name = columns.name
    check_callable(name, f)
    for argument, value in (("jit", jit), ("checkpoint", checkpoint), ("progress", progress)):
        check_flag(name, argument, value)
    layout, leaves = layout_of(name, x)
    vector, given_flat = (None, False) if v is None else _flat_vector(name, layout, v)
    ncolumns = layout.n if vector is None else 1
    nbatches = check_nbatches(name, nbatches, ncolumns)
    limit = parse_memory(name, max_memory)
    if limit is not None and not jit:
        raise ValueError(
            f"{name}: max_memory={max_memory!r} needs jit=True (the block size comes from "
            "the compiled program's memory analysis); with jit=False choose nbatches."
        )
    return Request(
        columns,
        f,
        args,
        layout,
        tuple(leaves),
        nbatches,
        limit,
        bool(jit),
        bool(checkpoint),
        bool(progress),
        vector,
        given_flat,
    )


def _flat_vector(name: str, layout: Layout, v: Any) -> tuple[jax.Array, bool]:
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
    return jnp.asarray(flat, layout.dtype), given_flat
