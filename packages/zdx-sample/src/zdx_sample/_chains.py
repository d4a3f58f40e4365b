"""Running a compiled sampler over many chains: vectorised, over devices, or one by one.

A sampler here is a function ``local(density, starts, keys, offset) -> outputs`` that
runs a batch of chains (leading axis of ``starts`` and ``keys``) from warm-up to the
last draw in one program. :func:`run_chains` compiles it once per shape and settings and
runs it: all chains at once (``"vectorized"``), the chains split over devices with
``shard_map`` (``"parallel"``), or one chain after another through the same compiled
program (``"sequential"``). The program is a :class:`~zdx_sample._compiled.Program`: the
density's captured likelihood decides whether it is kept for later calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from zdx_base import checks
from zdx_batching import compat
from zdx_opt import LatentMap

from ._compiled import Program
from ._posterior import LogPosterior

CHAIN_METHODS = ("parallel", "vectorized", "sequential")
_AXIS = "chains"


class LatentDensity(eqx.Module):
    """The log posterior density (up to a constant) of a latent vector ``u``:
    ``log_posterior(unravel(x0 + P @ u))``.

    A pytree whose arrays are the whitening and the prior's parameters, so that a
    compiled sampler is reused when only those change.
    """

    log_posterior: LogPosterior
    latent_map: LatentMap

    def params(self, u: jax.Array) -> Any:
        return self.latent_map.unravel(self.latent_map.x0 + self.latent_map.projection @ u)

    def __call__(self, u: jax.Array) -> jax.Array:
        return jnp.asarray(self.log_posterior(self.params(u)), u.dtype)

    def in_coordinates(self, factor: jax.Array) -> Callable[[jax.Array], jax.Array]:
        """The log density of ``v`` with ``u = factor @ v``: ``P @ factor`` is formed once,
        so each evaluation multiplies by one matrix instead of two."""
        latent_map = self.latent_map
        combined = latent_map.projection @ factor

        def log_density_v(v: jax.Array) -> jax.Array:
            params = latent_map.unravel(latent_map.x0 + combined @ v)
            return jnp.asarray(self.log_posterior(params), v.dtype)

        return log_density_v


def choose_chain_method(num_chains: int, chain_method: str | None) -> str:
    """``"parallel"`` when there are at least ``num_chains`` devices, else ``"vectorized"``
    (a single chain runs ``"sequential"``)."""
    if chain_method is not None:
        return checks.check_choice("nuts", "chain_method", chain_method, CHAIN_METHODS)
    if num_chains == 1:
        return "sequential"
    return "parallel" if jax.local_device_count() >= num_chains else "vectorized"


def devices_for(num_chains: int, chain_method: str) -> int:
    """How many devices the chains are spread over: the largest count up to the local
    device count that divides ``num_chains`` (1 unless ``"parallel"``)."""
    if chain_method != "parallel":
        return 1
    count = min(jax.local_device_count(), num_chains)
    while num_chains % count:
        count -= 1
    return count


def _program(local, density, starts, keys, offset, devices: int):
    if devices == 1:
        return local(density, starts, keys, offset)
    dynamic, static = eqx.partition(density, eqx.is_array)

    def on_device(dynamic, starts, keys, offset):
        return local(eqx.combine(dynamic, static), starts, keys, offset)

    mesh = compat.mesh_of(jax.local_devices()[:devices], _AXIS)
    chains = PartitionSpec(_AXIS)
    sharded = compat.shard_map(
        on_device,
        mesh=mesh,
        in_specs=(PartitionSpec(), chains, chains, PartitionSpec()),
        out_specs=chains,
    )
    return sharded(dynamic, starts, keys, offset)


# XLA's CPU backend copies the loop-carried buffers of a while loop that it cannot prove
# unshared; with region analysis it proves more of them. The samplers' loops run 10-20 %
# faster with it on the cheap targets of the benchmark suite, with identical draws.
CPU_COMPILER_OPTIONS = {"xla_cpu_copy_insertion_use_region_analysis": True}
STATIC_ARGUMENTS = ("local", "devices")


def compiler_options() -> dict | None:
    """The options of :data:`CPU_COMPILER_OPTIONS` that this jaxlib accepts, on CPU (None
    elsewhere, or when it accepts none of them)."""
    if jax.default_backend() != "cpu":
        return None
    return compat.supported_compile_options(CPU_COMPILER_OPTIONS, "cpu") or None


_SAMPLER = Program(_program, static_argnames=STATIC_ARGUMENTS, compiler_options=compiler_options)


def run_chains(
    local: Callable,
    density: LatentDensity,
    starts: jax.Array,
    keys: jax.Array,
    chain_method: str,
    steps_per_chain: int,
) -> Any:
    """Run ``local`` on every chain (see the module docstring).

    ``local`` must be hashable and equal from call to call for the compiled program to be
    reused (a ``NamedTuple`` of settings with a ``__call__`` is); so must what ``density``
    captures, under ``zdx_batching.capture``'s rule. Every output has the chains on its
    leading axis.
    """
    num = starts.shape[0]
    keys = jax.random.key_data(keys)
    compiled = _SAMPLER.for_inputs(density)
    if chain_method != "sequential" or num == 1:
        devices = devices_for(num, chain_method)
        return compiled(local, density, starts, keys, jnp.zeros((), jnp.int32), devices)
    outs = [
        compiled(
            local,
            density,
            starts[i : i + 1],
            keys[i : i + 1],
            jnp.asarray(i * steps_per_chain, jnp.int32),
            1,
        )
        for i in range(num)
    ]
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *outs)
