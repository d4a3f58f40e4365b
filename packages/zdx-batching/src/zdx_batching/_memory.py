"""Choosing the block size from a memory bound, using XLA's own memory analysis.

A candidate program is lowered and compiled, and what one device holds while it runs is
read from ``memory_analysis()``: ``argument + output + temp - alias`` bytes. Memory
grows about linearly with the block size and a compile costs about as much whatever the
block, so :func:`choose_block` compiles as few as it can: two small blocks (two and three
columns, compiled side by side and only to be measured) draw a line; the largest block
the line says fits is compiled in full and verified by its own analysis; only if it is
over is the line redrawn and a smaller block tried (a few rounds at most). The package
README gives the details and the reasons.
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


def too_small(name: str, limit: int, one_column: int) -> str:
    """The message for a bound that one column at a time does not fit in."""
    return (
        f"{name}: max_memory={limit} bytes ({describe_bytes(limit)}) is too small for "
        f"even one column at a time: the program for one column needs {one_column} bytes "
        f"({describe_bytes(one_column)}) per device. Raise max_memory, or use "
        "checkpoint=True to recompute rather than store intermediate values."
    )


def choose_block(
    name: str,
    limit: int,
    largest: int,
    measure: Callable[[int], int],
    prefetch: Callable[[tuple], None] | None = None,
) -> tuple[int, dict]:
    """The largest block size in ``[1, largest]`` whose program fits in ``limit`` bytes.

    ``measure(block)`` compiles the program for ``block`` columns per block and returns
    its footprint in bytes; ``prefetch(blocks)``, if given, compiles several at once (side
    by side) so that measuring them afterwards costs nothing. Returns the block size and
    every measurement made.

    Raises
    ------
    ValueError
        If even one column at a time does not fit in ``limit``.
    """
    seen: dict[int, int] = {}

    def probe(block: int) -> int:
        if block not in seen:
            seen[block] = measure(block)
        return seen[block]

    if largest == 1:
        if probe(1) > limit:
            raise ValueError(too_small(name, limit, probe(1)))
        return 1, seen
    small = (2, 3) if largest >= 3 else (2,)
    if prefetch is not None and len(small) > 1:
        prefetch(small)
    if probe(2) > limit:  # one column, or none
        if probe(1) > limit:
            raise ValueError(too_small(name, limit, probe(1)))
        return 1, seen
    if largest == 2 or probe(3) > limit:
        return 2, seen
    low, high = 3, None  # the largest block known to fit, the smallest known not to
    for _ in range(_ROUNDS):
        if low == largest or (high is not None and high - low <= 1):
            break
        guess = _predict(seen, low, high, limit, largest)
        if guess is None:  # the line says that no larger block fits: trusted, as below
            break
        if probe(guess) <= limit:
            low = guess
            if high is None:  # the prediction fitted: taken, no search beyond it
                break
        else:
            high = guess
    return low, seen


def _predict(seen: dict, low: int, high: int | None, limit: int, largest: int) -> int | None:
    """The largest block the line through two measured points says fits, strictly
    between ``low`` (fits) and ``high`` (over; ``None``: nothing measured over yet), or
    ``None`` if the line says that ``low + 1`` is already over."""
    if high is None:  # the two small blocks: the shared part and the growth per column
        first, second = 2, 3
    else:
        first, second = low, high
    slope = (seen[second] - seen[first]) / (second - first)
    if slope <= 0:
        guess = largest if high is None else high - 1
    else:
        guess = first + int((limit - seen[first]) // slope)
    if guess <= low:
        return None
    ceiling = largest if high is None else high - 1
    return min(guess, ceiling)
