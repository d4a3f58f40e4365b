"""Split a callable into a hashable description and the arrays it captures.

Users often build a new function for every call (``f = lambda p: loss(p, args)``). To
compile once, the cache cannot be keyed on the function object alone. Instead, a
callable is described by

* a *static key*: its code objects, the Python values it captures (compared by value when
  they are hashable, by identity otherwise) and the identity of the module-level objects
  its code names, and
* its *dynamic leaves*: every array it captures in a closure cell, a default argument, a
  ``functools.partial`` argument, a bound ``self`` or a pytree-valued callable (an
  ``equinox.Module``). These become arguments of the compiled program, so two functions
  that differ only in the values of such arrays share one compiled program and still
  give their own results.

``build(leaves)`` rebuilds an equivalent callable from new leaves (inside a trace). What
cannot be described safely is keyed by identity and used as it is, which is what
``jax.jit`` does for every function: the program then holds the values it saw.

Variables that the function itself assigns (``nonlocal``/``global`` statements, e.g. a
call counter) are state, not inputs: they are keyed by the identity of their cell or
ignored, and the original cell is kept so the assignment reaches the user's variable.
"""

from __future__ import annotations

import dis
import functools
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import numpy as np

# How deep to follow functions named at module level (f -> loss -> helper -> ...).
_MAX_DEPTH = 6
# How many functions one description may look into before falling back to identity.
_MAX_FUNCTIONS = 256
_SIMPLE = (int, float, complex, str, bytes, bool, type(None), type, types.ModuleType, np.generic)
_STORE_DEREF = frozenset({"STORE_DEREF", "DELETE_DEREF"})
_STORE_GLOBAL = frozenset({"STORE_GLOBAL", "DELETE_GLOBAL"})


class ById:
    """Compare equal only to the same, still living, object."""

    __slots__ = ("__weakref__", "_id", "_ref", "_strong")

    def __init__(self, obj: Any):
        self._id = id(obj)
        try:
            self._ref = weakref.ref(obj)
            self._strong = None
        except TypeError:
            self._ref = None
            self._strong = obj

    def get(self) -> Any:
        return self._strong if self._ref is None else self._ref()

    def __hash__(self) -> int:
        return self._id

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, ById) or other._id != self._id:
            return False
        obj = self.get()
        return obj is not None and obj is other.get()


class ByValue:
    """Compare equal to an object of the same type that compares equal."""

    __slots__ = ("_hash", "value")

    def __init__(self, value: Any, hashed: int):
        self.value = value
        self._hash = hashed

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, ByValue) or type(other.value) is not type(self.value):
            return False
        if other.value is self.value:
            return True
        try:
            return bool(other.value == self.value)
        except Exception:  # an __eq__ that returns arrays, or fails
            return False


def static_key(value: Any) -> ByValue | ById:
    """Key a value that is baked into a program: by value if hashable, else identity."""
    try:
        hashed = hash((type(value), value))
    except Exception:
        return ById(value)
    return ByValue(value, hashed)


def is_dynamic(value: Any) -> bool:
    """Arrays are passed to the compiled program rather than baked into it."""
    if isinstance(value, jax.Array):
        return True
    return isinstance(value, np.ndarray) and value.dtype.kind in "biufc"


class Split(NamedTuple):
    """A value described as a static key plus dynamic leaves.

    ``build`` is ``None`` when the original value can be used as it is.
    """

    key: Any
    leaves: list
    build: Callable[[Iterator], Any] | None


class _CodeInfo(NamedTuple):
    names: tuple
    stored_freevars: frozenset
    stored_globals: frozenset


@functools.lru_cache(maxsize=4096)
def _code_info(code: types.CodeType) -> _CodeInfo:
    """Names a code object (and the code nested in it) reads or assigns."""
    names: set = set()
    stored_deref: set = set()
    stored_globals: set = set()
    stack = [code]
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        for instruction in dis.get_instructions(current):
            if instruction.opname in _STORE_DEREF:
                stored_deref.add(instruction.argval)
            elif instruction.opname in _STORE_GLOBAL:
                stored_globals.add(instruction.argval)
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return _CodeInfo(tuple(sorted(names)), frozenset(stored_deref), frozenset(stored_globals))


def _take(iterator: Iterator) -> Any:
    return next(iterator)


class _Walk:
    """Book-keeping of one description: recursion guard, memo and a work budget."""

    __slots__ = ("active", "bake", "budget", "memo")

    def __init__(self, bake: bool):
        self.active: set = set()
        self.memo: dict = {}
        self.budget = _MAX_FUNCTIONS
        self.bake = bake


def split_callable(f: Any, bake: bool = False) -> Split:
    """Describe ``f`` as a static key, its captured arrays and a way to rebuild it.

    With ``bake=True`` captured arrays are keyed by identity and left in place (baked
    into the program as constants), for functions that need concrete values of them
    (``np.asarray(captured)``, ``int(captured)``...).
    """
    return _split(f, 0, _Walk(bake))


def _split(value: Any, depth: int, walk: _Walk) -> Split:
    if is_dynamic(value):
        if walk.bake:
            return Split(ById(value), [], None)
        return Split("array", [value], _take)
    if isinstance(value, _SIMPLE):
        return Split(static_key(value), [], None)
    if isinstance(value, types.FunctionType):
        return _split_function(value, depth, walk)
    if isinstance(value, functools.partial):
        return _split_partial(value, depth, walk)
    if isinstance(value, types.MethodType):
        return _split_method(value, depth, walk)
    return _split_tree(value, depth, walk)


def _container_key(value: Any, treedef: Any, parts: list) -> Any:
    """Key of a container that holds no arrays (it is used as it is)."""
    key = static_key(value)
    if isinstance(key, ByValue) or not isinstance(value, tuple):
        # Hashable, or mutable (a list used as a call counter must stay the user's
        # list and must not change the key when it is appended to): by identity.
        return key
    try:
        hash(treedef)
    except Exception:
        return key
    return ("tuple", treedef, tuple(part.key for part in parts))


def _needs_split(leaf: Any) -> bool:
    return is_dynamic(leaf) or isinstance(
        leaf, (types.FunctionType, functools.partial, types.MethodType)
    )


def _split_tree(value: Any, depth: int, walk: _Walk) -> Split:
    def keep_whole(node: Any) -> bool:
        # A part with nothing to pass in stays the very same object: a list that f
        # appends to (a call counter) must remain the user's list, not a copy.
        if node is value:
            return False
        return not any(_needs_split(leaf) for leaf in jax.tree_util.tree_leaves(node))

    try:
        leaves, treedef = jax.tree_util.tree_flatten(value, is_leaf=keep_whole)
    except Exception:
        return Split(static_key(value), [], None)
    if treedef.num_leaves == 1 and treedef.num_nodes == 1 and leaves[0] is value:
        return Split(static_key(value), [], None)  # an opaque object: baked
    parts = [_split(leaf, depth + 1, walk) for leaf in leaves]
    if all(part.build is None for part in parts):
        return Split(_container_key(value, treedef, parts), [], None)
    try:
        hash(treedef)
    except Exception:
        return Split(ById(value), [], None)
    key = ("tree", treedef, tuple(part.key for part in parts))
    dynamic = [leaf for part in parts for leaf in part.leaves]
    recipe = [
        (part.build, None) if part.build is not None else (None, leaf)
        for part, leaf in zip(parts, leaves)
    ]

    def build(iterator: Iterator) -> Any:
        rebuilt = [item if make is None else make(iterator) for make, item in recipe]
        return jax.tree_util.tree_unflatten(treedef, rebuilt)

    return Split(key, dynamic, build)


def _split_partial(value: functools.partial, depth: int, walk: _Walk) -> Split:
    parts = (
        _split(value.func, depth + 1, walk),
        _split(tuple(value.args), depth + 1, walk),
        _split(dict(value.keywords), depth + 1, walk),
    )
    key = ("partial", *tuple(part.key for part in parts))
    dynamic = [leaf for part in parts for leaf in part.leaves]
    if all(part.build is None for part in parts):
        return Split(key, dynamic, None)
    originals = (value.func, tuple(value.args), dict(value.keywords))
    recipe = [
        (part.build, None if part.build else original) for part, original in zip(parts, originals)
    ]

    def build(iterator: Iterator) -> Any:
        func, args, keywords = (item if make is None else make(iterator) for make, item in recipe)
        return functools.partial(func, *args, **keywords)

    return Split(key, dynamic, build)


def _split_method(value: types.MethodType, depth: int, walk: _Walk) -> Split:
    parts = (_split(value.__func__, depth + 1, walk), _split(value.__self__, depth + 1, walk))
    key = ("method", *tuple(part.key for part in parts))
    dynamic = [leaf for part in parts for leaf in part.leaves]
    if all(part.build is None for part in parts):
        return Split(key, dynamic, None)
    originals = (value.__func__, value.__self__)
    recipe = [
        (part.build, None if part.build else original) for part, original in zip(parts, originals)
    ]

    def build(iterator: Iterator) -> Any:
        func, owner = (item if make is None else make(iterator) for make, item in recipe)
        return types.MethodType(func, owner)

    return Split(key, dynamic, build)


def _globals_key(fn: types.FunctionType, info: _CodeInfo, depth: int, walk: _Walk) -> tuple:
    """Fingerprint the module-level objects that ``fn``'s code names.

    They are baked into the program (as ``jax.jit`` does), so they are keyed by identity:
    a name rebound to a new array or object gives a new program. Functions of the same
    module are followed, so that a global they read is watched as well.
    """
    namespace = fn.__globals__
    parts: list = [ById(namespace)]
    for name in info.names:
        if name in info.stored_globals or name not in namespace:
            continue
        value = namespace[name]
        if isinstance(value, types.ModuleType):
            continue
        if isinstance(value, types.FunctionType) and value.__globals__ is namespace:
            parts.append((name, _function_fingerprint(value, depth + 1, walk)))
        elif isinstance(value, _SIMPLE):
            parts.append((name, static_key(value)))
        else:
            parts.append((name, ById(value)))
    return tuple(parts)


def _function_fingerprint(fn: types.FunctionType, depth: int, walk: _Walk) -> Any:
    """A static key for a module-level function that ``f`` calls (nothing made dynamic)."""
    if id(fn) in walk.memo:
        return walk.memo[id(fn)]
    if depth > _MAX_DEPTH or id(fn) in walk.active or walk.budget <= 0:
        return ById(fn)
    walk.budget -= 1
    walk.active.add(id(fn))
    try:
        info = _code_info(fn.__code__)
        cells = []
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            try:
                content = cell.cell_contents
            except ValueError:
                cells.append("empty")
                continue
            cells.append(ById(cell) if name in info.stored_freevars else _baked_key(content))
        key = (
            fn.__code__,
            tuple(cells),
            _baked_key(fn.__defaults__),
            _baked_key(fn.__kwdefaults__),
            _globals_key(fn, info, depth, walk),
        )
    finally:
        walk.active.discard(id(fn))
    walk.memo[id(fn)] = key
    return key


def _baked_key(value: Any) -> Any:
    """Key for a value baked into the program: arrays and unhashables by identity."""
    if type(value) is tuple:
        return ("tuple", *tuple(_baked_key(item) for item in value))
    return static_key(value)


def _split_function(fn: types.FunctionType, depth: int, walk: _Walk) -> Split:
    if depth > _MAX_DEPTH or id(fn) in walk.active or walk.budget <= 0:
        return Split(ById(fn), [], None)
    walk.budget -= 1
    walk.active.add(id(fn))
    try:
        code = fn.__code__
        info = _code_info(code)
        cells = []  # (key, leaves, build, original cell or None)
        for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
            if name in info.stored_freevars:
                # Assigned by the function itself (a counter, a cache): state, not input.
                cells.append((("state", ById(cell)), [], None, cell))
                continue
            try:
                content = cell.cell_contents
            except ValueError:
                cells.append(("empty", [], None, cell))
                continue
            part = _split(content, depth + 1, walk)
            cells.append((part.key, part.leaves, part.build, None if part.build else cell))
        defaults = _split(fn.__defaults__, depth + 1, walk)
        kwdefaults = _split(fn.__kwdefaults__, depth + 1, walk)
        key = (
            "function",
            code,
            tuple(cell[0] for cell in cells),
            defaults.key,
            kwdefaults.key,
            _globals_key(fn, info, depth, walk),
        )
    finally:
        walk.active.discard(id(fn))
    dynamic = [leaf for cell in cells for leaf in cell[1]] + defaults.leaves + kwdefaults.leaves
    if all(cell[2] is None for cell in cells) and not defaults.build and not kwdefaults.build:
        return Split(key, dynamic, None)

    namespace = fn.__globals__
    name = fn.__name__
    qualname = fn.__qualname__
    attributes = dict(fn.__dict__)
    cell_recipe = [(cell[2], cell[3]) for cell in cells]
    static_defaults = None if defaults.build else fn.__defaults__
    static_kwdefaults = None if kwdefaults.build else fn.__kwdefaults__

    def build(iterator: Iterator) -> Any:
        closure = tuple(
            original if make is None else types.CellType(make(iterator))
            for make, original in cell_recipe
        )
        new_defaults = defaults.build(iterator) if defaults.build else static_defaults
        new_kwdefaults = kwdefaults.build(iterator) if kwdefaults.build else static_kwdefaults
        new = types.FunctionType(code, namespace, name, new_defaults, closure or None)
        new.__kwdefaults__ = new_kwdefaults
        new.__qualname__ = qualname
        new.__dict__.update(attributes)
        return new

    return Split(key, dynamic, build)
