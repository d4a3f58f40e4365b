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

Module-level names are keyed by identity only, as ``jax.jit`` bakes them: rebinding one is
seen, changing the object it names in place is not.
"""

from __future__ import annotations

import functools
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import numpy as np

_HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined in Python
# Immutable values compared by value.
_SCALARS = (int, float, complex, str, bytes, bool, type(None), np.generic, type(Ellipsis))
# How deep module-level functions are followed (f -> loss -> helper -> ...).
GLOBAL_DEPTH = 4
# How deep containers, pytrees and objects are followed before giving up (uncacheable).
_MAX_DEPTH = 64


class Opaque(Exception):
    """Something reachable from the call cannot be compared by value: do not cache it."""


class Traced(Exception):
    """The call captures a value of someone else's trace (jit, vmap, grad)."""


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


def _forget_callback(ident: int) -> Callable:
    def forget(ref: weakref.ref) -> None:
        known = _INTERNED.get(ident)
        if known is not None and known._ref is ref:
            del _INTERNED[ident]

    return forget


class Capture(NamedTuple):
    """A value as a key, its array leaves, and how to rebuild it from new leaves.

    ``rebuild`` is ``None`` when the original value can be used as it is (no leaves).
    """

    key: Any
    leaves: tuple
    rebuild: Callable[[Iterator], Any] | None


class _Walk:
    """One description: whether arrays are baked, the functions being described, the
    entries known to be the function's own state, and the mutable entries seen."""

    __slots__ = ("active", "bake", "mutables", "state")

    def __init__(self, bake: bool, state: Any = ()):
        self.bake = bake
        self.active: set = set()
        self.state = state
        self.mutables: dict = {}


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
    return _capture(value, _Walk(bake, state))


def capture_with_entries(value: Any, *, bake: bool = False, state: Any = ()) -> tuple:
    """:func:`capture`, and the entries of the mutable containers (lists, dicts, closure
    cells, objects' ``__dict__``) it read: ``{id: (container, {entry: key})}``."""
    walk = _Walk(bake, state)
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
                same = entries.get(entry, _MISSING) == later.get(entry, _MISSING)
            except Exception:
                same = False
            if not same:
                changed.append((container, entry))
    return changed


_MISSING = object()
_STATE = Capture(("state",), (), None)
_NONE = Capture((type(None), None), (), None)


def _take(iterator: Iterator) -> Any:
    return next(iterator)


def _capture(value: Any, walk: _Walk) -> Capture:
    kind = type(value)
    handler = _BY_TYPE.get(kind)
    if handler is not None:  # the usual kinds, recognised by their exact type
        return handler(value, walk)
    if isinstance(value, jax.core.Tracer):
        raise Traced
    if isinstance(value, (jax.Array, np.ndarray)):
        _BY_TYPE[kind] = _array  # JAX's concrete array class, found once
        return _array(value, walk)
    if isinstance(value, _SCALARS):
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


def _scalar(value: Any, walk: _Walk) -> Capture:
    return Capture((type(value), value), (), None)


def _node(value: Any, walk: _Walk) -> Capture:
    """A container, pytree node or plain object, followed once (a cycle is opaque)."""
    if id(value) in walk.active or len(walk.active) > _MAX_DEPTH:
        raise Opaque("a cycle, or nesting too deep")  # cannot be compared safely
    walk.active.add(id(value))
    try:
        tree = _tree(value, walk)
        if tree is not None:
            return tree
        if not type(value).__flags__ & _HEAP_TYPE or _is_jax_callable(value):
            # C functions, ufuncs, and jax.jit / custom_jvp wrappers: taken as globals are
            return Capture(ById(value), (), None)
        if _is_plain_object(value):
            return _plain_object(value, walk)
        raise Opaque(type(value).__name__)
    finally:
        walk.active.discard(id(value))


def _array(value: Any, walk: _Walk) -> Capture:
    dtype = np.dtype(value.dtype)
    if dtype.kind not in "biufc":
        raise Opaque(f"array of dtype {dtype}")
    if not walk.bake:
        weak = bool(getattr(value, "weak_type", False))
        return Capture(("array", tuple(value.shape), dtype, weak), (value,), _take)
    if isinstance(value, np.ndarray):  # may be written into: keyed by its contents
        return Capture(("numpy", value.shape, dtype, value.tobytes()), (), None)
    return Capture(ById(value), (), None)


def _is_jax_callable(value: Any) -> bool:
    module = type(value).__module__ or ""
    return callable(value) and module.split(".")[0] in ("jax", "jaxlib")


def _rebuilder(parts: list, originals: list, assemble: Callable) -> Callable[[Iterator], Any]:
    recipe = [(part.rebuild, original) for part, original in zip(parts, originals, strict=True)]

    def rebuild(iterator: Iterator) -> Any:
        return assemble([make(iterator) if make else item for make, item in recipe])

    return rebuild


def _combine(tag: Any, parts: list, originals: list, assemble: Callable) -> Capture:
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


def _parts(tag: str, originals: tuple, make: Callable, walk: _Walk) -> Capture:
    parts = [_capture(item, walk) for item in originals]
    return _combine(tag, parts, list(originals), lambda items: make(*items))


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


def _tree(value: Any, walk: _Walk) -> Capture | None:
    """A pytree node (container, ``equinox.Module``...), one level at a time, so that a
    part without arrays stays the very object it was (a list ``f`` appends to)."""
    container = _builtin_container(value)
    if container is not None:
        tag, names, children, assemble = container
        if tag[0] is tuple:
            parts = [_capture(child, walk) for child in children]
        else:  # mutable: its entries may be the function's state
            parts = [
                _STATE if (id(value), name) in walk.state else _capture(child, walk)
                for name, child in zip(names, children)
            ]
            entries = {name: part.key for name, part in zip(names, parts)}
            walk.mutables[id(value)] = (value, entries)
        return _combine(("container", tag), parts, children, assemble)
    try:
        children, treedef = jax.tree_util.tree_flatten(value, is_leaf=lambda n: n is not value)
    except Exception as error:  # a pytree whose flattening fails
        raise Opaque(type(value).__name__) from error
    if treedef.num_nodes == 1 and treedef.num_leaves == 1:
        return None  # not a pytree node
    if type(value) in (list, dict):  # mutable: its entries may be the function's state
        names = sorted(value) if type(value) is dict else range(len(value))
        parts = [
            _STATE if (id(value), name) in walk.state else _capture(child, walk)
            for name, child in zip(names, children, strict=True)
        ]
        entries = {name: part.key for name, part in zip(names, parts)}
        walk.mutables[id(value)] = (value, entries)
    else:
        parts = [_capture(child, walk) for child in children]
    return _combine(
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
        if not klass.__flags__ & _HEAP_TYPE or "__slots__" in vars(klass):
            return False
    return True


def _plain_object(value: Any, walk: _Walk) -> Capture:
    cls = type(value)
    state = _capture(vars(value), walk)
    key = ("object", class_key(cls, walk), state.key)
    if state.rebuild is None:
        return Capture(key, state.leaves, None)

    def rebuild(iterator: Iterator) -> Any:
        new = object.__new__(cls)
        new.__dict__.update(state.rebuild(iterator))
        return new

    return Capture(key, state.leaves, rebuild)


def class_key(cls: type, walk: _Walk | None = None) -> tuple:
    """The class and its attributes, as read through an instance.

    Data attributes (``scale = 2.0``) are compared by value (baked: they are not
    inputs); functions, properties and other descriptors by identity; dunder data
    (``__doc__``, ``__dataclass_fields__``...) is class machinery and skipped. Classes
    defined in C are keyed by identity.
    """
    walk = walk or _Walk(True)
    if id(cls) in walk.active:  # a class attribute holding an instance of the class
        return (ById(cls),)
    baked = _Walk(True)
    baked.active = walk.active
    walk.active.add(id(cls))
    try:
        return _class_parts(cls, baked)
    finally:
        walk.active.discard(id(cls))


def _class_parts(cls: type, baked: _Walk) -> tuple:
    parts = []
    for klass in cls.__mro__[:-1]:
        if not klass.__flags__ & _HEAP_TYPE:
            parts.append(ById(klass))
            continue
        items = []
        for name, item in vars(klass).items():
            if hasattr(type(item), "__get__"):
                items.append((name, ById(item)))
            elif not (name.startswith("__") and name.endswith("__")):
                items.append((name, _capture(item, baked).key))
        parts.append((ById(klass), tuple(items)))
    return tuple(parts)


def _function(fn: types.FunctionType, walk: _Walk) -> Capture:
    if id(fn) in walk.active:  # a function that reaches itself (recursion)
        return Capture(("recursive", ById(fn)), (), None)
    walk.active.add(id(fn))
    try:
        cells = list(fn.__closure__ or ())
        parts = [_cell(cell, walk) for cell in cells]
        for defaults in (fn.__defaults__, fn.__kwdefaults__):
            parts.append(_NONE if defaults is None else _capture(defaults, walk))
        tag = ("function", fn.__code__, _globals_key(fn, 0, set()))
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
    return _combine(tag, parts, originals, assemble)


def _cell(cell: types.CellType, walk: _Walk) -> Capture:
    """A closure cell: its contents, in a new cell when they are rebuilt (the original
    cell is kept otherwise, so that ``nonlocal`` assignments reach the user's variable)."""
    if (id(cell), None) in walk.state:
        return _STATE
    try:
        contents = cell.cell_contents
    except ValueError:  # not yet assigned
        return Capture("empty cell", (), None)
    part = _capture(contents, walk)
    walk.mutables[id(cell)] = (cell, {None: part.key})
    if part.rebuild is None:
        return part
    return Capture(part.key, part.leaves, lambda it: types.CellType(part.rebuild(it)))


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


def _globals_key(fn: types.FunctionType, depth: int, seen: set) -> tuple:
    """The identity of the module-level objects ``fn``'s code names (by value for plain
    numbers and strings), following the module's own functions a few levels deep."""
    namespace = fn.__globals__
    seen.add(id(fn))
    parts: list = [ById(namespace)]
    for name in code_names(fn.__code__):
        value = namespace.get(name, _MISSING)
        if value is _MISSING:
            continue
        if type(value) in _EXACT_SCALARS or isinstance(value, _SCALARS):
            parts.append((name, type(value), value))
        elif (
            isinstance(value, types.FunctionType)
            and value.__globals__ is namespace
            and depth < GLOBAL_DEPTH
            and id(value) not in seen
        ):
            parts.append((name, ById(value), _globals_key(value, depth + 1, seen)))
        else:
            parts.append((name, ById(value)))
    return tuple(parts)


_EXACT_SCALARS = frozenset({int, float, complex, str, bytes, bool, type(None)})


# Handlers of the common exact types (JAX's concrete array class is added when first seen):
# recognised by one dictionary lookup instead of a chain of ``isinstance`` checks.
_BY_TYPE: dict = {
    np.ndarray: _array,
    types.FunctionType: _function,
    tuple: _node,
    list: _node,
    dict: _node,
    **{kind: _scalar for kind in _EXACT_SCALARS},
}


def array_types() -> frozenset:
    """The exact classes known to be concrete arrays (numpy's, and JAX's once seen)."""
    return frozenset(kind for kind, handler in _BY_TYPE.items() if handler is _array)
