"""Capturing Python functions: their closure cells, defaults, code and module-level names.

A function is rebuilt from its code with new cells only when something it captures has
array leaves; otherwise the very function is used, so that ``nonlocal`` assignments
still reach the user's variables.
"""

from __future__ import annotations

import types

from ._capture_key import ById, globals_key
from ._capture_parts import NONE, STATE, Capture, Walk, combine


def function(fn: types.FunctionType, walk: Walk) -> Capture:
    """A function: its cells and defaults as parts, its code and globals in the tag."""
    if id(fn) in walk.active:  # a function that reaches itself (recursion)
        return Capture(("recursive", ById(fn)), (), None)
    walk.active.add(id(fn))
    try:
        cells = list(fn.__closure__ or ())
        parts = [_cell(cell, walk) for cell in cells]
        for defaults in (fn.__defaults__, fn.__kwdefaults__):
            parts.append(NONE if defaults is None else walk.describe(defaults, walk))
        tag = ("function", fn.__code__, globals_key(fn, 0, set()))
    finally:
        walk.active.discard(id(fn))

    def assemble(items: list) -> types.FunctionType:
        *closure, defaults, kwdefaults = items
        new = types.FunctionType(
            fn.__code__, fn.__globals__, fn.__name__, defaults, tuple(closure) or None
        )
        new.__kwdefaults__ = kwdefaults
        new.__qualname__ = fn.__qualname__
        new.__dict__.update(fn.__dict__)
        return new

    originals = [*cells, fn.__defaults__, fn.__kwdefaults__]
    return combine(tag, parts, originals, assemble)


def _cell(cell: types.CellType, walk: Walk) -> Capture:
    """A closure cell: its contents, in a new cell when they are rebuilt (the original
    cell is kept otherwise, so that ``nonlocal`` assignments reach the user's variable)."""
    if (id(cell), None) in walk.state:
        return STATE
    try:
        contents = cell.cell_contents
    except ValueError:  # not yet assigned
        return Capture("empty cell", (), None)
    part = walk.describe(contents, walk)
    walk.mutables[id(cell)] = (cell, {None: part.key})
    if part.rebuild is None:
        return part
    return Capture(part.key, part.leaves, lambda it: types.CellType(part.rebuild(it)))
