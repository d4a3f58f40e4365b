"""The family's rule for reusing a compiled program: a callable seen as a pytree.

:func:`capture` turns a callable into a :class:`Captured` pytree. Its **leaves** are the
arrays it captures (in closure cells, default arguments, ``functools.partial``
arguments, a bound pytree ``self``, and the leaves of containers and pytrees among them):
inputs of a compiled program, read afresh at every call. Its **tree definition** holds
everything else, compared by equality: code objects by identity, numbers by type and
exact value, the layout of containers and pytrees, and the module-level names the code
reads, by identity (``jax.jit``'s rule: rebinding a name is seen, changing an object in
place is not). Equal tree definitions compute the same function of the leaves, so
``jax.jit`` given a capture reuses its program for a new ``lambda`` of the same code and
equal captures. What the rule cannot compare (a plain object or a class, whose state is
a ``__dict__`` it does not walk, an iterator, an object array, a function that reaches
itself, nesting deeper than :data:`MAX_DEPTH`) makes the capture *not reusable*.
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
_BY_IDENTITY = (types.BuiltinFunctionType, types.ModuleType, np.ufunc, types.MethodWrapperType)


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


class _Walk:
    """One description in progress: the arrays found in order, and the functions being
    described (one that reaches itself cannot be described)."""

    def __init__(self, bake: bool) -> None:
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
            return "array", next
        if isinstance(value, _ATOMS):
            return (type(value), _exactly(value)), _constant(value)
        if isinstance(value, _BY_IDENTITY) or _wrapped_by_jax(value):
            return Identity(value), _constant(value)
        start = len(self.leaves)
        key, rebuild = self._composite(value, depth + 1)
        if len(self.leaves) == start:  # no arrays inside: the very object (mutations reach it)
            return key, _constant(value)
        return key, rebuild

    def _composite(self, value: Any, depth: int) -> tuple[Any, Callable]:
        if isinstance(value, types.FunctionType):
            return self._function(value, depth)
        if isinstance(value, functools.partial):
            parts = [
                self.describe(part, depth) for part in (value.func, value.args, value.keywords)
            ]
            keys, builds = zip(*parts)

            def rebuild_partial(leaves):
                func, arguments, keywords = (build(leaves) for build in builds)
                return functools.partial(func, *arguments, **keywords)

            return ("partial", *keys), rebuild_partial
        if isinstance(value, types.MethodType) and not isinstance(value.__self__, type):
            func, owner = self.describe(value.__func__, depth), self._pytree(value.__self__, depth)
            return ("method", func[0], owner[0]), lambda leaves: types.MethodType(
                func[1](leaves), owner[1](leaves)
            )
        return self._pytree(value, depth)

    def _pytree(self, value: Any, depth: int) -> tuple[Any, Callable]:
        if isinstance(value, type) or isinstance(getattr(value, "__self__", None), type):
            raise _Opaque(f"the class {getattr(value, '__name__', value)} (not compared)")
        if isinstance(value, collections.abc.Iterator):
            raise _Opaque(f"an iterator ({type(value).__name__}): reading it changes it")
        try:
            children, treedef = jax.tree_util.tree_flatten(value)
            hash(treedef)
        except (TypeError, ValueError, RecursionError) as error:
            raise _Opaque(f"{type(value).__name__}: {error}") from None
        if treedef.num_nodes == 1 and treedef.num_leaves == 1:  # a leaf, not a container
            raise _Opaque(f"an object of type {type(value).__name__}")
        parts = [self.describe(child, depth) for child in children]
        keys, builds = tuple(key for key, _ in parts), [build for _, build in parts]

        def rebuild(leaves):
            return jax.tree_util.tree_unflatten(treedef, [build(leaves) for build in builds])

        return ("pytree", treedef, keys), rebuild

    def _function(self, fn: types.FunctionType, depth: int) -> tuple[Any, Callable]:
        if id(fn) in self.active:
            raise _Opaque(f"function {fn.__qualname__} reaches itself")
        self.active.add(id(fn))
        try:
            cells = [self.describe(_contents_of(cell), depth) for cell in fn.__closure__ or ()]
            defaults = self.describe((fn.__defaults__, fn.__kwdefaults__), depth)
        finally:
            self.active.discard(id(fn))
        code = (Identity(fn.__code__), Identity(fn.__globals__), globals_read(fn))
        key = ("function", *code, tuple(cell[0] for cell in cells), defaults[0])

        def rebuild(leaves):
            closure = tuple(types.CellType(build(leaves)) for _, build in cells)
            positional, keywords = defaults[1](leaves)
            new = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, positional, closure)
            new.__kwdefaults__, new.__qualname__ = keywords, fn.__qualname__
            new.__dict__.update(fn.__dict__)
            return new

        return key, rebuild


def _contents_of(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a cell not yet assigned
        raise _Opaque("a closure cell that is not yet assigned") from None


def _exactly(value: Any) -> Any:
    """What an atom is compared by: its value, floats by their bits (``0.0 == -0.0`` in
    Python, but a program baked with one is not the program of the other)."""
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


def _constant(value: Any) -> Callable:
    return lambda leaves: value


def _wrapped_by_jax(value: Any) -> bool:
    """Functions wrapped by JAX itself (``jax.jit``, ``custom_jvp``...): by identity, as
    ``jax.jit`` takes them."""
    return callable(value) and (type(value).__module__ or "").split(".")[0] in ("jax", "jaxlib")


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
    those of the module-level functions it names, up to :data:`GLOBAL_DEPTH` levels."""
    found: dict = {}
    pending, seen = [(fn, 0)], {id(fn)}
    while pending:
        current, level = pending.pop()
        namespace = current.__globals__
        for name in _names_of(current.__code__):
            if name in namespace:
                value = namespace[name]
                found[(id(namespace), name)] = (name, Identity(value))
                if level < GLOBAL_DEPTH and isinstance(value, types.FunctionType):
                    if id(value) not in seen:
                        seen.add(id(value))
                        pending.append((value, level + 1))
    return tuple(found.values())


class _Definition:
    """A capture's tree definition: its key (hashed once: JAX hashes a tree definition at
    every call of a compiled function) and how to rebuild the callable from leaves."""

    __slots__ = ("build", "key", "_hash")

    def __init__(self, key: Any, build: Callable):
        self.key, self.build, self._hash = key, build, hash(key)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _Definition) and self._hash == other._hash and self.key == other.key
        )

    def __hash__(self) -> int:
        return self._hash


@jax.tree_util.register_pytree_node_class
class Captured:
    """A callable as a pytree: the arrays it captures are its leaves, everything else its
    tree definition (see :func:`capture`). Calling it calls the callable.

    ``reusable`` is False when the rule could not describe the callable (``reason`` says
    why): it then has no leaves and a tree definition equal to no other, so a cache keyed
    by it never hits; trace such a callable afresh rather than fill a cache with it.
    """

    __slots__ = ("_definition", "function", "leaves", "reason")

    def __init__(self, function: Any, leaves: tuple, definition: _Definition, reason=None):
        self.function, self.leaves, self.reason = function, leaves, reason
        self._definition = definition

    @classmethod
    def unique(cls, function: Any, reason: str) -> Captured:
        """``function`` with no leaves and a tree definition equal to no other."""
        return cls(function, (), _Definition(Identity(object()), _constant(function)), reason)

    @property
    def reusable(self) -> bool:
        return self.reason is None

    @property
    def key(self) -> Any:
        """What two captures are compared by (hashable)."""
        return self._definition

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def tree_flatten(self) -> tuple[tuple, _Definition]:
        return self.leaves, self._definition

    @classmethod
    def tree_unflatten(cls, definition: _Definition, leaves: Any) -> Captured:
        leaves = tuple(leaves)
        return cls(definition.build(iter(leaves)), leaves, definition)

    def __repr__(self) -> str:
        state = "reusable" if self.reusable else f"not reusable: {self.reason}"
        return f"Captured({self.function!r}, {len(self.leaves)} arrays, {state})"


def capture(function: Any, bake: bool = False) -> Captured:
    """``function`` as a :class:`Captured` pytree, under the family's rule for reuse.

    Give the capture to ``jax.jit`` (or ``equinox.filter_jit``) as an ordinary argument:
    a new ``lambda`` of the same code and equal captures then runs the program compiled
    for the first, with its own arrays. ``bake=True`` keeps the captured arrays in the
    tree definition instead, compared by every byte: for a function that needs their
    concrete values (``np.asarray(data)``, boolean-mask indexing).

    Returns
    -------
    A :class:`Captured` that calls ``function``. When the rule cannot describe what
    ``function`` reads, ``reusable`` is False and ``reason`` says why.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> def loss_of(data):
    ...     return lambda p: jnp.sum((p - data) ** 2)
    >>> first, second = capture(loss_of(jnp.ones(2))), capture(loss_of(jnp.zeros(2)))
    >>> len(first.leaves), first.key == second.key
    (1, True)
    >>> capture(loss_of(jnp.ones(3))).key == first.key  # shapes are JAX's to compare
    True
    """
    walk = _Walk(bake)
    try:
        key, build = walk.describe(function, 0)
    except _Opaque as reason:
        return Captured.unique(function, str(reason))
    return Captured(function, tuple(walk.leaves), _Definition(key, build))
