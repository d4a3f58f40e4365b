"""The cache of compiled programs, and apart from it what was learnt about functions.

Programs are keyed on everything they depend on (see ``_engine.py``): what is computed
and its options, the devices and JAX settings, the structure, shapes and dtypes of ``x``,
and the description of the function and its ``args`` (``_capture.py``: a static part
compared by value, and the shapes and dtypes of the array leaves that are inputs of the
program). At most ``_MAX_ENTRIES`` programs are kept, least recently used first out.

Separately, two small records of what was learnt about functions: the kinds that need
their captured arrays baked in (they take concrete values of them), so that later calls
go straight there; and the entries of containers that functions write while traced (call
counters), which are their state rather than their inputs.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

from ._shortcut import NoMatch

_MAX_ENTRIES = 64
_MAX_FLAGS = 1024
_programs: collections.OrderedDict = collections.OrderedDict()
_baking: collections.OrderedDict = collections.OrderedDict()
# (id(container), entry) -> container: entries a function writes itself (kept alive so
# that the id is not reused while it is listed).
_state: collections.OrderedDict = collections.OrderedDict()
_lock = threading.Lock()
_stats = {"hits": 0, "misses": 0}
# setting -> [(matcher, program, key)], newest first: see ``_shortcut.py``. Only programs
# that are in ``_programs`` (under ``key``) are listed.
_shortcuts: dict = {}
_MAX_SHORTCUTS = 8


def lookup(key: Any) -> Any:
    """The program stored under ``key``, or ``None`` (also for keys that cannot be
    hashed or compared: such calls are never cached)."""
    with _lock:
        try:
            program = _programs[key]
        except Exception:  # KeyError, or a key that cannot be hashed or compared
            _stats["misses"] += 1
            return None
        _programs.move_to_end(key)
        _stats["hits"] += 1
        return program


def store(key: Any, program: Any) -> bool:
    """Keep ``program`` under ``key``, forgetting the least recently used beyond the limit.

    Returns whether it was kept (not for a key that cannot be hashed)."""
    with _lock:
        try:
            _programs[key] = program
        except Exception:
            return False
        _programs.move_to_end(key)
        evicted = []
        while len(_programs) > _MAX_ENTRIES:
            evicted.append(_programs.popitem(last=False)[1])
        if evicted:
            _forget_shortcuts(evicted)
    return True


def _forget_shortcuts(programs: list) -> None:
    for setting in list(_shortcuts):
        kept = [entry for entry in _shortcuts[setting] if all(entry[1] is not p for p in programs)]
        if kept:
            _shortcuts[setting] = kept
        else:
            del _shortcuts[setting]


def shortcut(setting: Any, value: Any, count: bool = True) -> tuple | None:
    """``(program, leaves)`` of a stored program whose matcher accepts ``value`` (see
    ``_shortcut.py``), or ``None``. ``count=False`` leaves the statistics and the order
    of use alone (a guess that the ordinary lookup confirms)."""
    candidates = _shortcuts.get(setting)
    if not candidates:
        return None
    for matcher, program, key in candidates:
        leaves: list = []
        try:
            matcher(value, leaves)
        except NoMatch:
            continue
        if not count:
            return program, tuple(leaves)
        with _lock:
            _stats["hits"] += 1
            if key in _programs:  # most recently used, as a lookup would make it
                _programs.move_to_end(key)
        return program, tuple(leaves)
    return None


def store_shortcut(setting: Any, matcher: Any, program: Any, key: Any) -> None:
    """List ``matcher`` for ``program`` (stored in the cache under ``key``) under
    ``setting``."""
    with _lock:
        try:
            listed = _shortcuts.setdefault(setting, [])
        except Exception:  # a setting that cannot be hashed
            return
        listed.insert(0, (matcher, program, key))
        del listed[_MAX_SHORTCUTS:]


def needs_baking(key: Any) -> bool:
    """Whether functions of this kind were found to need their arrays baked in."""
    if not _baking:  # the usual case: no hashing of the key
        return False
    with _lock:
        try:
            return key in _baking
        except Exception:
            return False


def remember_baking(key: Any) -> None:
    """Record that functions of this kind need their arrays baked in."""
    with _lock:
        try:
            _baking[key] = True
        except Exception:
            return
        while len(_baking) > _MAX_FLAGS:
            _baking.popitem(last=False)


def state_entries() -> collections.OrderedDict:
    """The ``(id(container), entry)`` pairs known to be written by functions themselves."""
    return _state


def remember_state(changed: list) -> None:
    """Record ``(container, entry)`` pairs that a function changed while traced."""
    with _lock:
        for container, entry in changed:
            _state[(id(container), entry)] = container
        while len(_state) > _MAX_FLAGS:
            _state.popitem(last=False)


def clear_cache() -> None:
    """Forget every compiled program of ``zdx_batching``.

    The next call of :func:`hessian`, :func:`jacobian`, :func:`fisher`,
    :func:`hessian_diagonal` or :func:`hvp` traces and compiles again. Useful to free
    the memory the programs hold.

    Examples
    --------
    >>> import zdx_batching
    >>> zdx_batching.clear_cache()
    """
    with _lock:
        _programs.clear()
        _shortcuts.clear()
        _baking.clear()
        _state.clear()
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
            "entries": len(_programs),
            "max_entries": _MAX_ENTRIES,
            "hits": _stats["hits"],
            "misses": _stats["misses"],
        }
