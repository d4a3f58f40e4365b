"""The parts of a capture key compared by identity: living objects and module-level names.

:class:`ById` stands for one living object in a key (hashed and compared in C);
:func:`globals_key` describes the module-level objects a function's code names, by
identity, as ``jax.jit`` bakes them: rebinding one is seen, changing the object it names
in place is not.
"""

from __future__ import annotations

import types
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

# Immutable values compared by value.
SCALARS = (int, float, complex, str, bytes, bool, type(None), np.generic, type(Ellipsis))
# The exact types of the common immutable values (one set lookup instead of isinstance).
EXACT_SCALARS = frozenset({int, float, complex, str, bytes, bool, type(None)})
# How deep module-level functions are followed (f -> loss -> helper -> ...).
GLOBAL_DEPTH = 4
# An entry that is not there (a name not yet bound, a key a dict no longer has).
MISSING = object()


class ById:
    """A key part equal only to itself, made once per living object (interned).

    ``ById(obj) is ById(obj)`` while ``obj`` lives, so keys holding them compare (and
    hash) by identity, in C. When ``obj`` dies its entry is forgotten: a new object at
    the same address gets a new part, never equal to the old one. An object that cannot
    be referenced weakly is held strongly; should the table be cleared, such an object
    gets a new part, which costs a recompile, never a wrong match.
    """

    __slots__ = ("__weakref__", "_ref", "_strong")

    def __new__(cls, obj: Any) -> ById:
        ident = id(obj)
        known = _INTERNED.get(ident)
        if known is not None and known.get() is obj:
            return known
        if len(_INTERNED) > _MAX_INTERNED:
            _INTERNED.clear()
        part = object.__new__(cls)
        try:
            part._ref, part._strong = weakref.ref(obj, _forget_callback(ident)), None
        except TypeError:
            part._ref, part._strong = None, obj
        _INTERNED[ident] = part
        return part

    def get(self) -> Any:
        return self._strong if self._ref is None else self._ref()


_INTERNED: dict = {}
_MAX_INTERNED = 1 << 16


def _forget_callback(ident: int, interned: dict = _INTERNED) -> Callable:
    # The table is bound here, not looked up as a global: a callback may run while the
    # interpreter shuts down, after the module's globals are gone.
    def forget(ref: weakref.ref) -> None:
        known = interned.get(ident)
        if known is not None and known._ref is ref:
            del interned[ident]

    return forget


_CODE_NAMES: dict = {}


def code_names(code: types.CodeType) -> tuple:
    """The global and attribute names a code object (and the code nested in it) uses.

    Remembered by the identity of the code object (which is kept with its names, so the
    identity cannot be reused): hashing a code object hashes its whole bytecode.
    """
    known = _CODE_NAMES.get(id(code))
    if known is not None and known[0] is code:
        return known[1]
    names: set = set()
    stack = [code]
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    if len(_CODE_NAMES) > _MAX_INTERNED:
        _CODE_NAMES.clear()
    found = tuple(sorted(names))
    _CODE_NAMES[id(code)] = (code, found)
    return found


def globals_key(fn: types.FunctionType, depth: int, seen: set) -> tuple:
    """The identity of the module-level objects ``fn``'s code names (by value for plain
    numbers and strings), following the module's own functions a few levels deep."""
    namespace = fn.__globals__
    seen.add(id(fn))
    parts: list = [ById(namespace)]
    for name in code_names(fn.__code__):
        value = namespace.get(name, MISSING)
        if value is MISSING:
            continue
        if type(value) in EXACT_SCALARS or isinstance(value, SCALARS):
            parts.append((name, type(value), value))
        elif (
            isinstance(value, types.FunctionType)
            and value.__globals__ is namespace
            and depth < GLOBAL_DEPTH
            and id(value) not in seen
        ):
            parts.append((name, ById(value), globals_key(value, depth + 1, seen)))
        else:
            parts.append((name, ById(value)))
    return tuple(parts)
