"""The transforms: ``hessian_fn(f)`` and its siblings are JAX functions of ``(x, args)``.

Each equals JAX's own transformation on the flat parameters, composes with ``jax.jit``,
``jax.vmap`` and ``jax.grad``, and, held, is traced once per shape (counted with a
module-level counter, which the traced function increments).
"""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import zdx_batching as batching
import zdx_batching._transforms as transforms_module

TRACES: collections.Counter = collections.Counter()
X = {"a": jnp.array([0.3, -0.7, 1.1]), "b": jnp.array(1.4)}  # n = 4
DATA = jnp.array([0.5, -0.2, 0.1])


def loss(p, data):
    TRACES["loss"] += 1
    return loss_value(p, data)


def loss_value(p, data):
    return jnp.sum(jnp.sin(p["a"] * p["b"] - data) ** 2) + p["b"] ** 3 * jnp.sum(p["a"] ** 4)


def residuals(p, data):
    return jnp.tanh(p["a"] * p["b"] - data) + p["b"] * p["a"] ** 2


def flat(f, x, data):
    x_flat, unravel = ravel_pytree(x)
    return (lambda z: f(unravel(z), data)), x_flat


def reference(kind, x=X, data=DATA, v=None):
    g, z = flat(loss_value if kind in ("hessian", "diagonal", "hvp") else residuals, x, data)
    if kind == "hessian":
        return jax.hessian(g)(z)
    if kind == "diagonal":
        return jnp.diag(jax.hessian(g)(z))
    if kind == "hvp":
        return jax.hessian(g)(z) @ v
    J = jax.jacfwd(g)(z)
    return J if kind == "jacobian" else J.T @ J


TRANSFORMS = {
    "hessian": lambda **o: batching.hessian_fn(loss, **o),
    "diagonal": lambda **o: batching.hessian_diagonal_fn(loss, **o),
    "jacobian": lambda **o: batching.jacobian_fn(residuals, **o),
    "fisher": lambda **o: batching.fisher_fn(residuals, **o),
}


@pytest.mark.parametrize("kind", sorted(TRANSFORMS))
@pytest.mark.parametrize("nbatches", [None, 1, 3])
def test_each_transform_equals_jax_on_the_flat_parameters(kind, nbatches):
    transform = TRANSFORMS[kind](nbatches=nbatches)
    np.testing.assert_allclose(transform(X, DATA), reference(kind), rtol=1e-12, atol=1e-12)


def test_hvp_gives_the_product_in_the_form_of_v():
    product = batching.hvp_fn(loss)
    v = {"a": jnp.array([1.0, 0.0, -2.0]), "b": jnp.array(0.5)}
    v_flat = ravel_pytree(v)[0]
    expected = reference("hvp", v=v_flat)
    np.testing.assert_allclose(product(X, v_flat, DATA), expected, rtol=1e-12)
    as_tree = product(X, v, DATA)
    np.testing.assert_allclose(ravel_pytree(as_tree)[0], expected, rtol=1e-12)


def test_a_held_transform_is_traced_once_per_shape_and_reads_new_values():
    transform = batching.hessian_fn(loss, nbatches=2)
    transform(X, DATA)
    traces = TRACES["loss"]
    other = -2.0 * DATA
    np.testing.assert_allclose(transform(X, other), reference("hessian", data=other), rtol=1e-12)
    moved = jax.tree_util.tree_map(lambda leaf: leaf + 0.25, X)
    np.testing.assert_allclose(transform(moved, DATA), reference("hessian", x=moved), rtol=1e-12)
    assert TRACES["loss"] == traces
    bigger = {"a": jnp.ones(5), "b": jnp.array(0.5)}
    transform(bigger, jnp.zeros(5))
    assert TRACES["loss"] > traces


def test_transforms_compose_with_jit_vmap_and_grad():
    transform = batching.hessian_fn(loss, nbatches=2)
    inside_jit = jax.jit(lambda x, d: transform(x, d) * 2.0)(X, DATA)
    np.testing.assert_allclose(inside_jit, 2.0 * reference("hessian"), rtol=1e-12)

    datasets = jnp.stack([DATA, 2.0 * DATA, -DATA])
    batched = jax.vmap(transform, in_axes=(None, 0))(X, datasets)
    for got, data in zip(batched, datasets):
        np.testing.assert_allclose(got, reference("hessian", data=data), rtol=1e-12)

    def trace_of_hessian(data, f):
        return jnp.trace(f(data))

    ours = jax.grad(trace_of_hessian)(DATA, lambda d: transform(X, d))
    theirs = jax.grad(trace_of_hessian)(DATA, lambda d: reference("hessian", data=d))
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)


def test_options_are_checked_when_the_transform_is_made_and_n_when_it_is_called():
    with pytest.raises(TypeError, match="hessian_fn: f must be a callable"):
        batching.hessian_fn(3.0)
    with pytest.raises(ValueError, match="nbatches must be at least 1"):
        batching.jacobian_fn(residuals, nbatches=0)
    with pytest.raises(ValueError, match="max_memory"):
        batching.fisher_fn(residuals, max_memory="lots")
    with pytest.raises(TypeError, match="devices"):
        batching.hessian_fn(loss, devices=["cpu"])
    with pytest.raises(ValueError, match="nbatches=9 is larger than the number of parameters n=4"):
        batching.hessian_fn(loss, nbatches=9)(X, DATA)
    with pytest.raises(ValueError, match="must return a scalar"):
        batching.hessian_fn(residuals)(X, DATA)


def test_max_memory_searches_once_per_shape_and_keeps_its_choice(monkeypatch):
    searches = []
    original = transforms_module.search_block

    def counted(*arguments):
        searches.append(arguments[2])  # the largest block allowed
        return original(*arguments)

    monkeypatch.setattr(transforms_module, "search_block", counted)
    transform = batching.hessian_fn(loss, max_memory="1GB")
    for data in (DATA, 3.0 * DATA):
        np.testing.assert_allclose(transform(X, data), reference("hessian", data=data), rtol=1e-12)
    assert len(searches) == 1
    bigger = {"a": jnp.ones(5), "b": jnp.array(0.5)}
    transform(bigger, jnp.zeros(5))
    assert len(searches) == 2
    inside = jax.jit(lambda d: transform(X, d))(DATA)  # the chosen block, traced inline
    np.testing.assert_allclose(inside, reference("hessian"), rtol=1e-12)
    assert len(searches) == 2


def test_unflatten_maps_a_flat_vector_back_to_the_structure_of_x():
    transform = batching.hessian_fn(loss)
    unflatten = transform.unflatten(X)
    back = unflatten(jnp.arange(4.0))  # ravel_pytree order: "a", then "b"
    np.testing.assert_array_equal(back["a"], [0.0, 1.0, 2.0])
    assert float(back["b"]) == 3.0
