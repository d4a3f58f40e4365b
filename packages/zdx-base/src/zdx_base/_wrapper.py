"""Hold an equinox network's array leaves as one flat vector that can be optimised."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ._base import Base


class EquinoxWrapper(Base):
    """The structure of a model whose selected array leaves live elsewhere as a flat vector.

    Made by :func:`build_wrapper`; :meth:`inject` puts a vector back into the model. It is a
    :class:`Base`, so its ``static`` part can be read and changed by path.

    Attributes:
        static: the model with every selected leaf replaced by ``None`` (what
            ``equinox.partition`` leaves behind).
        shapes, dtypes: shape and dtype of each selected leaf, in flattening order.
        tree_def: the tree structure of the selected leaves.
    """

    static: Any
    shapes: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    dtypes: tuple[Any, ...] = eqx.field(static=True)
    tree_def: Any = eqx.field(static=True)

    def __init__(self, static: Any, leaves: Sequence[Any], tree_def: Any):
        self.static = static
        self.shapes = tuple(tuple(jnp.shape(x)) for x in leaves)
        self.dtypes = tuple(jnp.result_type(x) for x in leaves)
        self.tree_def = tree_def

    @property
    def sizes(self) -> list[int]:
        """The number of scalars of each selected leaf, in flattening order."""
        return [math.prod(s) for s in self.shapes]

    @property
    def starts(self) -> list[int]:
        """Where each selected leaf starts in the flat vector, then the vector's length."""
        return [sum(self.sizes[:i]) for i in range(len(self.shapes) + 1)]

    @property
    def size(self) -> int:
        """The length of the flat vector this structure expects."""
        return sum(self.sizes)

    def inject(self, values: jax.Array) -> Any:
        """The model rebuilt with its selected leaves taken from the flat vector ``values``.

        Raises:
            ValueError: when ``values`` is not a vector of length :attr:`size`.
        """
        values = jnp.asarray(values)
        if values.shape != (self.size,):
            raise ValueError(
                f"values must be a vector of length {self.size} (the number of selected "
                f"scalars of the model), got shape {values.shape}."
            )
        leaves, start = [], 0
        for shape, dtype in zip(self.shapes, self.dtypes):
            stop = start + math.prod(shape)
            leaves.append(values[start:stop].reshape(shape).astype(dtype))
            start = stop
        dynamic = jax.tree_util.tree_unflatten(self.tree_def, leaves)
        return eqx.combine(dynamic, self.static)


class WrapperHolder(Base):
    """Holds an equinox model as a flat vector ``values`` and its ``structure``.

    Path operations act on ``values`` (``holder.multiply("values", 0.5)``); :attr:`build`
    gives the model back with those values. Subclass it to give the holder a ``__call__``.
    Attributes the holder does not have are looked up on its ``structure`` (as in zodiax
    0.5): ``holder.static`` and the path ``"static.in_features"`` both reach the model's
    static part.

    >>> import equinox as eqx, jax.numpy as jnp, jax.random as jr, zdx_base
    >>> net = eqx.nn.Linear(2, 1, key=jr.key(0))
    >>> holder = zdx_base.WrapperHolder(*zdx_base.build_wrapper(net))
    >>> holder.values.shape
    (3,)
    >>> float(holder.multiply("values", 0.0).build(jnp.ones(2))[0])
    0.0
    """

    values: jax.Array
    structure: EquinoxWrapper

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "structure":
            raise AttributeError(name)
        try:
            return getattr(self.structure, name)
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__} has no attribute {name!r}, and neither has its "
                f"structure ({type(self.structure).__name__})."
            ) from None

    @property
    def build(self) -> Any:
        """The wrapped model with the current ``values`` injected."""
        return self.structure.inject(self.values)


def build_wrapper(
    pytree: Any, filter_fn: Callable[[Any], bool] = eqx.is_array
) -> tuple[jax.Array, EquinoxWrapper]:
    """Split a model into one flat vector of its selected leaves and its structure.

    Args:
        pytree: the model (any pytree, typically an equinox network).
        filter_fn: selects the leaves that go into the vector (default: every array).

    Returns:
        ``(values, structure)``: the selected leaves flattened and concatenated (dtypes
        promoted to a common one), and an :class:`EquinoxWrapper` whose ``inject(values)``
        rebuilds the model.

    Raises:
        ValueError: when no leaf is selected.
    """
    dynamic, static = eqx.partition(pytree, filter_fn)
    leaves, tree_def = jax.tree_util.tree_flatten(dynamic)
    if not leaves:
        raise ValueError(
            f"build_wrapper: filter_fn={getattr(filter_fn, '__name__', filter_fn)!r} selected "
            f"no leaf of the {type(pytree).__name__}; nothing to wrap."
        )
    values = jnp.concatenate([jnp.ravel(jnp.asarray(x)) for x in leaves])
    return values, EquinoxWrapper(static, leaves, tree_def)
