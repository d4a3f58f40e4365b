"""The cache of compiled programs, so that a repeated call neither traces nor compiles.

An entry is keyed on everything a compiled program depends on:

* what is computed (``"hessian"``, ``"fisher"``...) and the options (``checkpoint``,
  ``nbatches`` or ``max_memory``, ``progress``, the devices);
* the structure, shapes and dtypes of ``x``;
* the static description of ``f`` (see ``_closure.py``: its code, the Python values it
  captures, the identity of module-level objects it uses) and the shapes and dtypes of the
  arrays it captures, which are passed to the program as arguments;
* the JAX settings that change how a function traces (``jax_enable_x64``...).

Entries are kept in least-recently-used order, at most ``_MAX_ENTRIES`` of them.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any

_MAX_ENTRIES = 64
_entries: collections.OrderedDict = collections.OrderedDict()
_lock = threading.Lock()
_stats = {"hits": 0, "misses": 0}


def lookup(key: Any) -> Any:
    """Return the entry stored under ``key``, or ``None``."""
    with _lock:
        try:
            entry = _entries[key]
        except (KeyError, TypeError):
            _stats["misses"] += 1
            return None
        _entries.move_to_end(key)
        _stats["hits"] += 1
        return entry


def contains(key: Any) -> bool:
    """Whether ``key`` is stored (not counted as a hit or a miss)."""
    with _lock:
        try:
            return key in _entries
        except TypeError:
            return False


def store(key: Any, entry: Any) -> None:
    """Keep ``entry`` under ``key``, forgetting the least recently used beyond the limit."""
    with _lock:
        _entries[key] = entry
        _entries.move_to_end(key)
        while len(_entries) > _MAX_ENTRIES:
            _entries.popitem(last=False)


def get_or_create(key: Any, create: Callable[[], Any]) -> Any:
    """Return the entry under ``key``, creating and storing it on a miss."""
    entry = lookup(key)
    if entry is None:
        entry = create()
        store(key, entry)
    return entry


def clear_cache() -> None:
    """Forget every compiled program of ``zdx_batching``.

    The next call of :func:`hessian`, :func:`jacobian`, :func:`fisher`,
    :func:`hessian_diagonal` or :func:`hvp` traces and compiles again. Useful to free the
    memory the programs hold, or after changing an object that a function captures in
    place (compiled programs hold the values they were traced with, as ``jax.jit`` does).

    Examples
    --------
    >>> import zdx_batching
    >>> zdx_batching.clear_cache()
    """
    with _lock:
        _entries.clear()
        _stats["hits"] = 0
        _stats["misses"] = 0


def cache_info() -> dict:
    """How many programs are cached, and the hits and misses since the last clear.

    Returns
    -------
    A dict with keys ``"entries"``, ``"max_entries"``, ``"hits"`` and ``"misses"``.

    Examples
    --------
    >>> import zdx_batching
    >>> sorted(zdx_batching.cache_info())
    ['entries', 'hits', 'max_entries', 'misses']
    """
    with _lock:
        return {
            "entries": len(_entries),
            "max_entries": _MAX_ENTRIES,
            "hits": _stats["hits"],
            "misses": _stats["misses"],
        }
