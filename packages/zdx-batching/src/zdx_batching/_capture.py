"""What a call reads, split into array inputs and a static part compared by value.

A compiled program can be reused for a new call only if everything the function reads is
either an input of the program or provably the same as when the program was traced. So
the function (and the ``args`` given with it) is described as

* its *leaves*: every array it reaches (in closure cells, default arguments,
  ``functools.partial`` arguments, a bound ``self``, the fields of a pytree such as an
  ``equinox.Module``, the ``__dict__`` of a plain object). They become inputs of the
  program, read afresh on every call: new data of the same shapes, or a numpy array
  written into in place, gives the right result without tracing again;
* its *key*: everything else, compared **by value** on every call: code objects, Python
  numbers and strings, the structure of containers and pytrees, the class attributes of
  plain objects, and the identity of the module-level objects the code names.

``rebuild(leaves)`` makes an equivalent callable from new leaves (inside the trace).
Anything that cannot be described this way (an object whose state lives outside its
``__dict__``, with a custom ``__getattribute__``, of a class defined in C that is not a
function...) raises :class:`Opaque`: such a call is traced again every time, never taken
from the cache.

This module dispatches on the kind of value; the kinds that are followed live apart:
containers, pytrees and objects in ``_capture_objects``, functions in
``_capture_functions``, and the identity parts of the key (module-level names included,
keyed as ``jax.jit`` bakes them) in ``_capture_key``.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np

from ._capture_functions import function as _function
from ._capture_key import EXACT_SCALARS, MISSING, SCALARS, ById
from ._capture_objects import class_key
from ._capture_objects import node as _node
from ._capture_parts import Capture as Capture
from ._capture_parts import Opaque as Opaque
from ._capture_parts import Traced as Traced
from ._capture_parts import Walk, combine


def capture(value: Any, *, bake: bool = False, state: Any = ()) -> Capture:
    """Describe ``value`` (a callable, or the ``args`` given with it).

    With ``bake=True`` arrays are not made inputs: they stay in the program as
    constants and are keyed by their contents (numpy) or identity (immutable JAX arrays),
    for functions that need concrete values of what they capture. ``state`` holds the
    ``(id(container), entry)`` pairs that the function itself writes (see
    :func:`changed_entries`): they are kept as they are and left out of the key.

    Raises
    ------
    Opaque
        If something reachable cannot be compared by value.
    Traced
        If a captured value belongs to an outer trace.
    """
    return _capture(value, Walk(_capture, bake, state))


def capture_with_entries(value: Any, *, bake: bool = False, state: Any = ()) -> tuple:
    """:func:`capture`, and the entries of the mutable containers (lists, dicts, closure
    cells, objects' ``__dict__``) it read: ``{id: (container, {entry: key})}``."""
    walk = Walk(_capture, bake, state)
    return _capture(value, walk), walk.mutables


def changed_entries(before: dict, after: dict) -> list:
    """The ``(container, entry)`` pairs whose key differs between two descriptions of
    the same call: what the function changed while it was traced (a call counter)."""
    changed = []
    for ident, (container, entries) in before.items():
        if ident not in after:
            continue
        later = after[ident][1]
        for entry in set(entries) | set(later):
            try:
                same = entries.get(entry, MISSING) == later.get(entry, MISSING)
            except Exception:
                same = False
            if not same:
                changed.append((container, entry))
    return changed


def _take(iterator: Iterator) -> Any:
    return next(iterator)


def _capture(value: Any, walk: Walk) -> Capture:
    kind = type(value)
    handler = _BY_TYPE.get(kind)
    if handler is not None:  # the usual kinds, recognised by their exact type
        return handler(value, walk)
    if isinstance(value, jax.core.Tracer):
        raise Traced
    if isinstance(value, (jax.Array, np.ndarray)):
        _BY_TYPE[kind] = _array  # JAX's concrete array class, found once
        return _array(value, walk)
    if isinstance(value, SCALARS):
        return Capture((type(value), value), (), None)
    if isinstance(value, types.FunctionType):
        return _function(value, walk)
    if isinstance(value, functools.partial):
        return _parts(
            "partial",
            (value.func, tuple(value.args), dict(value.keywords)),
            lambda func, args, kw: functools.partial(func, *args, **kw),
            walk,
        )
    if isinstance(value, types.MethodType):
        return _parts("method", (value.__func__, value.__self__), types.MethodType, walk)
    if isinstance(value, type):
        return Capture(("class", class_key(value, walk)), (), None)
    if isinstance(value, types.ModuleType):
        return Capture(ById(value), (), None)
    if isinstance(value, Iterator):  # a generator or iterator: reading it changes it
        raise Opaque(f"an iterator ({kind.__name__})")
    return _node(value, walk)


def _scalar(value: Any, walk: Walk) -> Capture:
    return Capture((type(value), value), (), None)


def _array(value: Any, walk: Walk) -> Capture:
    dtype = np.dtype(value.dtype)
    if dtype.kind not in "biufc":
        raise Opaque(f"array of dtype {dtype}")
    if not walk.bake:
        weak = bool(getattr(value, "weak_type", False))
        return Capture(("array", tuple(value.shape), dtype, weak), (value,), _take)
    if isinstance(value, np.ndarray):  # may be written into: keyed by its contents
        return Capture(("numpy", value.shape, dtype, value.tobytes()), (), None)
    return Capture(ById(value), (), None)


def _parts(tag: str, originals: tuple, make: Callable, walk: Walk) -> Capture:
    parts = [_capture(item, walk) for item in originals]
    return combine(tag, parts, list(originals), lambda items: make(*items))


# Handlers of the common exact types (JAX's concrete array class is added when first seen):
# recognised by one dictionary lookup instead of a chain of ``isinstance`` checks.
_BY_TYPE: dict = {
    np.ndarray: _array,
    types.FunctionType: _function,
    tuple: _node,
    list: _node,
    dict: _node,
    **{kind: _scalar for kind in EXACT_SCALARS},
}


def array_types() -> frozenset:
    """The exact classes known to be concrete arrays (numpy's, and JAX's once seen)."""
    return frozenset(kind for kind, handler in _BY_TYPE.items() if handler is _array)
