"""Sparsity patterns of curvature, found leaf by leaf: detected, declared or dense.

A pattern says which entries of a Jacobian, Hessian or Fisher matrix may be non-zero. It
is built one leaf of the parameters at a time, as the columns that leaf's scalars fill:

- **declared** by the user, by the leaf's path (``declare={"prf": "elementwise"}``);
- **dense** for small leaves (at most ``dense_size`` scalars), where finding the pattern
  would cost more than it saves;
- **detected** otherwise, by abstract interpretation of the function's program (asdex's
  ``jacobian_sparsity``, which never evaluates a derivative and holds for every input).

The pattern is then coloured (asdex's graph colouring): columns that share no row get
one colour, and one product per colour recovers them all. A pattern is never trusted
blindly: the computed matrix is compared with a few random products (see
``_sparse.py``), so a wrong declaration, or a detection that missed an entry, is an
error, never a wrong matrix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
import scipy.sparse as sp
from jax.flatten_util import ravel_pytree

from zdx_base import scalar_names
from zdx_base._paths import iter_leaf_paths

from ._dependence import dependent_part
from .compat import import_asdex

KINDS = ("jacobian", "hessian", "fisher")
DECLARATIONS = ("dense", "elementwise")
DEFAULT_DENSE_SIZE = 32


class SparsityError(ValueError):
    """A declared or detected sparsity pattern that the function does not have."""


@dataclasses.dataclass(frozen=True, eq=False)
class Sparsity:
    """Which entries of a ``kind`` matrix may be non-zero, and how each leaf's were found.

    ``rows`` and ``cols`` list the entries that may be non-zero (row-major, each once);
    the matrix is ``shape``: ``(m, n)`` for a Jacobian (``m`` outputs), ``(n, n)`` for a
    Hessian or Fisher matrix. ``names`` names the ``n`` parameters (``zdx_base.ravel``
    order), ``sources`` says for each leaf path whether its columns were ``"detected"``,
    ``"declared"`` or taken ``"dense"``, and ``colouring`` is the graph colouring (an
    ``asdex.ColoredPattern``) whose ``ncolours`` products give the whole matrix. A
    Fisher matrix's pattern also holds its Jacobian's (``jacobian``): the Fisher matrix is
    computed from the sparse Jacobian, so its cost is ``jacobian.ncolours`` forward products.
    """

    kind: str
    rows: np.ndarray
    cols: np.ndarray
    shape: tuple[int, int]
    names: tuple[str, ...]
    sources: Mapping[str, str]
    leaf_slices: Mapping[str, slice]
    colouring: Any
    jacobian: Sparsity | None = None

    @property
    def nnz(self) -> int:
        """How many entries may be non-zero."""
        return int(self.rows.size)

    @property
    def ncolours(self) -> int:
        """How many products of the function compute the matrix (one per colour)."""
        return int((self.jacobian or self).colouring.num_colors)

    @property
    def colours(self) -> np.ndarray:
        """The colour of each of the ``n`` parameters (``-1``: seeded by no product)."""
        return np.asarray(self.colouring.colors)

    def __repr__(self) -> str:
        m, n = self.shape
        return (
            f"Sparsity({self.kind}, shape=({m}, {n}), nnz={self.nnz}, "
            f"ncolours={self.ncolours}, sources={dict(self.sources)})"
        )


def _asdex():
    try:
        asdex = import_asdex()
    except ImportError as error:  # a dependency of zdx-batching, missing only if removed
        raise ImportError(
            "Structured curvature needs asdex (sparsity detection and graph colouring): "
            "`pip install asdex`."
        ) from error
    return asdex


def leaf_paths(x: Any) -> list[str]:
    """The path of every leaf of ``x`` (dots between keys), in flattening order."""
    return [".".join(iter_leaf_paths(kp)) for kp, _ in jax.tree_util.tree_flatten_with_path(x)[0]]


def check_declare(name: str, declare: Any, paths: list[str]) -> dict:
    """``declare`` as a dict from leaf path to declaration, checked against ``paths``."""
    if declare is None:
        return {}
    if not isinstance(declare, Mapping):
        raise TypeError(
            f"{name}: declare must be a dict from leaf path to pattern, got "
            f"{type(declare).__name__}."
        )
    out = {}
    for path, value in declare.items():
        if path not in paths:
            raise ValueError(
                f"{name}: declare names the leaf {path!r}, which the parameters do not "
                f"have; their leaves are {paths}."
            )
        if isinstance(value, str):
            if value not in DECLARATIONS:
                raise ValueError(
                    f"{name}: declare[{path!r}] = {value!r}; expected one of "
                    f"{list(DECLARATIONS)}, a boolean array or a scipy.sparse matrix."
                )
        elif not (sp.issparse(value) or hasattr(value, "shape")):
            raise TypeError(
                f"{name}: declare[{path!r}] is a {type(value).__name__}; expected one of "
                f"{list(DECLARATIONS)}, a boolean array or a scipy.sparse matrix."
            )
        out[path] = value
    return out


def check_dense_size(name: str, dense_size: Any) -> int:
    """``dense_size`` checked: a non-negative integer."""
    if isinstance(dense_size, bool) or not isinstance(dense_size, (int, np.integer)):
        raise TypeError(f"{name}: dense_size must be an int, got {dense_size!r}.")
    if dense_size < 0:
        raise ValueError(f"{name}: dense_size must be at least 0, got {dense_size}.")
    return int(dense_size)


def _declared(
    name: str, kind: str, path: str, value: Any, leaf_shape: tuple, out_shape: tuple, nrows: int
) -> sp.coo_matrix:
    """The ``(nrows, leaf size)`` pattern a declaration gives a leaf's columns."""
    size = int(np.prod(leaf_shape, dtype=int))
    if isinstance(value, str):
        if value == "dense":
            return sp.coo_matrix(np.ones((nrows, size), dtype=bool))
        if kind != "hessian":  # the columns of the Jacobian (also for a Fisher matrix)
            return _elementwise(name, path, value, leaf_shape, out_shape)
        # Hessian: the leaf's own block is diagonal; it may couple with every scalar of
        # the other leaves.
        return None  # filled by the caller, which knows where the leaf sits
    pattern = sp.coo_matrix(value) if sp.issparse(value) else sp.coo_matrix(np.asarray(value))
    if pattern.shape != (nrows, size):
        raise ValueError(
            f"{name}: declare[{path!r}] has shape {pattern.shape}; the columns of leaf "
            f"{path!r} in the {kind} have shape ({nrows}, {size})."
        )
    pattern = pattern.astype(bool)
    pattern.eliminate_zeros()
    return pattern


def _elementwise(name: str, path: str, value: str, leaf_shape: tuple, out_shape: tuple):
    """A leaf that touches, for each of its scalars, the outputs at the same trailing
    index (a pixel response over a stack of images): broadcasting's rule."""
    k = len(leaf_shape)
    if k > len(out_shape) or tuple(out_shape[len(out_shape) - k :]) != tuple(leaf_shape):
        raise ValueError(
            f"{name}: declare[{path!r}] = {value!r} needs the output's trailing axes to "
            f"equal the leaf's shape {tuple(leaf_shape)}; the output has shape "
            f"{tuple(out_shape)}."
        )
    size = int(np.prod(leaf_shape, dtype=int))
    repeats = int(np.prod(out_shape[: len(out_shape) - k], dtype=int))
    rows = np.arange(repeats * size)
    cols = np.tile(np.arange(size), repeats)
    return sp.coo_matrix((np.ones(rows.size, bool), (rows, cols)), shape=(repeats * size, size))


def _detect(name: str, path: str, function: Callable, leaves: list, k: int, args: Any):
    """The columns of leaf ``k`` found by abstract interpretation (asdex)."""
    asdex = _asdex()

    # Placeholders of the right shapes and dtypes (detection reads only those): the same
    # inside another trace, where the inputs are tracers.
    def placeholder(value):
        return np.zeros(np.shape(value), jax.numpy.result_type(value))

    abstract = [placeholder(leaf) for leaf in leaves]
    abstract_args = jax.tree_util.tree_map(placeholder, args)
    try:
        extra = () if args is None else (abstract_args,)
        try:
            cut = dependent_part(function, [*abstract, *extra], k)
        except Exception:  # a shortcut only: detect on the whole function instead
            cut = None
        if cut is None:
            found = asdex.jacobian_sparsity(function, *abstract, *extra, argnums=k)
        else:  # only the operations that see leaf k (see _dependence)
            part, inputs = cut
            found = asdex.jacobian_sparsity(part, *inputs, argnums=0)
    except Exception as error:  # asdex refuses an operation it has no rule for
        raise SparsityError(
            f"{name}: the sparsity of leaf {path!r} ({int(np.prod(np.shape(leaves[k])))} "
            f"scalars) could not be detected ({type(error).__name__}: {error}). Declare it "
            f"by path, e.g. declare={{{path!r}: 'dense'}} or 'elementwise', or raise "
            "dense_size above its size to take its columns dense."
        ) from error
    return sp.coo_matrix(
        (np.ones(found.nnz, bool), (np.asarray(found.rows), np.asarray(found.cols))),
        shape=found.shape,
    )


def build_sparsity(
    name: str,
    kind: str,
    f: Callable,
    x: Any,
    args: Any = None,
    *,
    declare: Any = None,
    dense_size: int = DEFAULT_DENSE_SIZE,
) -> Sparsity:
    """The pattern of ``kind`` for ``f`` at ``x``'s shapes, leaf by leaf, coloured."""
    if kind not in KINDS:
        raise ValueError(f"{name}: kind must be one of {KINDS}, got {kind!r}.")
    leaves, treedef = jax.tree_util.tree_flatten(x)
    paths = leaf_paths(x)
    declared = check_declare(name, declare, paths)
    dense_size = check_dense_size(name, dense_size)
    sizes = [int(np.size(leaf)) for leaf in leaves]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    n = int(offsets[-1])
    with_args = args is not None

    def rebuild(parts):
        return jax.tree_util.tree_unflatten(treedef, list(parts))

    if kind == "hessian":

        def columns_of(*inputs):
            parts, data = (inputs[:-1], inputs[-1]) if with_args else (inputs, None)
            point = rebuild(parts)
            gradient = jax.grad(lambda p: f(p, data) if with_args else f(p))(point)
            return ravel_pytree(gradient)[0]

        nrows, out_shape = n, (n,)
    else:

        def columns_of(*inputs):
            parts, data = (inputs[:-1], inputs[-1]) if with_args else (inputs, None)
            point = rebuild(parts)
            return jax.numpy.ravel(f(point, data) if with_args else f(point))

        abstract = jax.eval_shape(lambda p, a: f(p, a) if with_args else f(p), x, args)
        out_shape = tuple(abstract.shape)
        nrows = int(np.prod(out_shape, dtype=int))

    blocks, sources, slices = [], {}, {}
    for k, (path, leaf) in enumerate(zip(paths, leaves)):
        slices[path] = slice(int(offsets[k]), int(offsets[k + 1]))
        shape = tuple(np.shape(leaf))
        if path in declared:
            block = _declared(name, kind, path, declared[path], shape, out_shape, nrows)
            if block is None:  # a diagonal block, coupled to every other leaf
                block = _diagonal_block(nrows, offsets[k], sizes[k])
            sources[path] = "declared"
        elif sizes[k] <= dense_size:
            block = sp.coo_matrix(np.ones((nrows, sizes[k]), dtype=bool))
            sources[path] = "dense"
        else:
            block = _detect(name, path, columns_of, leaves, k, args)
            sources[path] = "detected"
        blocks.append(sp.csc_matrix(block, dtype=bool))
    jacobian_pattern = sp.hstack(blocks, format="csr", dtype=bool)
    names = scalar_names(x)

    def finish(kind: str, pattern: Any, jacobian: Sparsity | None = None) -> Sparsity:
        pattern = sp.coo_matrix(pattern)
        pattern.sum_duplicates()
        order = np.lexsort((pattern.col, pattern.row))
        rows = pattern.row[order].astype(np.int32)
        cols = pattern.col[order].astype(np.int32)
        return Sparsity(
            kind=kind,
            rows=rows,
            cols=cols,
            shape=tuple(int(s) for s in pattern.shape),
            names=names,
            sources=sources,
            leaf_slices=slices,
            colouring=_colour(kind, rows, cols, pattern.shape),
            jacobian=jacobian,
        )

    if kind == "jacobian":
        return finish(kind, jacobian_pattern)
    if kind == "hessian":
        symmetric = (jacobian_pattern + jacobian_pattern.T).astype(bool)
        return finish(kind, symmetric + sp.identity(n, dtype=bool, format="csr"))
    counts = jacobian_pattern.astype(np.int32)  # rows shared by two columns
    return finish(kind, (counts.T @ counts).astype(bool), finish("jacobian", jacobian_pattern))


def _diagonal_block(nrows: int, offset: int, size: int) -> sp.coo_matrix:
    """A leaf's Hessian columns when declared diagonal: its own block is diagonal and it
    may couple with every scalar outside the leaf."""
    outside = np.concatenate([np.arange(offset), np.arange(offset + size, nrows)])
    rows = np.concatenate([np.repeat(outside, size), offset + np.arange(size)])
    cols = np.concatenate([np.tile(np.arange(size), outside.size), np.arange(size)])
    return sp.coo_matrix((np.ones(rows.size, bool), (rows, cols)), shape=(nrows, size))


def _colour(kind: str, rows: np.ndarray, cols: np.ndarray, shape: tuple) -> Any:
    """asdex's colouring of the pattern: by columns for a Jacobian (forward products),
    symmetric (star colouring) for a Hessian or Fisher matrix."""
    import warnings

    asdex = _asdex()
    pattern = asdex.SparsityPattern.from_coo(rows, cols, tuple(int(s) for s in shape))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", asdex.DenseColoringWarning)
        if kind == "jacobian":
            return asdex.jacobian_coloring_from_sparsity(pattern, mode="fwd")
        return asdex.hessian_coloring_from_sparsity(pattern, mode="fwd_over_rev")
