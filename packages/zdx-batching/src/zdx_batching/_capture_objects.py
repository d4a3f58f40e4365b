"""Capturing containers, pytree nodes (``equinox.Module``...), plain objects and classes.

A node is followed one level at a time, so that a part without arrays stays the very
object it was. The entries of mutable containers (lists, dicts, objects' ``__dict__``)
are recorded on the walk: they may be the function's own state.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax

from ._capture_key import ById
from ._capture_parts import STATE, Capture, Opaque, Walk, combine

HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python
# How deep containers, pytrees and objects are followed before giving up (uncacheable).
_MAX_DEPTH = 64


def node(value: Any, walk: Walk) -> Capture:
    """A container, pytree node or plain object, followed once (a cycle is opaque)."""
    if id(value) in walk.active or len(walk.active) > _MAX_DEPTH:
        raise Opaque("a cycle, or nesting too deep")  # cannot be compared safely
    walk.active.add(id(value))
    try:
        tree = _tree(value, walk)
        if tree is not None:
            return tree
        if not type(value).__flags__ & HEAP_TYPE or _is_jax_callable(value):
            # C functions, ufuncs, and jax.jit / custom_jvp wrappers: taken as globals are
            return Capture(ById(value), (), None)
        if _is_plain_object(value):
            return _plain_object(value, walk)
        raise Opaque(type(value).__name__)
    finally:
        walk.active.discard(id(value))


def _is_jax_callable(value: Any) -> bool:
    module = type(value).__module__ or ""
    return callable(value) and module.split(".")[0] in ("jax", "jaxlib")


def _builtin_container(value: Any) -> tuple | None:
    """``(tag, names, children, assemble)`` for a plain tuple, list or dict (the usual
    containers, described without ``jax.tree_util``), else ``None``."""
    kind = type(value)
    if kind is tuple or kind is list:
        return (kind, len(value)), range(len(value)), list(value), kind
    if kind is dict:
        try:
            names = sorted(value)  # the order jax.tree_util gives a dict's entries
        except TypeError as error:
            raise Opaque("a dict whose keys cannot be sorted") from error
        return (
            (dict, tuple(names)),
            names,
            [value[name] for name in names],
            lambda items: dict(zip(names, items)),
        )
    return None


def _tree(value: Any, walk: Walk) -> Capture | None:
    """A pytree node (container, ``equinox.Module``...), one level at a time, so that a
    part without arrays stays the very object it was (a list ``f`` appends to)."""
    container = _builtin_container(value)
    if container is not None:
        tag, names, children, assemble = container
        if tag[0] is tuple:
            parts = [walk.describe(child, walk) for child in children]
        else:  # mutable: its entries may be the function's state
            parts = [
                STATE if (id(value), name) in walk.state else walk.describe(child, walk)
                for name, child in zip(names, children)
            ]
            entries = {name: part.key for name, part in zip(names, parts)}
            walk.mutables[id(value)] = (value, entries)
        return combine(("container", tag), parts, children, assemble)
    try:
        children, treedef = jax.tree_util.tree_flatten(value, is_leaf=lambda n: n is not value)
    except Exception as error:  # a pytree whose flattening fails
        raise Opaque(type(value).__name__) from error
    if treedef.num_nodes == 1 and treedef.num_leaves == 1:
        return None  # not a pytree node
    if type(value) in (list, dict):  # mutable: its entries may be the function's state
        names = sorted(value) if type(value) is dict else range(len(value))
        parts = [
            STATE if (id(value), name) in walk.state else walk.describe(child, walk)
            for name, child in zip(names, children, strict=True)
        ]
        entries = {name: part.key for name, part in zip(names, parts)}
        walk.mutables[id(value)] = (value, entries)
    else:
        parts = [walk.describe(child, walk) for child in children]
    return combine(
        ("tree", treedef),
        parts,
        children,
        lambda items: jax.tree_util.tree_unflatten(treedef, items),
    )


def _is_plain_object(value: Any) -> bool:
    """An instance of a Python class whose whole state is its ``__dict__``."""
    cls = type(value)
    if not isinstance(getattr(value, "__dict__", None), dict):
        return False
    if cls.__getattribute__ is not object.__getattribute__:
        return False
    for klass in cls.__mro__[:-1]:  # every base but object is a Python class without slots
        if not klass.__flags__ & HEAP_TYPE or "__slots__" in vars(klass):
            return False
    return True


def _plain_object(value: Any, walk: Walk) -> Capture:
    cls = type(value)
    state = walk.describe(vars(value), walk)
    key = ("object", class_key(cls, walk), state.key)
    if state.rebuild is None:
        return Capture(key, state.leaves, None)

    def rebuild(iterator: Iterator) -> Any:
        new = object.__new__(cls)
        new.__dict__.update(state.rebuild(iterator))
        return new

    return Capture(key, state.leaves, rebuild)


def class_key(cls: type, walk: Walk) -> tuple:
    """The class and its attributes, as read through an instance.

    Data attributes (``scale = 2.0``) are compared by value (baked: they are not
    inputs); functions, properties and other descriptors by identity; dunder data
    (``__doc__``, ``__dataclass_fields__``...) is class machinery and skipped. Classes
    defined in C are keyed by identity.
    """
    if id(cls) in walk.active:  # a class attribute holding an instance of the class
        return (ById(cls),)
    baked = Walk(walk.describe, True)
    baked.active = walk.active
    walk.active.add(id(cls))
    try:
        return _class_parts(cls, baked)
    finally:
        walk.active.discard(id(cls))


def _class_parts(cls: type, baked: Walk) -> tuple:
    parts = []
    for klass in cls.__mro__[:-1]:
        if not klass.__flags__ & HEAP_TYPE:
            parts.append(ById(klass))
            continue
        items = []
        for name, item in vars(klass).items():
            if hasattr(type(item), "__get__"):
                items.append((name, ById(item)))
            elif not (name.startswith("__") and name.endswith("__")):
                items.append((name, baked.describe(item, baked).key))
        parts.append((ById(klass), tuple(items)))
    return tuple(parts)
