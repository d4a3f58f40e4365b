"""Explicit data: ``args`` is passed as ``f(x, args)`` and its arrays are program inputs."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import zdx_batching as batching

X = {"a": jnp.array([0.3, -0.2, 0.5]), "b": 1.2}
TRACES = [0]


def nll(p, args):
    TRACES[0] += 1
    data, sigma = args["data"], args["sigma"]
    return 0.5 * jnp.sum(((p["a"] * p["b"] - data) / sigma) ** 2 * jnp.cos(p["a"]))


def residuals(p, args):
    return (jnp.sin(p["a"]) * p["b"] - args["data"]) / args["sigma"]


def flat(f, args):
    x_flat, unravel = ravel_pytree(X)
    return (lambda z: f(unravel(z), args)), x_flat


@pytest.mark.parametrize("nbatches", [1, 2])
def test_new_data_in_args_runs_the_same_program_with_its_values(nbatches):
    datasets = [jnp.array([0.1, 0.2, 0.3]), np.array([-1.0, 0.5, 2.0]), jnp.zeros(3)]
    traced = []
    for k, data in enumerate(datasets):
        args = {"data": data, "sigma": jnp.array(0.5 + k)}
        before = TRACES[0]
        H, _ = batching.hessian(nll, X, nbatches, args=args)
        traced.append(TRACES[0] - before)
        g, x_flat = flat(nll, args)
        np.testing.assert_allclose(np.asarray(H), np.asarray(jax.hessian(g)(x_flat)), rtol=1e-12)
    assert traced[0] >= 1 and traced[1:] == [0, 0]  # traced for the first data set only


def test_every_transform_takes_args():
    args = {"data": jnp.array([0.4, -0.1, 0.9]), "sigma": 0.3}
    g, x_flat = flat(nll, args)
    r, _ = flat(residuals, args)
    H = jax.hessian(g)(x_flat)
    J = jax.jacfwd(r)(x_flat)
    np.testing.assert_allclose(np.asarray(batching.jacobian(residuals, X, args=args)[0]), J)
    np.testing.assert_allclose(
        np.asarray(batching.fisher(residuals, X, 3, args=args)[0]), np.asarray(J.T @ J)
    )
    np.testing.assert_allclose(
        np.asarray(batching.hessian_diagonal(nll, X, args=args)[0]), np.asarray(jnp.diag(H))
    )
    v = jnp.array([1.0, -2.0, 0.5, 3.0])
    np.testing.assert_allclose(np.asarray(batching.hvp(nll, X, v, args=args)), np.asarray(H @ v))


class Data(eqx.Module):
    values: jax.Array
    label: str = eqx.field(static=True)


def test_args_may_be_any_pytree_with_static_parts_compared_by_value():
    def f(p, data):
        scale = 2.0 if data.label == "double" else 1.0
        return scale * jnp.sum((p["a"] - data.values) ** 2) * p["b"] ** 2

    single = batching.hessian(f, X, args=Data(jnp.ones(3), "single"))[0]
    double = batching.hessian(f, X, args=Data(jnp.ones(3), "double"))[0]
    np.testing.assert_allclose(np.asarray(double), 2.0 * np.asarray(single), rtol=1e-12)


def test_without_args_f_is_called_with_x_alone_and_positional_nbatches_works():
    H, unflatten = batching.hessian(lambda p: jnp.sum(p["a"] ** 3) * p["b"], X, 2)
    assert H.shape == (4, 4)
    assert unflatten(H[0])["a"].shape == (3,)
