"""Save a pytree's leaves to a file and load them back into a tree of the same structure.

The file is equinox's leaf format (``equinox.tree_serialise_leaves``: one ``.npy`` record
per array leaf, depth first), so ``equinox.tree_deserialise_leaves`` reads it as it is.
After the leaves comes a description of them: the path, kind, shape and dtype of every
leaf (from which the ``ravel`` name of every scalar follows), the package versions that
wrote the file, optional user metadata, a checksum of the leaves, and a format number.
The file ends with the length of that description and a fixed marker, so a file cut short
is recognised.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import os
import pathlib
import platform
import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple

import equinox as eqx
import jax
import numpy as onp

from ._paths import iter_leaf_paths

FORMAT = 1
"""The newest file format this version writes and reads."""

_MARKER = b"zdx-save"
_TRAILER = len(_MARKER) + 8  # the marker and the description's length (uint64, little end)
_VERSIONED = (
    "zdx-base",
    "zdx-stats",
    "zdx-batching",
    "zdx-opt",
    "zdx-sample",
    "zodiax",
    "zdx-examples",
    "dlux",
    "jax",
    "jaxlib",
    "equinox",
    "numpy",
)


class LeafInfo(NamedTuple):
    """How one leaf was stored."""

    path: str
    """The leaf's path, as ``zdx_base.ravel`` names it (``"position.blue"``)."""
    kind: str
    """``"array"`` (a JAX array), ``"numpy"`` (a NumPy array), ``"scalar"`` (a Python or
    NumPy number) or ``"other"`` (not stored; the value comes from ``like`` on loading)."""
    shape: tuple[int, ...] | None
    """The array's shape, ``()`` for a scalar, None for ``"other"``."""
    dtype: str
    """The array's dtype, or the type name of a scalar or other leaf."""


class SavedInfo(NamedTuple):
    """What :func:`saved_info` reads from a file written by :func:`save`."""

    path: pathlib.Path
    format: int
    type: str
    """The type of the saved tree, ``"module.QualifiedName"``."""
    leaves: tuple[LeafInfo, ...]
    versions: dict[str, str]
    """``distribution -> version`` of Python and the packages that wrote the file."""
    metadata: dict[str, Any]
    """The ``metadata`` given to :func:`save` (empty when none was)."""

    @property
    def names(self) -> tuple[str, ...]:
        """A name per stored scalar, as ``zdx_base.ravel(tree).names`` gives them."""
        names: list[str] = []
        for leaf in self.leaves:
            if leaf.kind == "other":
                continue
            for index in onp.ndindex(*leaf.shape):
                suffix = "[" + ",".join(str(i) for i in index) + "]" if index else ""
                names.append(leaf.path + suffix)
        return tuple(names)


def _check_path(path: Any, fn_name: str) -> pathlib.Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"{fn_name}: `path` must be a str or os.PathLike, got {type(path).__name__}."
        )
    path = pathlib.Path(path)
    # equinox's rule, so that equinox.tree_deserialise_leaves(path, ...) finds the same file
    return path.with_suffix(".eqx") if path.suffix == "" else path


def _type_name(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe_leaf(path: str, leaf: Any) -> LeafInfo:
    if isinstance(leaf, (jax.Array, jax.ShapeDtypeStruct)):
        return LeafInfo(path, "array", tuple(leaf.shape), str(leaf.dtype))
    if isinstance(leaf, onp.ndarray):
        return LeafInfo(path, "numpy", tuple(leaf.shape), str(leaf.dtype))
    if eqx.is_array_like(leaf):
        return LeafInfo(path, "scalar", (), type(leaf).__name__)
    return LeafInfo(path, "other", None, type(leaf).__name__)


def _describe(tree: Any) -> list[LeafInfo]:
    return [
        _describe_leaf(".".join(iter_leaf_paths(keypath)), leaf)
        for keypath, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    ]


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in _VERSIONED:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def save(
    path: str | os.PathLike,
    tree: Any,
    *,
    overwrite: bool = False,
    metadata: Mapping[str, Any] | None = None,
) -> pathlib.Path:
    """Save the leaves of ``tree`` (a ``Base`` model or any pytree) to ``path``.

    The file is readable by ``equinox.tree_deserialise_leaves(path, like)`` and by
    :func:`load`, which also checks that ``like`` has the structure that was saved. Beside
    the leaves the file records every leaf's path, shape and dtype (hence the ``ravel``
    name of every scalar), the versions of the packages that wrote it, and ``metadata``.
    Leaves that are neither arrays nor numbers (strings, functions) are not stored, as in
    equinox: on loading they come from ``like``.

    Parameters
    ----------
    path : str or os.PathLike
        Where to write; a path without a suffix gets ``.eqx``, as in equinox.
    tree : PyTree
        What to save.
    overwrite : bool
        Replace an existing file. Without it an existing file is never touched.
    metadata : mapping, optional
        JSON-serialisable information to keep with the leaves (see :func:`saved_info`).

    Returns
    -------
    pathlib.Path
        The path written. The file appears complete or not at all (it is written beside
        and then moved into place).

    Raises
    ------
    FileExistsError
        If the file exists and ``overwrite`` is False.
    TypeError
        If ``path`` is not a path, ``overwrite`` not a bool, or ``metadata`` not a mapping
        of JSON-serialisable values.

    Examples
    --------
    >>> import tempfile, pathlib, jax.numpy as jnp, zdx_base
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> tree = {"flux": jnp.array(2.0), "wfe": jnp.zeros(3)}
    >>> zdx_base.save(folder / "fit.eqx", tree).name
    'fit.eqx'
    >>> float(zdx_base.load(folder / "fit.eqx", like=tree)["flux"])
    2.0
    """
    fn_name = "zdx_base.save"
    path = _check_path(path, fn_name)
    if not isinstance(overwrite, bool):
        raise TypeError(f"{fn_name}: `overwrite` must be a bool, got {overwrite!r}.")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(
            f"{fn_name}: `metadata` must be a mapping (a dict), got {type(metadata).__name__}."
        )
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{fn_name}: {str(path)!r} already exists; pass overwrite=True to replace it, "
            "or choose another path."
        )
    leaves = io.BytesIO()
    eqx.tree_serialise_leaves(leaves, tree)
    data = leaves.getvalue()
    description = {
        "format": FORMAT,
        "type": _type_name(tree),
        "leaves": [leaf._asdict() for leaf in _describe(tree)],
        "versions": _versions(),
        "metadata": dict(metadata or {}),
        "leaves_bytes": len(data),
        "leaves_sha256": hashlib.sha256(data).hexdigest(),
    }
    try:
        text = json.dumps(description).encode()
    except TypeError as err:
        raise TypeError(
            f"{fn_name}: `metadata` must hold only JSON-serialisable values (str, numbers, "
            f"bools, None, lists and dicts of them): {err}."
        ) from err
    path.parent.mkdir(parents=True, exist_ok=True)
    # beside the target, so that the final move is atomic; created with the usual
    # permissions (tempfile.mkstemp would make it readable by its owner only)
    temporary = path.parent / f".{path.name}.{uuid.uuid4().hex}.partial"
    try:
        with open(temporary, "xb") as file:
            file.write(data)
            file.write(text)
            file.write(len(text).to_bytes(8, "little"))
            file.write(_MARKER)
        if not overwrite and path.exists():  # appeared while we were writing
            raise FileExistsError(
                f"{fn_name}: {str(path)!r} already exists; pass overwrite=True to replace it."
            )
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def _not_complete(fn_name: str, path: pathlib.Path, why: str) -> ValueError:
    return ValueError(
        f"{fn_name}: {str(path)!r} is not a complete zdx-base save file: {why}. It was cut "
        "short (truncated) or corrupted, or written by something else (a file of "
        "equinox.tree_serialise_leaves alone is read by equinox.tree_deserialise_leaves)."
    )


def _read(path: pathlib.Path, fn_name: str) -> tuple[dict[str, Any], bytes]:
    content = path.read_bytes()
    if len(content) < _TRAILER or content[-len(_MARKER) :] != _MARKER:
        raise _not_complete(fn_name, path, "it does not end with the zdx-base end marker")
    size = int.from_bytes(content[-_TRAILER : -len(_MARKER)], "little")
    if size > len(content) - _TRAILER:
        raise _not_complete(fn_name, path, "its description is longer than the file")
    try:
        description = json.loads(content[len(content) - _TRAILER - size : -_TRAILER])
    except ValueError as err:
        raise _not_complete(fn_name, path, f"its description cannot be read ({err})") from err
    version = description.get("format") if isinstance(description, dict) else None
    if not isinstance(version, int):
        raise _not_complete(fn_name, path, "its description has no format number")
    if version > FORMAT:
        writer = description.get("versions", {}).get("zdx-base", "unknown")
        raise ValueError(
            f"{fn_name}: {str(path)!r} has file format {version}, written by zdx-base "
            f"{writer}; this zdx-base ({_versions().get('zdx-base', 'unknown')}) reads "
            f"formats up to {FORMAT}. Upgrade zdx-base to load it."
        )
    data = content[: len(content) - _TRAILER - size]
    if len(data) != description["leaves_bytes"]:
        raise _not_complete(
            fn_name,
            path,
            f"it holds {len(data)} bytes of leaves where {description['leaves_bytes']} were "
            "written",
        )
    if hashlib.sha256(data).hexdigest() != description["leaves_sha256"]:
        raise _not_complete(fn_name, path, "the checksum of its leaves does not match")
    return description, data


def _info(path: pathlib.Path, description: dict[str, Any]) -> SavedInfo:
    leaves = tuple(
        LeafInfo(
            leaf["path"],
            leaf["kind"],
            None if leaf["shape"] is None else tuple(leaf["shape"]),
            leaf["dtype"],
        )
        for leaf in description["leaves"]
    )
    return SavedInfo(
        path,
        description["format"],
        description["type"],
        leaves,
        dict(description["versions"]),
        dict(description["metadata"]),
    )


def saved_info(path: str | os.PathLike) -> SavedInfo:
    """Read what a file written by :func:`save` holds, without loading the leaves.

    Returns
    -------
    SavedInfo
        The tree's type, every leaf's path, kind, shape and dtype, the scalar names
        (``.names``, equal to ``zdx_base.ravel(tree).names`` for a tree of numbers), the
        package versions that wrote the file and its ``metadata``.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is truncated, corrupted or not a zdx-base save file, or has a newer
        format than this version reads.

    Examples
    --------
    >>> import tempfile, pathlib, jax.numpy as jnp, zdx_base
    >>> path = zdx_base.save(pathlib.Path(tempfile.mkdtemp()) / "fit", {"wfe": jnp.zeros(2)})
    >>> zdx_base.saved_info(path).names
    ('wfe[0]', 'wfe[1]')
    """
    fn_name = "zdx_base.saved_info"
    path = _check_path(path, fn_name)
    description, _ = _read(path, fn_name)
    return _info(path, description)


def _first_difference(saved: list[LeafInfo], wanted: list[LeafInfo]) -> str | None:
    for was, now in zip(saved, wanted):
        if was.path != now.path:
            return (
                f"the first leaf that differs is {now.path or 'the root'!r} in `like`, where "
                f"the file has {was.path or 'the root'!r}"
            )
        if was.kind == "other" and now.kind == "other":
            continue
        same_kind = was.kind == now.kind or {was.kind, now.kind} <= {"array", "numpy"}
        if not same_kind or was.shape != now.shape or was.dtype != now.dtype:
            return (
                f"the first leaf that differs is {now.path or 'the root'!r}: the file has "
                f"{_show(was)}, `like` has {_show(now)}"
            )
    if len(saved) > len(wanted):
        return (
            f"the file has {len(saved)} leaves and `like` {len(wanted)}; the first leaf "
            f"missing from `like` is {saved[len(wanted)].path!r}"
        )
    if len(wanted) > len(saved):
        return (
            f"the file has {len(saved)} leaves and `like` {len(wanted)}; the first leaf of "
            f"`like` missing from the file is {wanted[len(saved)].path!r}"
        )
    return None


def _show(leaf: LeafInfo) -> str:
    if leaf.kind in ("array", "numpy"):
        return f"an array of shape {leaf.shape} and dtype {leaf.dtype}"
    if leaf.kind == "scalar":
        return f"a {leaf.dtype} scalar"
    return f"an unsaved {leaf.dtype}"


def load(path: str | os.PathLike, like: Any) -> Any:
    """Load a file written by :func:`save` into a tree of the same structure as ``like``.

    ``like`` is a skeleton: a tree of the saved structure whose array leaves may be arrays
    or ``jax.ShapeDtypeStruct`` (``equinox.filter_eval_shape`` builds one without
    computing anything). Leaves that were not stored (strings, functions) come from it.

    Returns
    -------
    PyTree
        ``like`` with the saved leaves in place of its own.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is truncated, corrupted or not a zdx-base save file, has a newer format
        than this version reads, holds another type of tree than ``like``, or differs from
        ``like`` in a leaf (the message names the first one that differs). Nothing is
        loaded then.

    Examples
    --------
    >>> import tempfile, pathlib, jax.numpy as jnp, zdx_base
    >>> path = zdx_base.save(pathlib.Path(tempfile.mkdtemp()) / "fit", {"wfe": jnp.ones(2)})
    >>> zdx_base.load(path, like={"wfe": jnp.zeros(3)})
    Traceback (most recent call last):
    ...
    ValueError: zdx_base.load: ... the first leaf that differs is 'wfe': ...
    """
    fn_name = "zdx_base.load"
    path = _check_path(path, fn_name)
    description, data = _read(path, fn_name)
    saved = _info(path, description)
    if saved.type != _type_name(like):
        raise ValueError(
            f"{fn_name}: {str(path)!r} holds a {saved.type}, but `like` is a "
            f"{_type_name(like)}; pass a skeleton of the saved model as `like`."
        )
    difference = _first_difference(list(saved.leaves), _describe(like))
    if difference is not None:
        raise ValueError(
            f"{fn_name}: {str(path)!r} does not have the structure of `like`: {difference}. "
            "Nothing was loaded."
        )
    return eqx.tree_deserialise_leaves(io.BytesIO(data), like)
