"""The pieces every kind of capture is made of: the result, the walk, and combining parts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple


class Opaque(Exception):
    """Something reachable from the call cannot be compared by value: do not cache it."""


class Traced(Exception):
    """The call captures a value of someone else's trace (jit, vmap, grad)."""


class Capture(NamedTuple):
    """A value as a key, its array leaves, and how to rebuild it from new leaves.

    ``rebuild`` is ``None`` when the original value can be used as it is (no leaves).
    """

    key: Any
    leaves: tuple
    rebuild: Callable[[Iterator], Any] | None


# An entry the function itself writes: kept as it is and left out of the key.
STATE = Capture(("state",), (), None)
# ``None`` where a function has no defaults.
NONE = Capture((type(None), None), (), None)


class Walk:
    """One description: how to describe a part (``describe(value, walk)``), whether
    arrays are baked, the functions being described, the entries known to be the
    function's own state, and the mutable entries seen."""

    __slots__ = ("active", "bake", "describe", "mutables", "state")

    def __init__(self, describe: Callable[[Any, Walk], Capture], bake: bool, state: Any = ()):
        self.describe = describe
        self.bake = bake
        self.active: set = set()
        self.state = state
        self.mutables: dict = {}


def _rebuilder(parts: list, originals: list, assemble: Callable) -> Callable[[Iterator], Any]:
    recipe = [(part.rebuild, original) for part, original in zip(parts, originals, strict=True)]

    def rebuild(iterator: Iterator) -> Any:
        return assemble([make(iterator) if make else item for make, item in recipe])

    return rebuild


def combine(tag: Any, parts: list, originals: list, assemble: Callable) -> Capture:
    """One capture of several parts: the key ``(tag, *keys)``, their leaves in order, and
    (when a part is rebuilt) ``assemble`` over the rebuilt parts and the original others."""
    key = (tag, *[part.key for part in parts])
    leaves = ()
    rebuilt = False
    for part in parts:
        if part.leaves:
            leaves += part.leaves
        if part.rebuild is not None:
            rebuilt = True
    if not rebuilt:
        return Capture(key, leaves, None)
    return Capture(key, leaves, _rebuilder(parts, originals, assemble))
