"""Parsing parameter paths and walking them through a pytree."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping, Sequence
from typing import Any


class Path(tuple):
    """One path given as its keys, never split on dots.

    A dotted string such as ``"position.blue"`` is split into the keys ``("position",
    "blue")``. When a key itself contains a dot (a dict key ``"m1.coefficients"``), give the
    path as a ``Path`` instead:

    >>> import zdx_base
    >>> tree = {"m1.coefficients": {"x": 1.0}}
    >>> float(zdx_base.get(tree, zdx_base.Path("m1.coefficients", "x")))
    1.0

    A ``Path`` is a ``tuple`` and can be used wherever a path string can: in a list of
    paths, as the key of a ``{path: value}`` mapping, in ``get`` and ``set``.
    """

    def __new__(cls, *keys: Hashable) -> Path:
        if not keys:
            raise ValueError("Path() needs at least one key, got none.")
        return super().__new__(cls, keys)

    def __repr__(self) -> str:
        return "Path(" + ", ".join(repr(k) for k in self) + ")"


PathLike = str | Path
Paths = PathLike | Sequence[Any]


def is_single_path(obj: Any) -> bool:
    """True when ``obj`` names one path (a string or a :class:`Path`)."""
    return isinstance(obj, (str, Path))


def path_keys(path: PathLike) -> tuple[Hashable, ...]:
    """The keys of one path: a string split on dots, or the keys of a :class:`Path`.

    Raises:
        TypeError: when ``path`` is neither a string nor a ``Path``.
        ValueError: when a string path is empty or has an empty step (``"a..b"``).
    """
    if isinstance(path, Path):
        return tuple(path)
    if not isinstance(path, str):
        raise TypeError(
            f"A parameter path must be a string like 'a.b.c' or a zdx_base.Path, got "
            f"{path!r} of type {type(path).__name__}."
        )
    keys = tuple(path.split("."))
    if any(k == "" for k in keys):
        raise ValueError(
            f"Parameter path {path!r} has an empty step; expected names separated by single "
            "dots, like 'a.b.c'."
        )
    return keys


def flatten_paths(paths: Any) -> list[PathLike]:
    """Flatten a path, or a (nested) list or tuple of paths, into a flat list of paths.

    Raises:
        TypeError: when an entry is not a string, a ``Path``, a list or a tuple.
    """
    if is_single_path(paths):
        return [paths]
    if isinstance(paths, (list, tuple)):
        out: list[PathLike] = []
        for p in paths:
            out.extend(flatten_paths(p))
        return out
    raise TypeError(
        "Parameter paths must be a string like 'a.b', a zdx_base.Path, or a (nested) list "
        f"or tuple of those; got {paths!r} of type {type(paths).__name__}."
    )


def _is_builtin_container(node: Any) -> bool:
    return type(node) in (dict, list, tuple) or isinstance(node, Mapping)


def _available(node: Any) -> list[str]:
    """What a node offers as next steps, for error messages."""
    if isinstance(node, Mapping):
        return [repr(k) for k in node.keys()]
    if isinstance(node, (list, tuple)):
        return [f"indices 0..{len(node) - 1}"] if len(node) else ["nothing (empty sequence)"]
    names = []
    fields = getattr(type(node), "__dataclass_fields__", None)
    if fields:
        names = [repr(n) for n in fields]
    elif hasattr(node, "__dict__"):
        names = [repr(n) for n in vars(node) if not n.startswith("_")]
    if hasattr(type(node), "__getattr__"):
        names.append(f"whatever {type(node).__name__}.__getattr__ provides")
    return names or ["nothing (a leaf)"]


_MISSING_STEP = object()


def _step(node: Any, key: Hashable) -> Any:
    """One step of a path: attribute, then mapping key, then sequence index."""
    if isinstance(key, str) and not _is_builtin_container(node):
        try:
            value = getattr(node, key)
        except AttributeError:
            value = _MISSING_STEP
        # A method of the node is behaviour, not a parameter stored in the tree.
        if value is not _MISSING_STEP and not (
            callable(value) and getattr(value, "__self__", None) is node
        ):
            return value
    if isinstance(node, Mapping):
        if key in node:
            return node[key]
        if isinstance(key, str):
            try:
                as_int = int(key)
            except ValueError:
                as_int = None
            if as_int is not None and as_int in node:
                return node[as_int]
        return _MISSING_STEP
    if isinstance(node, Sequence) and not isinstance(node, (str, bytes)):
        index = key
        if isinstance(key, str):
            try:
                index = int(key)
            except ValueError:
                return _MISSING_STEP
        if isinstance(index, int) and -len(node) <= index < len(node):
            return node[index]
        return _MISSING_STEP
    getitem = getattr(type(node), "__getitem__", None)
    if getitem is not None and not hasattr(node, "shape"):
        try:
            return node[key]
        except (KeyError, IndexError, TypeError):
            return _MISSING_STEP
    return _MISSING_STEP


def resolve(tree: Any, path: PathLike) -> Any:
    """The node that ``path`` names in ``tree``.

    Each step resolves through attributes first (including a class's own ``__getattr__``),
    then mapping keys, then sequence indices (``"layers.0"``).

    Raises:
        KeyError: naming the whole path, the step that failed and what was available there.
    """
    keys = path_keys(path)
    node = tree
    for depth, key in enumerate(keys):
        nxt = _step(node, key)
        if nxt is _MISSING_STEP:
            where = ".".join(str(k) for k in keys[:depth]) or "the top level"
            raise KeyError(
                f"Path {path!r}: step {key!r} not found at {where} "
                f"(type {type(node).__name__}). Available there: {', '.join(_available(node))}."
            )
        node = nxt
    return node


def iter_leaf_paths(keypath: Sequence[Any]) -> Iterator[str]:
    """Turn a ``jax.tree_util`` key path into its path steps as strings."""
    for k in keypath:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                yield str(getattr(k, attr))
                break
        else:
            yield str(k)
