"""Choosing the block size from a memory bound, using XLA's own memory analysis.

For a candidate block size the whole program is lowered and compiled
(``jax.jit(program).lower(*args).compile()``) and its ``memory_analysis()`` read. The
bytes counted are what one device holds while the program runs::

    argument_size + output_size + temp_size - alias_size

(inputs, the result, XLA's scratch buffers; donated inputs counted once). The search:

1. the largest block allowed by ``nbatches`` (``ceil(n / nbatches)`` columns); if it fits,
   done, with a single compile;
2. one column per block; if even that does not fit, ``max_memory`` is too small and a
   ``ValueError`` says how many bytes one column needs;
   (before that, a line from the part that does not grow with the block, inputs and
   result, through the first measurement proposes a block: if it fits, it is taken, after
   two compiles in all);
3. otherwise a straight line through the two measurements (memory grows about linearly
   with the block size) proposes the largest block that fits; it is compiled and checked,
   and the line is redrawn through the new point until a block fits (at most a few
   rounds; one column always fits by step 2).

Every program compiled on the way is discarded except the one chosen, which is cached
with the rest of the call, so the search is paid once.
"""

from __future__ import annotations

from collections.abc import Callable

_ROUNDS = 4


def describe_bytes(count: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} TiB"  # pragma: no cover


def footprint(compiled: object, name: str) -> int:
    """Bytes one device holds while ``compiled`` runs, from XLA's memory analysis."""
    stats = _stats(compiled, name)
    return int(
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - stats.alias_size_in_bytes
    )


def fixed_bytes(compiled: object, name: str) -> int:
    """The part of the footprint that does not grow with the block size: inputs and
    result."""
    stats = _stats(compiled, name)
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes)


def _stats(compiled: object, name: str) -> object:
    stats = compiled.memory_analysis()
    if isinstance(stats, (list, tuple)):  # older jax: one entry per device
        stats = stats[0] if stats else None
    if stats is None:
        raise RuntimeError(
            f"{name}: this JAX backend gives no memory analysis of compiled programs, so "
            "max_memory cannot be used here; choose nbatches instead."
        )
    return stats


def choose_block(
    name: str,
    limit: int,
    largest: int,
    measure: Callable[[int], int],
    fixed: Callable[[], int] | None = None,
) -> tuple[int, dict]:
    """The largest block size in ``[1, largest]`` whose program fits in ``limit`` bytes.

    ``measure(block)`` compiles the program for ``block`` columns per block and returns
    its footprint in bytes. With ``fixed()`` (the bytes of the first program that do not
    grow with the block: inputs and result), a line from that part through the first
    measurement proposes a block at once, so that a bound that the largest block exceeds
    usually costs two compiles. Returns the block size and every measurement made.
    """
    seen: dict[int, int] = {}

    def probe(block: int) -> int:
        if block not in seen:
            seen[block] = measure(block)
        return seen[block]

    if probe(largest) <= limit:
        return largest, seen
    if fixed is not None and largest > 1:
        base = fixed()
        if base < limit < seen[largest]:
            guess = int((limit - base) / (seen[largest] - base) * largest)
            if 1 < guess < largest and probe(guess) <= limit:
                return guess, seen
    if largest == 1 or probe(1) > limit:
        raise ValueError(
            f"{name}: max_memory={limit} bytes ({describe_bytes(limit)}) is too small for "
            f"even one column at a time: the program for one column needs {probe(1)} bytes "
            f"({describe_bytes(probe(1))}) per device. Raise max_memory, or use "
            "checkpoint=True to recompute rather than store intermediate values."
        )
    low, high = 1, largest  # low fits, high does not
    for _ in range(_ROUNDS):
        if high - low <= 1:
            break
        slope = (seen[high] - seen[low]) / (high - low)
        guess = low + int((limit - seen[low]) // slope) if slope > 0 else high - 1
        guess = min(max(guess, low + 1), high - 1)
        if probe(guess) <= limit:
            low = guess
        else:
            high = guess
    return low, seen
