"""Save a pytree's leaves to a file and load them back into a tree of the same structure.

The file format (equinox's leaves, then a description of them) is ``_save_format``.
"""

from __future__ import annotations

import io
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import equinox as eqx

from ._checks import check_bool
from ._save_format import FORMAT as FORMAT
from ._save_format import (
    LeafInfo,
    SavedInfo,
    describe_leaves,
    read,
    saved_info_of,
    type_name,
    write,
)


def _check_path(path: Any, fn_name: str) -> pathlib.Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"{fn_name}: `path` must be a str or os.PathLike, got {type(path).__name__}."
        )
    path = pathlib.Path(path)
    # equinox's rule, so that equinox.tree_deserialise_leaves(path, ...) finds the same file
    return path.with_suffix(".eqx") if path.suffix == "" else path


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
    overwrite = check_bool(fn_name, "overwrite", overwrite)
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(
            f"{fn_name}: `metadata` must be a mapping (a dict), got {type(metadata).__name__}."
        )
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{fn_name}: {str(path)!r} already exists; pass overwrite=True to replace it, "
            "or choose another path."
        )
    write(path, tree, dict(metadata or {}), overwrite, fn_name)
    return path


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
    description, _ = read(path, fn_name)
    return saved_info_of(path, description)


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
    FileNotFoundError, ValueError
        As :func:`saved_info`; also ``ValueError`` if the file holds another type of tree
        than ``like``, or differs from ``like`` in a leaf (the message names the first one
        that differs). Nothing is loaded then.

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
    description, data = read(path, fn_name)
    saved = saved_info_of(path, description)
    if saved.type != type_name(like):
        raise ValueError(
            f"{fn_name}: {str(path)!r} holds a {saved.type}, but `like` is a "
            f"{type_name(like)}; pass a skeleton of the saved model as `like`."
        )
    difference = _first_difference(list(saved.leaves), describe_leaves(like))
    if difference is not None:
        raise ValueError(
            f"{fn_name}: {str(path)!r} does not have the structure of `like`: {difference}. "
            "Nothing was loaded."
        )
    return eqx.tree_deserialise_leaves(io.BytesIO(data), like)
