"""Shared points and functions for the tests of zdx_batching (float64 is on).

Tests reach the helpers through the ``kit`` fixture (conftest modules are not importable
under ``--import-mode=importlib``).
"""

import functools
import os
import types

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest
from jax.flatten_util import ravel_pytree


class Params(eqx.Module):
    """An equinox Module of parameters with a static field."""

    amplitude: jax.Array
    centres: jax.Array
    widths: jax.Array
    label: str = eqx.field(static=True, default="params")


def mixed_point():
    """A dict of a scalar, a float, a vector and a matrix: n = 1 + 1 + 3 + 6 = 11."""
    return {
        "scalar": jnp.asarray(0.7),
        "float": 1.3,
        "vector": jnp.array([0.2, -0.4, 0.9]),
        "matrix": jnp.array([[0.1, 0.5, -0.3], [0.8, -0.6, 0.25]]),
    }


def mixed_loss(p):
    """A smooth scalar function coupling every leaf of ``mixed_point``."""
    v, m = p["vector"], p["matrix"]
    return (
        jnp.sin(p["scalar"]) * p["float"] ** 2
        + jnp.sum(jnp.exp(0.3 * v)) * jnp.sum(jnp.cos(m @ v))
        + p["scalar"] * jnp.sum(m**3)
        + jnp.log1p(jnp.sum(v**2)) * p["float"]
    )


def mixed_residuals(p):
    """A smooth array-valued function of shape (2, 3) of ``mixed_point``."""
    v, m = p["vector"], p["matrix"]
    return jnp.tanh(m * v[None, :] + p["scalar"]) * p["float"] + jnp.sin(m) * v[0]


def module_point():
    return Params(
        amplitude=jnp.array([1.0, 0.6]),
        centres=jnp.array([-0.5, 0.4]),
        widths=jnp.array([0.3, 0.5]),
    )


GRID = jnp.linspace(-1.0, 1.0, 7)


def module_model(p):
    """A sum of two Gaussians on a grid of 7 points."""
    z = (GRID[None, :] - p.centres[:, None]) / p.widths[:, None]
    return jnp.sum(p.amplitude[:, None] * jnp.exp(-0.5 * z**2), axis=0)


def module_loss(p):
    return jnp.sum((module_model(p) - 0.3) ** 2) + jnp.sum(p.widths**4)


def flat(f, x):
    """``f`` on the flat vector of ``x``, and that vector."""
    x_flat, unravel = ravel_pytree(x)
    return (lambda z: f(unravel(z))), x_flat


def with_reference(derivative, f, x):
    """``x``, and ``derivative`` (``jax.hessian``, ``jax.jacfwd``) of ``f`` on the flat
    vector of ``x``, compiled and evaluated there."""
    f_flat, x_flat = flat(f, x)
    return x, jax.jit(derivative(f_flat))(x_flat)


@functools.cache
def reference(derivative, f, point):
    """:func:`with_reference` at the point ``point()``, computed once per session for each
    ``(derivative, f, point)``: the expected values that several tests compare with."""
    return with_reference(derivative, f, point())


def with_cpu_devices(count):
    """The environment for a subprocess whose JAX sees ``count`` CPU devices."""
    env = dict(os.environ)
    flag = f"--xla_force_host_platform_device_count={count}"
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    return env


def assert_close(actual, expected, tol=1e-10):
    actual, expected = jnp.asarray(actual), jnp.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(1.0, float(jnp.max(jnp.abs(expected))))
    error = float(jnp.max(jnp.abs(actual - expected)))
    assert error <= tol * scale, f"max abs error {error:.3e} > {tol:.0e} * {scale:.3g}"


@pytest.fixture(scope="session")
def kit():
    """The helpers of this file, as attributes."""
    return types.SimpleNamespace(
        Params=Params,
        mixed_point=mixed_point,
        mixed_loss=mixed_loss,
        mixed_residuals=mixed_residuals,
        module_point=module_point,
        module_model=module_model,
        module_loss=module_loss,
        flat=flat,
        with_reference=with_reference,
        reference=reference,
        with_cpu_devices=with_cpu_devices,
        assert_close=assert_close,
    )
