"""The family's rule for reusing a compiled program: a callable seen as a pytree.

:func:`capture` turns a function (with what it reads) into a :class:`Captured` pytree:

- its **leaves** are the arrays it captures (numpy and JAX arrays found in closure cells,
  default arguments, ``functools.partial`` arguments, a bound pytree ``self``, and the
  leaves of pytrees among them): they become inputs of a compiled program, read afresh
  at every call;
- its **tree definition** holds everything else, compared by equality: code objects
  (by identity), numbers and strings (by type and value), the structure of containers
  and pytrees, and the module-level names the code reads (by identity, following
  :func:`jax.jit`'s rule: rebinding a name is seen, changing an object in place is not).

Two callables with equal tree definitions compute the same function of their leaves, so
``jax.jit`` (or ``equinox.filter_jit``) given a :class:`Captured` reuses its program for
a new ``lambda`` of the same code and equal captures, and traces again for anything
else. What the rule cannot prove unchanged (a plain object, whose state lives in its
``__dict__``, a class, an object array, a function that reaches itself, nesting deeper
than :data:`MAX_DEPTH`) makes the capture *not reusable*: callers then trace afresh.
"""

from __future__ import annotations

import collections.abc
import functools
import types
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

MAX_DEPTH = 64  # containers and functions nested deeper than this are not described
GLOBAL_DEPTH = 3  # module-level functions followed through the names they read
_ATOMS = (bool, int, float, complex, str, bytes, type(None), type(Ellipsis), np.generic)
_BY_IDENTITY = (
    types.BuiltinFunctionType,
    types.ModuleType,
    np.ufunc,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
)


class _Opaque(Exception):
    """Raised while describing something whose state cannot be compared by equality."""


class Identity:
    """An object compared by identity (kept alive by the key that holds it)."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and other.value is self.value

    def __hash__(self) -> int:
        return id(self.value)

    def __repr__(self) -> str:
        return f"Identity({type(self.value).__name__} at {id(self.value):#x})"


class _Key:
    """A description's hashable part: a nested tuple with its hash computed once (JAX
    hashes a tree definition at every call of a compiled function)."""

    __slots__ = ("_hash", "parts")

    def __init__(self, parts: tuple):
        self.parts = parts
        self._hash = hash(parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and self._hash == other._hash and self.parts == other.parts

    def __hash__(self) -> int:
        return self._hash


class _Walk:
    """One description in progress: the arrays found, in order, and the functions being
    described (a function reaching itself cannot be described)."""

    def __init__(self, bake: bool = False) -> None:
        self.leaves: list = []
        self.active: set = set()
        self.bake = bake

    def describe(self, value: Any, depth: int) -> tuple[Any, Callable]:
        """``value``'s key and a function rebuilding it from an iterator of leaves."""
        if depth > MAX_DEPTH:
            raise _Opaque(f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(value, (jax.Array, np.ndarray)):
            if isinstance(value, np.ndarray) and value.dtype.hasobject:
                raise _Opaque("an array of Python objects")
            if self.bake:
                return _contents(value), _constant(value)
            self.leaves.append(value)
            return "array", _next
        if isinstance(value, _ATOMS):
            return (type(value), _exactly(value)), _constant(value)
        if isinstance(value, types.FunctionType):
            return self._function(value, depth)
        if isinstance(value, functools.partial):
            return self._partial(value, depth)
        if isinstance(value, types.MethodType):
            return self._method(value, depth)
        if isinstance(value, _BY_IDENTITY) or _wrapped_by_jax(value):
            return Identity(value), _constant(value)
        return self._pytree(value, depth)

    def _pytree(self, value: Any, depth: int) -> tuple[Any, Callable]:
        if isinstance(value, type):
            raise _Opaque(f"the class {value.__name__} (its attributes are not compared)")
        if isinstance(value, collections.abc.Iterator):
            raise _Opaque(f"an iterator ({type(value).__name__}): reading it changes it")
        try:
            children, treedef = jax.tree_util.tree_flatten(value)
            hash(treedef)
        except (TypeError, ValueError, RecursionError) as error:
            raise _Opaque(f"{type(value).__name__}: {error}") from None
        if treedef.num_nodes == 1 and treedef.num_leaves == 1:  # not a pytree container
            raise _Opaque(f"an object of type {type(value).__name__}")
        parts = [self.describe(child, depth + 1) for child in children]

        def rebuild(leaves):
            return jax.tree_util.tree_unflatten(treedef, [build(leaves) for _, build in parts])

        return ("pytree", treedef, tuple(key for key, _ in parts)), rebuild

    def _function(self, fn: types.FunctionType, depth: int) -> tuple[Any, Callable]:
        if id(fn) in self.active:
            raise _Opaque(f"function {fn.__qualname__} reaches itself")
        self.active.add(id(fn))
        try:
            start = len(self.leaves)
            cells = [self._cell(cell, depth + 1) for cell in fn.__closure__ or ()]
            defaults = self.describe(fn.__defaults__, depth + 1)
            kwdefaults = self.describe(fn.__kwdefaults__, depth + 1)
        finally:
            self.active.discard(id(fn))
        key = (
            "function",
            Identity(fn.__code__),
            Identity(fn.__globals__),
            globals_read(fn),
            tuple(cell_key for cell_key, _ in cells),
            defaults[0],
            kwdefaults[0],
        )
        if len(self.leaves) == start:  # no arrays: the very function (nonlocal still works)
            return key, _constant(fn)

        def rebuild(leaves):
            closure = tuple(types.CellType(build(leaves)) for _, build in cells)
            new = types.FunctionType(
                fn.__code__, fn.__globals__, fn.__name__, defaults[1](leaves), closure or None
            )
            new.__kwdefaults__ = kwdefaults[1](leaves)
            new.__qualname__ = fn.__qualname__
            new.__dict__.update(fn.__dict__)
            return new

        return key, rebuild

    def _cell(self, cell: types.CellType, depth: int) -> tuple[Any, Callable]:
        try:
            contents = cell.cell_contents
        except ValueError:  # a cell not yet assigned
            raise _Opaque("a closure cell that is not yet assigned") from None
        return self.describe(contents, depth)

    def _partial(self, value: functools.partial, depth: int) -> tuple[Any, Callable]:
        func = self.describe(value.func, depth + 1)
        arguments = self.describe(value.args, depth + 1)
        keywords = self.describe(value.keywords, depth + 1)

        def rebuild(leaves):
            return functools.partial(func[1](leaves), *arguments[1](leaves), **keywords[1](leaves))

        return ("partial", func[0], arguments[0], keywords[0]), rebuild

    def _method(self, value: types.MethodType, depth: int) -> tuple[Any, Callable]:
        if isinstance(value.__self__, type):
            raise _Opaque(f"a method bound to the class {value.__self__.__name__}")
        func = self.describe(value.__func__, depth + 1)
        owner = self._pytree(value.__self__, depth + 1)

        def rebuild(leaves):
            return types.MethodType(func[1](leaves), owner[1](leaves))

        return ("method", func[0], owner[0]), rebuild


def _exactly(value: Any) -> Any:
    """What an atom is compared by: its value, with floats by their bits (``0.0 == -0.0``
    in Python, but a program baked with one is not the program of the other)."""
    if isinstance(value, float):
        return value.hex()
    if isinstance(value, complex):
        return (value.real.hex(), value.imag.hex())
    if isinstance(value, np.generic):
        return (value.dtype.str, value.tobytes())
    return value


def _contents(array: Any) -> tuple:
    """A baked array's key: its shape, dtype and every byte (compared exactly)."""
    if isinstance(array, jax.core.Tracer):
        raise _Opaque("an array of an outer trace cannot be baked into a program")
    values = np.asarray(array)
    return ("baked", values.shape, values.dtype.str, values.tobytes())


def _next(leaves):
    return next(leaves)


def _constant(value: Any) -> Callable:
    return lambda leaves: value


def _wrapped_by_jax(value: Any) -> bool:
    """Functions wrapped by JAX itself (``jax.jit``, ``custom_jvp``...): taken by identity,
    as ``jax.jit`` takes them."""
    module = type(value).__module__ or ""
    return callable(value) and module.split(".")[0] in ("jax", "jaxlib")


@functools.lru_cache(maxsize=4096)
def _names_of(code: types.CodeType) -> tuple:
    """The names a code object (and the code nested in it) may read from its module."""
    names = list(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names.extend(_names_of(constant))
    return tuple(dict.fromkeys(names))


def globals_read(fn: types.FunctionType) -> tuple:
    """``(name, Identity(value))`` for the module-level names ``fn``'s code may read, and
    those of the module-level functions of the same module it names, up to
    :data:`GLOBAL_DEPTH` levels."""
    found: dict = {}
    pending = [(fn, 0)]
    seen = {id(fn)}
    while pending:
        current, level = pending.pop()
        namespace = current.__globals__
        for name in _names_of(current.__code__):
            if name not in namespace:
                continue
            value = namespace[name]
            found[(id(namespace), name)] = (name, Identity(value))
            if (
                level < GLOBAL_DEPTH
                and isinstance(value, types.FunctionType)
                and id(value) not in seen
            ):
                seen.add(id(value))
                pending.append((value, level + 1))
    return tuple(found.values())


class _Rebuild:
    """How a description rebuilds its callable from leaves; compared through its key
    only. It is the tree definition's data of a :class:`Captured`."""

    __slots__ = ("build", "key")

    def __init__(self, build: Callable, key: _Key):
        self.build = build
        self.key = key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Rebuild) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)


@jax.tree_util.register_pytree_node_class
class Captured:
    """A callable as a pytree: the arrays it captures are its leaves, everything else its
    tree definition (see the module's docstring). Calling it calls the callable.

    ``reusable`` is False when the rule could not describe the callable (``reason`` says
    why): such a capture has no leaves and a tree definition equal to no other, so a
    cache keyed by it never hits; callers should trace afresh rather than fill a cache.
    """

    __slots__ = ("_rebuild", "function", "leaves", "reason")

    def __init__(self, function: Any, leaves: tuple, rebuild: _Rebuild, reason: str | None = None):
        self.function = function
        self.leaves = leaves
        self._rebuild = rebuild
        self.reason = reason

    @classmethod
    def unique(cls, function: Any, reason: str) -> Captured:
        """``function`` with no leaves and a tree definition equal to no other."""
        key = _Key(("not reusable", Identity(object())))
        return cls(function, (), _Rebuild(_constant(function), key), reason)

    @property
    def reusable(self) -> bool:
        return self.reason is None

    @property
    def key(self) -> Any:
        """What two captures are compared by (hashable)."""
        return self._rebuild.key

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def tree_flatten(self) -> tuple[tuple, _Rebuild]:
        return self.leaves, self._rebuild

    @classmethod
    def tree_unflatten(cls, rebuild: _Rebuild, leaves: Any) -> Captured:
        leaves = tuple(leaves)
        return cls(rebuild.build(iter(leaves)), leaves, rebuild)

    def __repr__(self) -> str:
        state = "reusable" if self.reusable else f"not reusable: {self.reason}"
        return f"Captured({self.function!r}, {len(self.leaves)} arrays, {state})"


def capture(function: Any, bake: bool = False) -> Captured:
    """``function`` as a :class:`Captured` pytree, under the family's rule for reuse.

    ``bake=True`` keeps the captured arrays in the tree definition instead, compared by
    their every byte: for functions that need their concrete values
    (``np.asarray(data)``, boolean-mask indexing), which an input of a program lacks.

    Returns
    -------
    A :class:`Captured` that calls ``function``. When the rule cannot describe what
    ``function`` reads, ``reusable`` is False, ``reason`` says why, and it has no leaves.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> data = jnp.array([1.0, 2.0])
    >>> first = capture(lambda p: jnp.sum((p - data) ** 2))
    >>> second = capture(lambda p: jnp.sum((p - data) ** 2))
    >>> first.leaves == (data,) and first.key == second.key
    True
    """
    walk = _Walk(bake)
    try:
        parts, build = walk.describe(function, 0)
    except _Opaque as reason:
        return Captured.unique(function, str(reason))
    return Captured(function, tuple(walk.leaves), _Rebuild(build, _Key(parts)))
