"""How the columns are grouped when ``nbatches`` is left to the library (``None``).

On accelerators, and on several devices, every column is evaluated at once (one block
per device). On one CPU device the choice is between the program of JAX's own
transformation (``jax.hessian``, ``jax.jacfwd``: every column at once) and blocks of
:data:`CPU_BLOCK` columns in a loop. All at once is fastest when the values one column
makes are about as large as the column itself (a dense smooth function, a separable
one): the loop would only add work. Blocks win when each column makes values much larger
than itself (images, Fourier transforms of a pupil): evaluated together, the columns'
values stream through main memory; a few at a time, they stay in the processor's caches.
On the optics problems of the benchmark suite, blocks of four take 0.38 to 0.46 of the
time of all at once; on the dense and separable ones they take 1.8 to 4.5 times as long.

The choice is read from the traced program of every column at once (its jaxpr, which the
call goes on to compile when it is chosen, so nothing is traced twice): blocks when its
largest intermediate value is at least :data:`MIN_BYTES` and at least :data:`MIN_RATIO`
times the ``n`` columns themselves (``n * max(n, m)`` numbers for ``m`` outputs of ``f``).
The rule reads shapes only, never timings, so the same call gives the same bits on every
run. Explicit ``nbatches`` always wins.
"""

from __future__ import annotations

from typing import Any

CPU_BLOCK = 4  # columns per block when blocks are chosen
MIN_BYTES = 4 * 2**20  # the largest value must at least outgrow the inner caches...
MIN_RATIO = 8  # ...and the columns themselves, several times over


def largest_value(jaxpr: Any) -> int:
    """Bytes of the largest value any equation of ``jaxpr`` (or of the jaxprs nested in
    it: ``pjit``, ``scan``, ``cond``, custom derivatives...) makes."""
    largest = 0
    stack = [jaxpr]
    while stack:
        current = stack.pop()
        for eqn in current.eqns:
            for var in eqn.outvars:
                largest = max(largest, _bytes(var.aval))
            for param in eqn.params.values():
                for inner in param if isinstance(param, (tuple, list)) else (param,):
                    inner = getattr(inner, "jaxpr", inner)  # a closed jaxpr's own
                    if hasattr(inner, "eqns"):
                        stack.append(inner)
    return largest


def blocks_pay(jaxpr: Any, n: int, itemsize: int) -> bool:
    """Whether blocks of :data:`CPU_BLOCK` columns should replace the program of every
    column at once, whose (closed or open) ``jaxpr`` is given, for ``n`` columns of
    ``itemsize``-byte numbers."""
    inner = getattr(jaxpr, "jaxpr", jaxpr)
    outputs = max((_bytes(var.aval) for var in inner.outvars), default=0)
    columns = max(outputs, n * n * itemsize)  # every column, of at least n numbers
    largest = largest_value(inner)
    return largest >= MIN_BYTES and largest >= MIN_RATIO * columns


def _bytes(aval: Any) -> int:
    """Bytes of an abstract value (0 for one without a size, such as a token)."""
    itemsize = getattr(getattr(aval, "dtype", None), "itemsize", 0)
    return int(getattr(aval, "size", 0) * itemsize)
