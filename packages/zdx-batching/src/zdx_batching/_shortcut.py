"""A shortcut for repeated calls: check a call against a stored description, fast.

A cached call is found by describing ``(f, args)`` (``_capture``) and looking its key up.
For the common shapes of a call (plain functions and their closures, defaults and
module-level names; tuples, lists and dicts; arrays and Python scalars) a *matcher* built
once from the call that compiled a program checks, for a new call, that every part it
would describe is the same (code objects and module-level objects by identity, scalars
and container layouts by value, arrays by shape and dtype) and gathers its arrays, the
inputs of the program. It builds no key and no closures.

A matcher is stricter than the key, never looser: whatever it accepts describes to the
very key the program was stored under. Anything it does not know (an object, a bound
method, ``functools.partial``, a pytree class), or any difference at all, makes it give
up, and the call goes the general way (``_capture``), which may still find the program.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import numpy as np

from ._capture_key import GLOBAL_DEPTH, code_names

Matcher = Callable[[Any, list], None]


class NoMatch(Exception):
    """The call differs from the stored one (or has a part no matcher knows)."""


class _Unsupported(Exception):
    """A part that has no matcher: the call keeps the general way."""


_MISSING = object()
_SCALAR_TYPES = frozenset({int, float, complex, str, bytes, bool, type(None)})


def build(value: Any, array_types: frozenset) -> Matcher | None:
    """The matcher of ``value`` as it is now, or ``None`` if a part of it has none.

    ``array_types`` are the exact classes of concrete arrays (numpy's and JAX's).
    """
    try:
        return _build(value, array_types, set())
    except _Unsupported:
        return None


def _build(value: Any, array_types: frozenset, active: set) -> Matcher:
    kind = type(value)
    if kind in _SCALAR_TYPES:
        return _scalar(kind, value)
    if kind in array_types:
        return _array(value)
    if id(value) in active or len(active) > 64:
        raise _Unsupported
    active.add(id(value))
    try:
        if kind is tuple or kind is list:
            return _sequence(kind, [_build(item, array_types, active) for item in value])
        if kind is dict:
            try:
                names = tuple(sorted(value))
            except TypeError as error:
                raise _Unsupported from error
            children = [_build(value[name], array_types, active) for name in names]
            return _mapping(names, children)
        if kind is types.FunctionType:
            return _function(value, array_types, active)
    finally:
        active.discard(id(value))
    raise _Unsupported


def _scalar(kind: type, expected: Any) -> Matcher:
    def match(value: Any, leaves: list) -> None:
        if type(value) is not kind or value != expected:
            raise NoMatch

    return match


def _array(array: Any) -> Matcher:
    kind, shape, dtype = type(array), tuple(array.shape), np.dtype(array.dtype)
    if dtype.kind not in "biufc":
        raise _Unsupported
    weak = bool(getattr(array, "weak_type", False))

    def match(value: Any, leaves: list) -> None:
        if (
            type(value) is not kind
            or value.shape != shape
            or value.dtype != dtype
            or bool(getattr(value, "weak_type", False)) is not weak
        ):
            raise NoMatch
        leaves.append(value)

    return match


def _sequence(kind: type, children: list) -> Matcher:
    size = len(children)

    def match(value: Any, leaves: list) -> None:
        if type(value) is not kind or len(value) != size:
            raise NoMatch
        for child, item in zip(children, value):
            child(item, leaves)

    return match


def _mapping(names: tuple, children: list) -> Matcher:
    size = len(names)
    pairs = list(zip(names, children))

    def match(value: Any, leaves: list) -> None:
        if type(value) is not dict or len(value) != size:
            raise NoMatch
        for name, child in pairs:
            item = value.get(name, _MISSING)
            if item is _MISSING:
                raise NoMatch
            child(item, leaves)

    return match


def _globals_read(fn: types.FunctionType, depth: int, seen: set, read: list) -> None:
    """Every ``(name, object)`` that the key of ``fn``'s module-level names depends on
    (``_capture_key.globals_key``), with the code of the module's functions followed."""
    namespace = fn.__globals__
    seen.add(id(fn))
    for name in code_names(fn.__code__):
        value = namespace.get(name, _MISSING)
        read.append((name, value))
        if (
            isinstance(value, types.FunctionType)
            and value.__globals__ is namespace
            and depth < GLOBAL_DEPTH
            and id(value) not in seen
        ):
            read.append((value, value.__code__))
            _globals_read(value, depth + 1, seen, read)


def _function(fn: types.FunctionType, array_types: frozenset, active: set) -> Matcher:
    code, namespace = fn.__code__, fn.__globals__
    cells = []
    for cell in fn.__closure__ or ():
        try:
            contents = cell.cell_contents
        except ValueError:  # not yet assigned: stays a part of the key as it is
            raise _Unsupported from None
        cells.append(_build(contents, array_types, active))
    defaults = None if fn.__defaults__ is None else _build(fn.__defaults__, array_types, active)
    kwdefaults = (
        None if fn.__kwdefaults__ is None else _build(fn.__kwdefaults__, array_types, active)
    )
    read: list = []
    _globals_read(fn, 0, set(), read)
    names = [(name, value) for name, value in read if type(name) is str]
    codes = [(function, code) for function, code in read if type(function) is not str]
    ncells = len(cells)

    def match(value: Any, leaves: list) -> None:
        if type(value) is not types.FunctionType or value.__code__ is not code:
            raise NoMatch
        if value.__globals__ is not namespace:
            raise NoMatch
        closure = value.__closure__ or ()
        if len(closure) != ncells:
            raise NoMatch
        for child, cell in zip(cells, closure):
            try:
                contents = cell.cell_contents
            except ValueError:
                raise NoMatch from None
            child(contents, leaves)
        for matcher, part in ((defaults, value.__defaults__), (kwdefaults, value.__kwdefaults__)):
            if matcher is None:
                if part is not None:
                    raise NoMatch
            else:
                matcher(part, leaves)
        for name, expected in names:  # rebinding a module-level name is a new key
            if namespace.get(name, _MISSING) is not expected:
                raise NoMatch
        for function, function_code in codes:
            if function.__code__ is not function_code:
                raise NoMatch

    return match
