"""A repeated call dispatched before it is checked, kept only if the check agrees.

Between two calls of a compiled program XLA's worker threads fall asleep, and every
microsecond a call spends in Python before its program starts delays it further: on a
Hessian of 70 µs, 10 µs of checks cost about twice that. So a call like the last one
served by the shortcut (``_shortcut.py``) starts at once: the same kind of result, the
same options, a point ``x`` of the same structure, shapes and dtypes, and a function
that a stored matcher accepts. The call is then checked the ordinary way while the
program runs (``make_request``, then the engine's own lookup), and the early result is
returned only when that lookup chose the very same program with the very same arrays.
Otherwise it is dropped and the call goes on the ordinary way: starting early may cost
time, never a different number, and every error is raised as before.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from . import _cache

# type(columns) -> (options, treedef, leaf signatures, setting): the last call of that
# kind that the shortcut served, on one device.
_records: dict = {}


class _Record(NamedTuple):
    options: tuple
    treedef: Any
    signature: tuple
    setting: Any


def _signature(leaves: list) -> tuple | None:
    """What a compiled program depends on of ``x``'s leaves: their exact types, shapes,
    dtypes and weak types (``None`` for a Python number among them)."""
    try:
        return tuple(
            (type(leaf), leaf.shape, leaf.dtype, getattr(leaf, "weak_type", False))
            for leaf in leaves
        )
    except AttributeError:
        return None


_SIMPLE_TYPES = frozenset({type(None), bool, int, float, str})


def _simple(options: tuple) -> bool:
    """Whether every option is a plain Python value (compared safely with ``!=``)."""
    return all(type(option) in _SIMPLE_TYPES for option in options)


class Attempt:
    """One call's early start: :attr:`result` is ``None`` when nothing was started."""

    def __init__(self, columns: Any, f: Any, x: Any, args: Any, options: tuple):
        self._kind = type(columns)
        self._options = options
        self.program: Any = None
        self.inputs: tuple = ()
        self.result: jax.Array | None = None
        record = _records.get(self._kind)
        if record is None or not _simple(options) or record.options != options:
            return
        leaves, treedef = jax.tree_util.tree_flatten(x)
        if treedef != record.treedef or _signature(leaves) != record.signature:
            return
        found = _cache.shortcut(record.setting, (f, args), count=False)
        if found is None:
            return
        self.program, captured = found
        self.inputs = (tuple(leaves), captured, None)
        self.result = self.program.start(self.inputs)

    def agrees(self, program: Any, inputs: tuple) -> bool:
        """Whether the ordinary lookup chose this attempt's program and arrays."""
        if self.result is None or program is not self.program:
            return False
        return (
            all(
                len(mine) == len(theirs) and all(a is b for a, b in zip(mine, theirs))
                for mine, theirs in zip(self.inputs[:2], inputs[:2])
            )
            and inputs[2] is None
        )

    def remember(self, request: Any, setting: Any) -> None:
        """The shortcut served this call on one device: the next call like it may start
        early."""
        signature = _signature(list(request.x_leaves))
        if signature is None or request.progress or not _simple(self._options):
            return
        _records[self._kind] = _Record(self._options, request.layout.treedef, signature, setting)
