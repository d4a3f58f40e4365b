"""What differs between the JAX versions the family supports, in one place.

Every package of the family that spreads work over devices or passes options to XLA's
compiler goes through these helpers, so that a change of JAX is met once:

- :func:`shard_map`: ``jax.shard_map`` (JAX 0.6 and later, ``check_vma``) or
  ``jax.experimental.shard_map`` (older, ``check_rep``), with the replication check off
  (the programs here gather their blocks themselves);
- :func:`supported_compile_options`: the subset of XLA compile options that this jaxlib
  accepts on a platform (options are renamed and retired between XLA versions; an
  unknown one is an error at compile time).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

try:  # jax >= 0.6
    from jax import shard_map as _shard_map

    _CHECK_FLAG = "check_vma"
except ImportError:  # pragma: no cover - older jax
    from jax.experimental.shard_map import shard_map as _shard_map

    _CHECK_FLAG = "check_rep"


def mesh_of(devices: Sequence, axis: str) -> Mesh:
    """A one-dimensional mesh named ``axis`` over ``devices``."""
    return Mesh(np.asarray(tuple(devices)), (axis,))


def shard_map(f: Callable, *, mesh: Mesh, in_specs: Any, out_specs: Any) -> Callable:
    """``f`` mapped over the devices of ``mesh`` (``jax.shard_map``'s meaning, on every
    supported JAX), without the replication check.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from jax.sharding import PartitionSpec
    >>> mesh = mesh_of(jax.devices()[:1], "blocks")
    >>> doubled = shard_map(lambda v: 2 * v, mesh=mesh, in_specs=PartitionSpec("blocks"),
    ...                     out_specs=PartitionSpec("blocks"))
    >>> doubled(jnp.arange(3.0))
    Array([0., 2., 4.], dtype=float64)
    """
    return _shard_map(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, **{_CHECK_FLAG: False})


def supported_compile_options(options: dict, platform: str | None = None) -> dict:
    """The entries of ``options`` that this jaxlib's compiler accepts on ``platform``
    (default: JAX's default backend), each tried once per process on a tiny program.

    Returns
    -------
    A new dict: ``options`` without the names this compiler does not know.

    Raises
    ------
    TypeError
        If ``options`` is not a dict of option names.

    Examples
    --------
    >>> supported_compile_options({"xla_no_such_option_anywhere": True})
    {}
    """
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise TypeError(
            f"supported_compile_options: options must be a dict of names, got {options!r:.80}."
        )
    platform = platform or jax.default_backend()
    return {name: value for name, value in options.items() if _accepted(platform, name, value)}


@functools.cache
def _accepted(platform: str, name: str, value: Any) -> bool:
    sharding = jax.sharding.SingleDeviceSharding(jax.devices(platform)[0])
    probe = jax.ShapeDtypeStruct((), np.float32, sharding=sharding)
    lowered = jax.jit(lambda v: v + 1).lower(probe)
    try:
        lowered.compile({name: value})
    except Exception as error:  # jaxlib raises its own runtime error class
        message = str(error).lower()
        if "option" in message or "flag" in message:
            return False
        raise
    return True
