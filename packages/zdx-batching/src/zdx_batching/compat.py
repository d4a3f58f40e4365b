"""What differs between the JAX versions the family supports, in one place.

Every package of the family that spreads work over devices or passes options to XLA's
compiler goes through these helpers, so that a change of JAX is met once:

- :func:`shard_map`: ``jax.shard_map`` (JAX 0.6 and later, ``check_vma``) or
  ``jax.experimental.shard_map`` (older, ``check_rep``), with the replication check off
  (the programs here gather their blocks themselves);
- :func:`supported_compile_options`: the subset of XLA compile options that this jaxlib
  accepts on a platform (options are renamed and retired between XLA versions; an
  unknown one is an error at compile time: JAX 0.12's XLA no longer knows
  ``xla_cpu_use_fusion_emitters``, which JAX 0.10's does);
- :func:`single_device_sharding`: a whole array on one device (the class of JAX 0.10 is
  deprecated in 0.12, the function of 0.12 missing in 0.10);
- :func:`jax_version` and :func:`jax_at_least`: the installed JAX as numbers, for the
  behaviour that changed between the lines the family supports (:data:`SUPPORTED_JAX`);
- :data:`COMPLEX_ABS_HESSIAN_NAN_AT_ZERO`: whether this JAX's second derivative of a
  complex ``abs`` at 0 is NaN (JAX 0.12.1 and later; 0 before), which makes the Hessian
  of a model that sums ``abs(phasor) ** 2`` over a phasor with zeros NaN (dLux's
  ``Wavefront.power``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

# The oldest and the newest JAX line the family supports, both run by the test suite
# (Python 3.11 gets JAX 0.10, Python 3.12 and 3.13 get 0.12).
SUPPORTED_JAX = ((0, 10), (0, 12))


def jax_version() -> tuple[int, int, int]:
    """The installed JAX's version as ``(major, minor, patch)`` (a suffix such as ``.dev``
    or ``rc1`` is dropped).

    Raises
    ------
    RuntimeError
        If ``jax.__version__`` does not start with three numbers.

    Examples
    --------
    >>> jax_version() >= SUPPORTED_JAX[0]
    True
    """
    return _parse_version(jax.__version__)


def _parse_version(text: str) -> tuple[int, int, int]:
    found = re.match(r"(\d+)\.(\d+)\.(\d+)", text)
    if found is None:
        raise RuntimeError(f"jax.__version__ must start with three numbers, got {text!r}.")
    return tuple(int(part) for part in found.groups())


def jax_at_least(major: int, minor: int, patch: int = 0) -> bool:
    """Whether the installed JAX is version ``major.minor.patch`` or later.

    Examples
    --------
    >>> jax_at_least(0, 4)
    True
    """
    return jax_version() >= (major, minor, patch)


def jax_is_supported() -> bool:
    """Whether the installed JAX is of a line from ``SUPPORTED_JAX[0]`` to
    ``SUPPORTED_JAX[1]`` (inclusive)."""
    return SUPPORTED_JAX[0] <= jax_version()[:2] <= SUPPORTED_JAX[1]


# JAX 0.12.1 computes the derivative of a complex abs through hypot and zeroes it at 0 with
# a select: the first derivative at 0 stays 0, the second is NaN (0 * inf in the
# transposed select). The examples' telescope sums the power as real**2 + imag**2 instead.
COMPLEX_ABS_HESSIAN_NAN_AT_ZERO = jax_version() >= (0, 12, 1)

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


def single_device_sharding(device: Any) -> Any:
    """The sharding that puts a whole array on ``device``: JAX 0.12's
    ``jax.sharding.make_single_device_sharding`` (its ``SingleDeviceSharding`` class is
    deprecated there), ``SingleDeviceSharding`` before.

    Examples
    --------
    >>> single_device_sharding(jax.devices()[0]).device_set == {jax.devices()[0]}
    True
    """
    make = getattr(jax.sharding, "make_single_device_sharding", None)
    if make is None:  # JAX 0.10
        return jax.sharding.SingleDeviceSharding(device)
    return make(device)


def supported_compile_options(options: dict, platform: str | None = None) -> dict:
    """The entries of ``options`` that this jaxlib's compiler accepts on ``platform``
    (default: JAX's default backend), each tried once per process on a tiny program.

    An option the compiler does not know makes compiling fail with an error naming it
    (``INVALID_ARGUMENT: No such compile option: '...'`` on JAX 0.12); any other error
    of the probe is raised, not taken for an unknown option.

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
    sharding = single_device_sharding(jax.devices(platform)[0])
    probe = jax.ShapeDtypeStruct((), np.float32, sharding=sharding)
    lowered = jax.jit(lambda v: v + 1).lower(probe)
    try:
        lowered.compile({name: value})
    except Exception as error:  # jaxlib raises its own runtime error class
        if _is_unknown_option(str(error), name):
            return False
        raise
    return True


def _is_unknown_option(message: str, name: str) -> bool:
    """Whether a compile error's ``message`` says that option ``name`` is unknown (the
    wording differs between XLA versions; each names the option or says option/flag)."""
    message = message.lower()
    return name.lower() in message or "option" in message or "flag" in message


def import_asdex() -> Any:
    """Import asdex (sparsity detection and colouring) on every supported JAX.

    asdex 0.5 imports ``ClosedJaxpr`` from ``jax._src.core``, where JAX 0.12 no longer
    defines it (it lives in ``jax.extend.core``, its public home, on every supported line).
    When it is missing there, the public class is made visible under the old name before
    asdex is imported; nothing else changes. ``tests/zdx_batching/test_compat.py`` notices
    when an asdex release no longer needs this.

    Raises
    ------
    ImportError
        If asdex is not installed.
    """
    import jax._src.core as private_core
    import jax.extend.core as public_core

    if not hasattr(private_core, "ClosedJaxpr"):
        private_core.ClosedJaxpr = public_core.ClosedJaxpr
    import asdex

    return asdex
