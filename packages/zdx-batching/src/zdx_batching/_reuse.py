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
_ATOM_TYPES = frozenset({bool, int, float, complex, str, bytes, type(None), type(Ellipsis)})
_ARRAY_TYPES = frozenset({np.ndarray, type(jax.numpy.zeros(()))})
_BY_IDENTITY = (types.BuiltinFunctionType, types.ModuleType, np.ufunc, types.MethodWrapperType)


class _Opaque(Exception):
    """Raised while describing something whose state cannot be compared by equality."""


class _Walk:
    """One description in progress: the arrays found in order, the objects named in the
    key by their ``id`` (kept alive with the key, so an equal id is the same object), and
    the functions being described (one that reaches itself cannot be described)."""

    def __init__(self, bake: bool) -> None:
        self.leaves: list = []
        self.named: list = []
        self.active: set = set()
        self.bake = bake

    def identity(self, value: Any) -> int:
        self.named.append(value)
        return id(value)

    def describe(self, value: Any, depth: int) -> tuple[Any, Callable]:
        """``value``'s key and a function rebuilding it from an iterator of leaves."""
        kind = type(value)
        if kind is Captured and not value.reusable:  # a capture made elsewhere
            raise _Opaque(value.reason)
        if kind in _ATOM_TYPES:  # the common types first, by exact type: calls are hot
            return (kind, value.hex() if kind is float else value), _constant(value)
        if kind in _ARRAY_TYPES:
            return self._array(value)
        if depth > MAX_DEPTH:
            raise _Opaque(f"nesting deeper than {MAX_DEPTH} levels")
        start = len(self.leaves)
        if kind is tuple or kind is list:
            parts = [self.describe(item, depth + 1) for item in value]
            key = (kind, *(key for key, _ in parts))
            builds = [build for _, build in parts]
            rebuild = lambda leaves: kind(build(leaves) for build in builds)  # noqa: E731
        elif kind is dict:
            key, rebuild = self._dict(value, depth + 1)
        elif kind is types.FunctionType:
            key, rebuild = self._function(value, depth + 1)
        elif isinstance(value, (jax.Array, np.ndarray)):
            return self._array(value)
        elif isinstance(value, _ATOMS):
            return (kind, _exactly(value)), _constant(value)
        elif isinstance(value, _BY_IDENTITY) or _wrapped_by_jax(value):
            return ("id", self.identity(value)), _constant(value)
        elif kind is functools.partial:
            key, rebuild = self._partial(value, depth + 1)
        elif kind is types.MethodType and not isinstance(value.__self__, type):
            func, owner = (
                self.describe(value.__func__, depth + 1),
                self._pytree(value.__self__, depth + 1),
            )
            key = ("method", func[0], owner[0])
            rebuild = lambda leaves: types.MethodType(func[1](leaves), owner[1](leaves))  # noqa: E731
        else:
            key, rebuild = self._pytree(value, depth + 1)
        if len(self.leaves) == start:  # no arrays inside: the very object (mutations reach it)
            return key, _constant(value)
        return key, rebuild

    def _array(self, value: Any) -> tuple[Any, Callable]:
        if isinstance(value, np.ndarray) and value.dtype.hasobject:
            raise _Opaque("an array of Python objects")
        if self.bake:
            return _contents(value), _constant(value)
        self.leaves.append(value)
        return "array", next

    def _dict(self, value: dict, depth: int) -> tuple[Any, Callable]:
        try:
            names = sorted(value)  # the order jax.tree_util flattens a dict in
        except TypeError:
            raise _Opaque("a dict whose keys cannot be sorted") from None
        parts = [self.describe(value[name], depth) for name in names]

        def rebuild(leaves):
            return {name: build(leaves) for name, (_, build) in zip(names, parts)}

        return (dict, tuple(names), tuple(key for key, _ in parts)), rebuild

    def _partial(self, value: functools.partial, depth: int) -> tuple[Any, Callable]:
        parts = [self.describe(part, depth) for part in (value.func, value.args, value.keywords)]

        def rebuild(leaves):
            func, arguments, keywords = (build(leaves) for _, build in parts)
            return functools.partial(func, *arguments, **keywords)

        return ("partial", *(key for key, _ in parts)), rebuild

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
            if fn.__defaults__ is None and fn.__kwdefaults__ is None:
                defaults = (None, _constant((None, None)))
            else:
                defaults = self.describe((fn.__defaults__, fn.__kwdefaults__), depth)
        finally:
            self.active.discard(id(fn))
        code = (self.identity(fn.__code__), self.identity(fn.__globals__))
        globals_key = globals_read(fn, self.identity)
        key = ("function", *code, globals_key, tuple(cell[0] for cell in cells), defaults[0])

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


_NAMES: dict = {}  # id(code) -> (code, names): what each code object may read
_MAX_NAMES = 4096


def _names_of(code: types.CodeType) -> tuple:
    """The names a code object (and the code nested in it) may read from its module."""
    known = _NAMES.get(id(code))
    if known is not None and known[0] is code:
        return known[1]
    names = list(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names.extend(_names_of(constant))
    if len(_NAMES) >= _MAX_NAMES:
        _NAMES.clear()
    _NAMES[id(code)] = (code, tuple(dict.fromkeys(names)))
    return _NAMES[id(code)][1]


def globals_read(fn: types.FunctionType, identity: Callable[[Any], int] = id) -> tuple:
    """``(name, identity(value))`` for the module-level names ``fn``'s code may read, and
    those of the module-level functions it names, up to :data:`GLOBAL_DEPTH` levels."""
    found = []
    pending, seen = [(fn, 0)], {id(fn)}
    while pending:
        current, level = pending.pop()
        namespace = current.__globals__
        for name in _names_of(current.__code__):
            value = namespace.get(name, _MISSING)
            if value is _MISSING:
                continue
            found.append((name, identity(value)))
            if level < GLOBAL_DEPTH and type(value) is types.FunctionType:
                if id(value) not in seen:
                    seen.add(id(value))
                    pending.append((value, level + 1))
    return tuple(found)


_MISSING = object()


class _Definition:
    """A capture's tree definition: its key (nested tuples of numbers, strings, types and
    tree definitions, compared in C; objects by their ``id``, kept alive in ``named``),
    hashed once, and how to rebuild the callable from leaves."""

    __slots__ = ("_hash", "build", "key", "named")

    def __init__(self, key: Any, build: Callable, named: tuple = ()):
        self.key, self.build, self.named, self._hash = key, build, named, hash(key)

    def __eq__(self, other: object) -> bool:
        if other is self:
            return True
        if not isinstance(other, _Definition) or self._hash != other._hash:
            return False
        return self.key == other.key

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
        token = object()
        return cls(function, (), _Definition(id(token), _constant(function), (token,)), reason)

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
    return Captured(function, tuple(walk.leaves), _Definition(key, build, tuple(walk.named)))


# Raised while tracing when a function needs the concrete value of an array it captures
# (``np.asarray(data)``, boolean-mask indexing): capture it again with ``bake=True``.
NEEDS_VALUES = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerIntegerConversionError,
    jax.errors.NonConcreteBooleanIndexError,
)


def all_reusable(tree: Any) -> bool:
    """Whether every :class:`Captured` in ``tree`` is reusable."""
    found = jax.tree_util.tree_leaves(tree, is_leaf=lambda leaf: isinstance(leaf, Captured))
    return all(leaf.reusable for leaf in found if isinstance(leaf, Captured))


class CapturedJit:
    """``jax.jit(fn, **options)`` for functions given :class:`Captured` arguments: one
    program held for every call whose captures are reusable (``jax.jit``'s cache, keyed
    by their tree definitions, finds it again), and a program of its own, traced afresh
    and dropped with the call, for a call holding a capture that is not (never stale, and
    never one more entry in the held program's cache).

    ``compiler_options`` may be a function returning the options, asked once, when the
    held program is first built (so that making one does not start JAX's backends).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> apply = CapturedJit(lambda function, x: function(x))
    >>> float(apply(capture(lambda x: jnp.sum(x**2)), jnp.ones(3)))
    3.0
    """

    def __init__(self, fn: Callable, *, compiler_options: Any = None, **options: Any):
        self.fn, self._options, self._compiler_options = fn, options, compiler_options
        self._held: Callable | None = None

    def _jit(self, fn: Callable) -> Callable:
        options = self._compiler_options
        if callable(options):
            options = self._compiler_options = options()
        return jax.jit(fn, compiler_options=options, **self._options)

    @property
    def held(self) -> Callable:
        """The program shared by every call whose captures are reusable."""
        if self._held is None:
            self._held = self._jit(self.fn)
        return self._held

    def fresh(self) -> Callable:
        """A program of its own (traced at its first call, dropped with it)."""

        @functools.wraps(self.fn)
        def traced_afresh(*args: Any, **kwargs: Any) -> Any:
            return self.fn(*args, **kwargs)

        return self._jit(traced_afresh)

    def for_inputs(self, *trees: Any) -> Callable:
        """The program for a call with the captures in ``trees``."""
        return self.held if all_reusable(trees) else self.fresh()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.for_inputs(args, kwargs)(*args, **kwargs)
