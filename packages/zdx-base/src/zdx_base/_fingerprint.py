"""A fingerprint of a model: a SHA-256 digest that is the same in every process.

Python's own ``hash`` and ``repr`` change between processes (object addresses, string
hashing), so the digest is built from a walk over the object: arrays by dtype, shape and
bytes; numbers, strings and bytes by value; containers item by item; functions by their
code (bytecode, constants, names), defaults and the contents of their closure cells;
``functools.partial`` by its function and arguments; bound methods by their function and
``self``; other objects (equinox modules, numpyro distributions) by their type and their
attributes. An object met again (shared, or in a cycle) is written as a reference to its
first visit, so the walk is linear in the objects reachable. Globals that a function reads
are not part of it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import types
from typing import Any

import jax
import numpy as onp

_MAX_DEPTH = 64


def fingerprint(*objects: Any) -> str:
    """A SHA-256 hex digest of ``objects`` that is equal in every process for equal objects.

    Two functions of the same code with equal defaults and closure contents (arrays
    compared by their bytes) have the same fingerprint; a change in any array they
    capture, in their code or in a setting changes it. Used by :class:`Checkpoint` to
    refuse a checkpoint written for another model.

    Returns
    -------
    str
        64 hexadecimal digits.

    Examples
    --------
    >>> import jax.numpy as jnp, zdx_base
    >>> data = jnp.arange(3.0)
    >>> same = zdx_base.fingerprint(lambda p: p - data) == zdx_base.fingerprint(lambda p: p - data)
    >>> other = zdx_base.fingerprint(lambda p: p - data) == zdx_base.fingerprint(lambda p: p + data)
    >>> same, other
    (True, False)
    """
    digest = hashlib.sha256()
    _Walk(digest).visit(objects, 0)
    return digest.hexdigest()


class _Walk:
    def __init__(self, digest: Any):
        self.digest = digest
        self.seen: dict[int, int] = {}
        self.keep: list = []

    def put(self, *parts: Any) -> None:
        for part in parts:
            data = part if isinstance(part, bytes) else str(part).encode()
            self.digest.update(len(data).to_bytes(8, "little"))
            self.digest.update(data)

    def visit(self, obj: Any, depth: int) -> None:
        if depth > _MAX_DEPTH:
            self.put("deep")
            return
        if obj is None or isinstance(obj, (bool, int, float, complex, str)):
            self.put(type(obj).__name__, repr(obj))
            return
        if isinstance(obj, bytes):
            self.put("bytes", obj)
            return
        if isinstance(obj, (jax.Array, onp.ndarray, onp.generic)):
            if isinstance(obj, jax.Array) and jax.dtypes.issubdtype(obj.dtype, jax.dtypes.prng_key):
                obj = jax.random.key_data(obj)
            array = onp.asarray(obj)
            self.put("array", array.dtype.str, array.shape, onp.ascontiguousarray(array).tobytes())
            return
        if isinstance(obj, jax.ShapeDtypeStruct):
            self.put("shape", obj.dtype, obj.shape)
            return
        if id(obj) in self.seen:  # shared or cyclic: a reference to its first visit
            self.put("seen", self.seen[id(obj)])
            return
        self.seen[id(obj)] = len(self.seen)
        self.keep.append(obj)  # so that no id is reused during the walk
        self._visit_container(obj, depth + 1)

    def _visit_container(self, obj: Any, depth: int) -> None:
        kind = type(obj)
        self.put("type", kind.__module__, kind.__qualname__)
        if isinstance(obj, (list, tuple)):
            self.put(len(obj))
            for item in obj:
                self.visit(item, depth)
        elif isinstance(obj, dict):
            items = sorted(obj.items(), key=lambda item: repr(item[0]))
            self.put(len(items))
            for key, value in items:
                self.visit(key, depth)
                self.visit(value, depth)
        elif isinstance(obj, (set, frozenset)):
            self.put(sorted(repr(item) for item in obj))
        elif isinstance(obj, functools.partial):
            self.visit((obj.func, obj.args, obj.keywords), depth)
        elif isinstance(obj, types.MethodType):
            self.visit((obj.__func__, obj.__self__), depth)
        elif isinstance(obj, types.FunctionType):
            self._visit_code(obj.__code__, depth)
            cells = tuple(_cell_contents(cell) for cell in obj.__closure__ or ())
            self.visit((obj.__defaults__, obj.__kwdefaults__, cells), depth)
        elif isinstance(obj, types.CodeType):
            self._visit_code(obj, depth)
        elif isinstance(obj, (type, types.ModuleType, types.BuiltinFunctionType)):
            self.put(getattr(obj, "__module__", ""), getattr(obj, "__qualname__", obj.__name__))
        elif dataclasses.is_dataclass(obj):
            for field in dataclasses.fields(obj):
                self.put(field.name)
                self.visit(getattr(obj, field.name, None), depth)
        elif hasattr(obj, "__dict__"):
            attributes = vars(obj)
            for name in sorted(attributes):
                self.put(name)
                self.visit(attributes[name], depth)
        elif hasattr(obj, "__slots__"):
            for name in obj.__slots__:
                self.put(name)
                self.visit(getattr(obj, name, None), depth)
        else:
            self.put("opaque")

    def _visit_code(self, code: types.CodeType, depth: int) -> None:
        self.put("code", code.co_name, code.co_code, code.co_names, code.co_varnames)
        for constant in code.co_consts:
            if isinstance(constant, types.CodeType):
                self._visit_code(constant, depth + 1)
            else:
                self.visit(constant, depth + 1)


def _cell_contents(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a cell not filled yet
        return "<empty cell>"
