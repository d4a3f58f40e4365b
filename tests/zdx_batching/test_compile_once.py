"""Compile once: repeated calls neither trace nor compile, and never share wrongly.

Each function below counts how often JAX traces it (a Python side effect runs only while
tracing) in the module-level counter ``TRACES``: a module-level name is read by identity
under the reuse rule, so counting does not change what a function captures (a counter
the function captures itself would: see the last tests). Results are checked against
jax.hessian, so a cache hit that reused the wrong captured values would fail.
"""

import collections
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zdx_batching as batching

X = {"a": jnp.array([0.3, -0.2, 0.5]), "b": 1.2}


TRACES: collections.Counter = collections.Counter()


def _traced(name):
    TRACES[name] += 1


def _loss(p, data, name):
    _traced(name)
    return jnp.sum((p["a"] * p["b"] - data) ** 2 * jnp.cos(p["a"]))


def _reference(data):
    x_flat, unravel = jax.flatten_util.ravel_pytree(X)
    return jax.jit(jax.hessian(lambda z: _loss(unravel(z), data, "reference")))(x_flat)


DATA_1 = jnp.array([0.1, 0.2, 0.3])
DATA_2 = jnp.array([-1.0, 0.5, 2.0])


@pytest.mark.parametrize(
    "transform",
    [batching.hessian, batching.jacobian, batching.fisher, batching.hessian_diagonal],
)
def test_the_same_function_is_traced_once(transform):
    name = "test_the_same_function_is_traced_once"
    if transform in (batching.jacobian, batching.fisher):

        def f(p):
            _traced(name)
            return jnp.sin(p["a"]) * p["b"]
    else:

        def f(p):
            return _loss(p, DATA_1, name)

    first, _ = transform(f, X, nbatches=2)
    traces = TRACES[name]
    assert traces >= 1
    for _ in range(3):
        again, _ = transform(f, X, nbatches=2)
        np.testing.assert_array_equal(np.asarray(again), np.asarray(first))
    assert TRACES[name] == traces


def test_hvp_is_traced_once():
    name = "test_hvp_is_traced_once"
    f = functools.partial(_loss, data=DATA_1, name=name)
    v = {"a": jnp.array([1.0, 0.0, 0.0]), "b": 0.5}
    batching.hvp(f, X, v)
    traces = TRACES[name]
    batching.hvp(f, X, {"a": jnp.array([0.0, 1.0, 0.0]), "b": -0.5})
    assert TRACES[name] == traces


def test_a_new_lambda_over_the_same_data_reuses_the_program():
    name = "test_a_new_lambda_over_the_same_data_reuses_the_program"
    data = DATA_1 + 0.0
    results = [batching.hessian(lambda p: _loss(p, data, name), X, nbatches=3)[0] for _ in range(3)]
    assert TRACES[name] == 1
    np.testing.assert_allclose(np.asarray(results[-1]), np.asarray(_reference(data)), rtol=1e-12)


def test_a_new_lambda_over_other_arrays_of_the_same_shape_reuses_it_with_their_values():
    name = "test_a_new_lambda_over_other_arrays_of_the_same_shape_reuses_it_with_their_values"

    def run(data):
        f = lambda p: _loss(p, data, name)  # noqa: E731  (a new closure per call)
        return batching.hessian(f, X, nbatches=2)[0]

    H1 = run(DATA_1 * 1.0)
    H2 = run(DATA_2 * 1.0)
    assert TRACES[name] == 1
    np.testing.assert_allclose(np.asarray(H1), np.asarray(_reference(DATA_1)), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(H2), np.asarray(_reference(DATA_2)), rtol=1e-12)
    assert not np.allclose(np.asarray(H1), np.asarray(H2))


def test_captured_arrays_of_a_new_shape_compile_again():
    name = "test_captured_arrays_of_a_new_shape_compile_again"

    def f_for(data):
        def f(p):
            _traced(name)
            return jnp.sum(p["a"][:, None] * data[None, :]) ** 2 * p["b"]

        return f

    H_small = batching.hessian(f_for(jnp.ones(2)), X)[0]
    H_big = batching.hessian(f_for(jnp.ones(4)), X)[0]
    assert TRACES[name] == 2
    np.testing.assert_allclose(np.asarray(H_big), 4.0 * np.asarray(H_small), rtol=1e-12)


def test_a_captured_python_number_is_part_of_the_program():
    def f_for(scale):
        return lambda p: scale * jnp.sum(p["a"] ** 2) * p["b"]

    H1 = batching.hessian(f_for(1.0), X)[0]
    H3 = batching.hessian(f_for(3.0), X)[0]
    np.testing.assert_allclose(np.asarray(H3), 3.0 * np.asarray(H1), rtol=1e-13)


_GLOBAL_DATA = DATA_1


def _loss_of_global(p):
    return jnp.sum((p["a"] - _GLOBAL_DATA) ** 2 * p["b"] ** 3)


def test_rebinding_a_module_level_array_is_seen(monkeypatch):
    f = lambda p: _loss_of_global(p)  # noqa: E731
    H1 = batching.hessian(f, X)[0]
    monkeypatch.setitem(globals(), "_GLOBAL_DATA", DATA_2)
    H2 = batching.hessian(f, X)[0]
    x_flat, unravel = jax.flatten_util.ravel_pytree(X)
    expected = jax.jit(jax.hessian(lambda z: _loss_of_global(unravel(z))))(x_flat)  # uses DATA_2
    np.testing.assert_allclose(np.asarray(H2), np.asarray(expected), rtol=1e-12)
    assert not np.allclose(np.asarray(H1), np.asarray(H2))


def test_a_function_that_changes_what_it_captures_is_traced_again_and_stays_right():
    # A nonlocal counter is part of what the function captures: once it has changed,
    # the rule cannot prove the function unchanged, so it traces again (never stale).
    calls = 0
    scale = 1.0

    def f(p):
        nonlocal calls
        calls += 1
        return scale * jnp.sum(jnp.exp(p["a"])) * p["b"]

    H1 = batching.hessian(f, X, nbatches=2)[0]
    batching.hessian(f, X, nbatches=2)
    assert calls == 2
    scale = 3.0
    np.testing.assert_allclose(
        np.asarray(batching.hessian(f, X, nbatches=2)[0]), 3.0 * np.asarray(H1), rtol=1e-13
    )


class _Model(eqx.Module):
    weights: jax.Array

    def __call__(self, p):
        return jnp.sum(self.weights * jnp.sin(p["a"]) ** 2) * p["b"]


def test_a_callable_module_and_a_partial_reuse_the_program_with_their_arrays():
    name = "test_a_callable_module_and_a_partial_reuse_the_program_with_their_arrays"
    x_flat, unravel = jax.flatten_util.ravel_pytree(X)
    for weights in (jnp.array([1.0, 2.0, 3.0]), jnp.array([-1.0, 0.5, 4.0])):
        model = _Model(weights)
        H, _ = batching.hessian(model, X, nbatches=2)
        expected = jax.jit(jax.hessian(lambda z, m=model: m(unravel(z))))(x_flat)
        np.testing.assert_allclose(np.asarray(H), np.asarray(expected), rtol=1e-12)
    for data in (DATA_1, DATA_2):
        H, _ = batching.hessian(functools.partial(_loss, data=data, name=name), X)
        np.testing.assert_allclose(np.asarray(H), np.asarray(_reference(data)), rtol=1e-12)
    assert TRACES[name] == 1


def test_a_function_that_needs_concrete_captured_values_still_works():
    name = "test_a_function_that_needs_concrete_captured_values_still_works"
    table = np.array([0.5, 1.5, 2.5])  # used with numpy: must stay concrete

    def f(p):
        _traced(name)
        weights = jnp.asarray(np.cumsum(table))
        return jnp.sum(weights * p["a"] ** 2) * p["b"]

    H1, _ = batching.hessian(f, X)
    H2, _ = batching.hessian(f, X)
    np.testing.assert_array_equal(np.asarray(H1), np.asarray(H2))
    traces = TRACES[name]
    batching.hessian(f, X)
    assert TRACES[name] == traces
    x_flat, unravel = jax.flatten_util.ravel_pytree(X)
    np.testing.assert_allclose(
        np.asarray(H1),
        np.asarray(jax.jit(jax.hessian(lambda z: f(unravel(z))))(x_flat)),
        rtol=1e-12,
    )


def test_new_shapes_of_x_compile_again_and_clear_cache_forgets():
    name = "test_new_shapes_of_x_compile_again_and_clear_cache_forgets"

    def f(p):
        _traced(name)
        return jnp.sum(p**4)

    batching.hessian(f, jnp.ones(3))
    batching.hessian(f, jnp.ones(4))
    assert TRACES[name] == 2
    batching.hessian(f, jnp.ones(3))
    assert TRACES[name] == 2
    batching.clear_cache()
    assert batching.cache_info()["entries"] == 0
    batching.hessian(f, jnp.ones(3))
    assert TRACES[name] == 3


def test_a_captured_boolean_mask_used_for_indexing_still_works():
    mask = np.array([True, False, True])

    def f(p):
        return jnp.sum(p["a"][mask] ** 3) * p["b"]

    H, _ = batching.hessian(f, X, nbatches=2)
    x_flat, unravel = jax.flatten_util.ravel_pytree(X)
    expected = jax.jit(jax.hessian(lambda z: f(unravel(z))))(x_flat)
    np.testing.assert_allclose(np.asarray(H), np.asarray(expected), rtol=1e-12)
