"""The zdx-base save file: a pytree's leaves in equinox's format, then their description.

The leaves are written by ``equinox.tree_serialise_leaves`` (one ``.npy`` record per array
leaf, depth first), so ``equinox.tree_deserialise_leaves`` reads the file as it is. After
them comes a JSON description: the path, kind, shape and dtype of every leaf (from which the
``ravel`` name of every scalar follows), the package versions that wrote the file, optional
user metadata, a checksum of the leaves, and a format number. The file ends with the length
of that description and a fixed marker, so a file cut short is recognised.
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


def type_name(obj: Any) -> str:
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


def describe_leaves(tree: Any) -> list[LeafInfo]:
    return [
        _describe_leaf(".".join(iter_leaf_paths(keypath)), leaf)
        for keypath, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    ]


def package_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in _VERSIONED:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def write(
    path: pathlib.Path, tree: Any, metadata: dict[str, Any], overwrite: bool, fn_name: str
) -> None:
    """Write ``tree``'s leaves and their description to ``path``, complete or not at all.

    The file is written beside ``path`` and then moved into place. Raises ``TypeError`` if
    ``metadata`` is not JSON-serialisable, ``FileExistsError`` if ``path`` appears meanwhile
    and ``overwrite`` is False.
    """
    leaves = io.BytesIO()
    eqx.tree_serialise_leaves(leaves, tree)
    data = leaves.getvalue()
    description = {
        "format": FORMAT,
        "type": type_name(tree),
        "leaves": [leaf._asdict() for leaf in describe_leaves(tree)],
        "versions": package_versions(),
        "metadata": metadata,
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
            file.flush()
            os.fsync(file.fileno())  # on disk before it takes the target's name
        if not overwrite and path.exists():  # appeared while we were writing
            raise FileExistsError(
                f"{fn_name}: {str(path)!r} already exists; pass overwrite=True to replace it."
            )
        os.replace(temporary, path)
        sync_folder(path.parent)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def sync_folder(folder: pathlib.Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _not_complete(fn_name: str, path: pathlib.Path, why: str) -> ValueError:
    return ValueError(
        f"{fn_name}: {str(path)!r} is not a complete zdx-base save file: {why}. It was cut "
        "short (truncated) or corrupted, or written by something else (a file of "
        "equinox.tree_serialise_leaves alone is read by equinox.tree_deserialise_leaves)."
    )


def read(path: pathlib.Path, fn_name: str) -> tuple[dict[str, Any], bytes]:
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
            f"{writer}; this zdx-base ({package_versions().get('zdx-base', 'unknown')}) reads "
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


def saved_info_of(path: pathlib.Path, description: dict[str, Any]) -> SavedInfo:
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
