"""Dotted names for the leaves of a pytree."""

from __future__ import annotations

from typing import Any

import jax


def key_name(key: Any) -> str:
    """The name of one path entry: a dict key, an attribute name or a sequence index."""
    if isinstance(key, jax.tree_util.DictKey):
        return str(key.key)
    if isinstance(key, jax.tree_util.GetAttrKey):
        return key.name
    if isinstance(key, jax.tree_util.SequenceKey):
        return str(key.idx)
    if isinstance(key, jax.tree_util.FlattenedIndexKey):
        return str(key.key)
    return str(key)


def leaf_names(tree: Any) -> tuple[list[str], list[Any], Any]:
    """Flatten ``tree`` into dotted leaf names, leaves and the tree structure.

    >>> leaf_names({"a": 1.0, "b": {"c": 2.0}})[0]
    ['a', 'b.c']
    """
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    names = [".".join(key_name(k) for k in path) for path, _ in paths_leaves]
    leaves = [leaf for _, leaf in paths_leaves]
    return names, leaves, treedef


def matches(leaf: str, name: str) -> bool:
    """Whether the dotted ``name`` is ``leaf`` itself or one of the subtrees above it."""
    return leaf == name or leaf.startswith(name + ".")
