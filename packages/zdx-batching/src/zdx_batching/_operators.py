"""The Hessian and the Fisher matrix as lineax linear operators: products, never matrices.

``hessian_operator(f, x, args)`` linearises ``grad f`` at ``x`` once (``jax.linearize``):
each product ``H v`` is then the forward-over-reverse product at the cost of about one
gradient, and ``H`` is never formed. ``fisher_operator`` does the same with ``f`` itself:
``F v = J^T (J v)``, a forward-mode product followed by its transpose. Both return a
:class:`CurvatureOperator`: a lineax operator on flat vectors (``zdx_base.ravel`` order)
that also knows the structure of ``x`` and a name for every entry, so that the
matrix-free estimates (``_variances``, ``_lanczos``) can select and name parameters by
path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np

import zdx_base
from zdx_base import checks

from ._checks import check_callable
from ._columns import as_output
from ._flat import Layout, layout_of, make_unflatten
from ._precision import warn_if_float32
from ._reuse import NEEDS_VALUES, Captured, capture


class CurvatureOperator(lx.TaggedLinearOperator):
    """A Hessian or Fisher matrix as a lineax linear operator on flat vectors.

    It is a :class:`lineax.TaggedLinearOperator` (``mv``, ``T``, ``as_matrix`` and every
    lineax solver work on it), acting on vectors of the ``n`` scalars of ``x`` in
    ``zdx_base.ravel`` order. Made by :func:`hessian_operator` and
    :func:`fisher_operator`; the matrix is never formed unless ``as_matrix()`` is called.

    Attributes
    ----------
    operator
        The lineax operator of the products (a ``FunctionLinearOperator``).
    tags
        The lineax tags: symmetric, and positive semi-definite for a Fisher matrix.
    layout
        The structure of ``x`` (tree structure, leaf shapes and dtypes).
    names
        One name per flat entry, as ``zdx_base.ravel(x).names``: ``"wfe[3]"``.
    kind
        ``"hessian"`` or ``"fisher"``.
    """

    layout: Layout = eqx.field(static=True)
    names: tuple[str, ...] = eqx.field(static=True)
    kind: str = eqx.field(static=True)

    def __init__(
        self,
        operator: lx.AbstractLinearOperator,
        tags: Any,
        layout: Layout,
        names: tuple[str, ...],
        kind: str,
    ):
        self.operator = operator
        self.tags = frozenset(tags)
        self.layout = layout
        self.names = tuple(names)
        self.kind = kind

    @property
    def n(self) -> int:
        """The number of parameters (the operator is ``n x n``)."""
        return self.layout.n

    def unflatten(self, flat: Any) -> Any:
        """A flat vector of ``n`` numbers (a product, a standard deviation) as a pytree
        with the structure of ``x``; ``ValueError`` if its shape is not ``(n,)``."""
        return make_unflatten(self.layout)(flat)

    def indices(self, which: Any) -> np.ndarray:
        """The flat indices that ``which`` selects, in the order given (see
        :func:`select_indices`)."""
        return select_indices("CurvatureOperator.indices", self, which)


def _structure(layout: Layout) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct((layout.n,), layout.dtype)


def _scalar_value(name: str, out: Any) -> jax.Array:
    out = as_output(name, out)
    if out.shape != ():
        raise ValueError(
            f"{name}: f must return a scalar, but f(x) has shape {out.shape}. For "
            "residuals divided by their errors use fisher_operator."
        )
    return out


def _linearised(kind: str, pair: Captured, x: Any) -> lx.FunctionLinearOperator:
    """The products of ``kind`` (``"hessian"`` or ``"fisher"``) of the captured ``(f,
    args)`` at ``x``, linearised once (traced inside the programs below)."""
    f, args = pair.function
    name = f"{kind}_operator"
    flat, unravel, _ = zdx_base.ravel(x)
    layout, _ = layout_of(name, x)
    flat = flat.astype(layout.dtype)

    def value(z: jax.Array) -> jax.Array:
        out = f(unravel(z)) if args is None else f(unravel(z), args)
        return _scalar_value(name, out) if kind == "hessian" else as_output(name, out)

    if kind == "hessian":
        _, product = jax.linearize(jax.grad(value), flat)
        tags = [lx.symmetric_tag]
    else:
        _, forward = jax.linearize(value, flat)
        backward = jax.linear_transpose(forward, flat)

        def product(v: jax.Array) -> jax.Array:
            return backward(forward(v))[0]

        tags = [lx.symmetric_tag, lx.positive_semidefinite_tag]
    return lx.FunctionLinearOperator(product, _structure(layout), tags)


# One program per kind, under the family's reuse rule (``capture``): a new ``f`` of the
# same code and equal captures, at a new ``x`` of the same shapes, runs the program
# compiled before and gets back the same traced products (the same jaxpr), so the
# estimates compiled for them run again too. ``equinox.filter_jit`` rather than
# ``CapturedJit``, because the operator it returns holds a jaxpr besides its arrays; a
# capture that the rule cannot describe gets a program of its own, dropped with the call.
_HELD = {
    kind: eqx.filter_jit(functools.partial(_linearised, kind)) for kind in ("hessian", "fisher")
}


def _operator(kind: str, f: Callable, x: Any, args: Any) -> CurvatureOperator:
    name = f"{kind}_operator"
    check_callable(name, f)
    layout, _ = layout_of(name, x)
    warn_if_float32(name)
    names = zdx_base.scalar_names(x)
    x = jax.tree_util.tree_map(jnp.asarray, x)  # Python floats as inputs, not constants
    pair = capture((f, args))
    program = _HELD[kind] if pair.reusable else _fresh(kind)
    try:
        inner = program(pair, x)
    except NEEDS_VALUES:
        if not pair.leaves:
            raise
        # f needs the values of arrays it captures: bake them in, in a program of its own.
        inner = _fresh(kind)(capture((f, args), bake=True), x)
    return CurvatureOperator(inner, inner.tags, layout, names, kind)


def _fresh(kind: str) -> Callable:
    """A program of its own, traced at its first call and dropped with it."""
    return eqx.filter_jit(functools.partial(_linearised, kind))


def hessian_operator(f: Callable, x: Any, args: Any = None) -> CurvatureOperator:
    """The Hessian of a scalar ``f`` at ``x`` as a linear operator, never formed.

    ``grad f`` is linearised once at ``x``; each product ``H v`` is then a
    forward-over-reverse product (``jax.jvp`` of ``jax.grad``) at the cost of about one
    gradient, and the memory of one gradient's intermediate values is held. The
    linearisation is compiled under the family's reuse rule (the package README): a new
    ``f`` of the same code and equal captures at a new ``x`` of the same shapes runs the
    program compiled before, and so do the estimates (:func:`marginal_variances`...)
    made from the new operator. Works inside ``jax.jit`` too.

    Parameters
    ----------
    f, x, args
        As in :func:`hessian`: ``f(x)``, or ``f(x, args)`` when ``args`` is given, a real
        scalar; ``x`` any pytree of floating-point leaves.

    Returns
    -------
    A :class:`CurvatureOperator` tagged symmetric: ``op.mv(v)`` is ``H v`` for a flat
    ``(n,)`` vector in ``zdx_base.ravel(x)`` order, equal to ``jax.hessian`` of ``f``
    on the flat parameters times ``v``; ``op.unflatten`` and ``op.names`` give the
    structure of ``x``.

    Raises
    ------
    TypeError
        If ``f`` is not callable, a leaf of ``x`` is not floating-point, or ``f`` does
        not return a floating-point array.
    ValueError
        If ``f`` does not return a scalar.

    Warns
    -----
    UserWarning
        Once per process, when float64 is disabled (as :func:`hessian`).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> op = hessian_operator(lambda p: jnp.sum(p["a"] ** 3), {"a": jnp.array([1.0, 2.0])})
    >>> op.mv(jnp.array([1.0, 1.0]))
    Array([ 6., 12.], dtype=float64)
    >>> op.names
    ('a[0]', 'a[1]')
    """
    return _operator("hessian", f, x, args)


def fisher_operator(f: Callable, x: Any, args: Any = None) -> CurvatureOperator:
    """The Fisher information ``F = J^T J`` at ``x`` as a linear operator, never formed.

    ``f`` returns the model divided by its errors, as in :func:`fisher`. It is
    linearised once at ``x``: each product ``F v = J^T (J v)`` is a forward-mode product
    and its transpose, about the cost of one gradient; neither ``J`` nor ``F`` is formed.
    Compiled and reused as :func:`hessian_operator`.

    Parameters
    ----------
    f, x, args
        As in :func:`fisher`: ``f(x)`` or ``f(x, args)`` returns one real floating-point
        array of any shape.

    Returns
    -------
    A :class:`CurvatureOperator` tagged symmetric and positive semi-definite:
    ``op.mv(v)`` equals ``J^T J v`` with ``J`` the Jacobian of ``f`` on the flat
    parameters.

    Raises
    ------
    TypeError
        As in :func:`hessian_operator`.

    Warns
    -----
    UserWarning
        Once per process, when float64 is disabled (as :func:`fisher`).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> t = jnp.array([0.0, 1.0, 2.0])
    >>> op = fisher_operator(lambda p: p["a"] + p["b"] * t, {"a": 0.0, "b": 1.0})
    >>> op.mv(jnp.array([1.0, 0.0]))
    Array([3., 3.], dtype=float64)
    """
    return _operator("fisher", f, x, args)


# --- choosing parameters by index or by path ---------------------------------------------


def square_size(name: str, operator: Any) -> int:
    """``n`` for a symmetric lineax operator on flat ``(n,)`` vectors; a clear error
    otherwise."""
    if not isinstance(operator, lx.AbstractLinearOperator):
        raise TypeError(
            f"{name}: operator must be a lineax linear operator (hessian_operator or "
            f"fisher_operator make one), got {checks.describe(operator)}."
        )
    structure = operator.in_structure()
    shape = getattr(structure, "shape", None)
    if shape is None or len(shape) != 1 or operator.out_structure().shape != shape:
        raise ValueError(
            f"{name}: operator must act on flat vectors of shape (n,) and return the same "
            f"shape, got input structure {structure} and output structure "
            f"{operator.out_structure()}."
        )
    if not lx.is_symmetric(operator):
        raise ValueError(
            f"{name}: operator must be tagged symmetric (lineax.symmetric_tag); a Hessian "
            "or Fisher operator is. Wrap another with lineax.TaggedLinearOperator."
        )
    return int(shape[0])


def names_of(operator: Any, n: int) -> tuple[str, ...]:
    """The entries' names: the operator's own, or ``"[i]"`` for a plain lineax operator."""
    if isinstance(operator, CurvatureOperator):
        return operator.names
    return tuple(f"[{i}]" for i in range(n))


def select_indices(name: str, operator: Any, which: Any) -> np.ndarray:
    """The flat indices that ``which`` selects, in the order given.

    ``which`` is a flat index (an ``int``), a path (``"wfe"``, ``"position.x"`` or a
    ``zdx_base.Path``; every scalar of the leaf or sub-tree it names), or a list or
    tuple of these, or a one-dimensional integer array of flat indices. Paths need a
    :class:`CurvatureOperator` (which knows the structure).

    Raises
    ------
    TypeError
        If an entry is neither an integer nor a path, or a path is given for a plain
        lineax operator.
    ValueError
        If an index is outside ``[0, n)``, or ``which`` selects nothing.
    KeyError
        If a path does not exist (the message lists what exists at the failing step).
    """
    n = square_size(name, operator)
    if isinstance(which, (np.ndarray, jax.Array)) and which.ndim == 1:
        which = which.tolist()  # an array of flat indices
    entries = list(which) if isinstance(which, (list, tuple)) and not _is_path(which) else [which]
    found: list[np.ndarray] = []
    for entry in entries:
        if _is_path(entry):
            found.append(_path_indices(name, operator, entry))
        elif isinstance(entry, (int, np.integer)) and not isinstance(entry, (bool, np.bool_)):
            index = int(entry)
            if not 0 <= index < n:
                raise ValueError(
                    f"{name}: which holds the index {index}, but the operator has n={n} "
                    f"parameters; expected indices in [0, {n - 1}]."
                )
            found.append(np.array([index]))
        else:
            raise TypeError(
                f"{name}: which must be a flat index, a path ('wfe', 'position.x' or a "
                f"zdx_base.Path) or a list of them, got {checks.describe(entry)}."
            )
    indices = np.concatenate(found) if found else np.zeros(0, int)
    if indices.size == 0:
        raise ValueError(f"{name}: which selects no parameter, got which={which!r:.80}.")
    return indices.astype(np.int64)


def _is_path(entry: Any) -> bool:
    return isinstance(entry, (str, zdx_base.Path))


def _path_indices(name: str, operator: Any, path: Any) -> np.ndarray:
    if not isinstance(operator, CurvatureOperator):
        raise TypeError(
            f"{name}: the path {path!r} needs an operator that knows the parameters' "
            "structure (hessian_operator or fisher_operator); this plain lineax operator "
            "takes flat indices only."
        )
    layout = operator.layout
    starts = np.cumsum((0, *layout.sizes[:-1]))
    leaves = [
        np.arange(start, start + size).reshape(shape)
        for start, size, shape in zip(starts, layout.sizes, layout.shapes)
    ]
    index_tree = jax.tree_util.tree_unflatten(layout.treedef, leaves)
    try:
        found = zdx_base.get(index_tree, path, to_array=False)
    except KeyError as error:
        raise KeyError(f"{name}: which names a path that x does not have: {error}") from None
    parts = [np.ravel(leaf) for leaf in jax.tree_util.tree_leaves(found)]
    if not parts:
        raise ValueError(f"{name}: the path {path!r} holds no parameters.")
    return np.concatenate(parts)
