"""fit_many and hessian_many reuse a compiled program under the family's one rule
(zdx_batching.capture): a new function of the same code and equal captures compiles nothing,
new values of captured arrays are used without compiling, and what the rule cannot
describe is traced afresh, leaving no program behind.

Traces are counted by a module-level counter that the functions increment: a counter
captured in a closure would itself be part of the capture (and change it at every trace).
"""

import collections

import jax
import jax.numpy as jnp
import numpy as onp
import pytest
from jax.flatten_util import ravel_pytree

import zdx_opt
from zdx_opt import _blocks

TRACES = collections.Counter()
FIT = dict(steps=2, learning_rate=1.0, momentum=0.0, refresh_every=1)


def make_quadratic(weights, shift):
    """A new function of the same code at each call: ``sum(weights (p - d - shift)^2)``."""

    def loss(p, d):
        TRACES["quadratic"] += 1
        return jnp.sum(weights * (p - d - shift) ** 2)

    return loss


def make_quartic(weights):
    def fn(p, d):
        TRACES["quartic"] += 1
        return jnp.sum(weights * p["a"] ** 4 * d) + jnp.sum(p["b"] @ p["a"]) ** 2

    return fn


def expected_hessians(fn, params, data):
    """``jax.hessian`` of each data set's function in ``ravel_pytree`` order."""

    def one(i):
        flat, unravel = ravel_pytree(jax.tree.map(lambda leaf: leaf[i], params))
        return jax.hessian(lambda x: fn(unravel(x), data[i]))(flat)

    return onp.stack([one(i) for i in range(data.shape[0])])


@pytest.fixture(scope="module")
def data():
    return jnp.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5], [-2.0, 1.5]])


@pytest.fixture(scope="module")
def quartic_point():
    key_a, key_b = jax.random.split(jax.random.key(3))
    params = {"a": jax.random.normal(key_a, (3, 2)), "b": jax.random.normal(key_b, (3, 2, 2))}
    return params, jnp.array([1.0, 2.0, 0.5])


def test_fit_many_compiles_nothing_for_a_new_function_of_the_same_code(data):
    weights, shift = jnp.array([1.0, 3.0]), jnp.array([0.5, -0.5])
    start = jnp.zeros_like(data)
    first = zdx_opt.fit_many(make_quadratic(weights, shift), start, data, **FIT)
    traced = TRACES["quadratic"]
    again = zdx_opt.fit_many(make_quadratic(weights, shift), start, data, **FIT)
    assert traced > 0 and TRACES["quadratic"] == traced
    onp.testing.assert_array_equal(again.params, first.params)
    onp.testing.assert_allclose(again.params, data + shift, atol=1e-12)  # a Newton step


def test_fit_many_uses_new_values_of_captured_arrays_without_compiling(data):
    start = jnp.zeros_like(data)
    zdx_opt.fit_many(make_quadratic(jnp.ones(2), jnp.zeros(2)), start, data, **FIT)
    traced = TRACES["quadratic"]
    weights, shift = jnp.array([2.0, 0.5]), jnp.array([-1.0, 4.0])
    fits = zdx_opt.fit_many(make_quadratic(weights, shift), start, data, **FIT)
    assert TRACES["quadratic"] == traced
    onp.testing.assert_allclose(fits.params, data + shift, atol=1e-12)
    direct = jax.vmap(make_quadratic(weights, shift))(start, data)  # the loss before step 1
    onp.testing.assert_allclose(fits.losses[:, 0], direct, rtol=1e-14)


def test_fit_many_compiles_nothing_for_new_data_and_starts(data):
    loss = make_quadratic(jnp.ones(2), jnp.zeros(2))
    settings = dict(FIT, block_size=2)
    zdx_opt.fit_many(loss, jnp.zeros_like(data), data, **settings)
    traced = TRACES["quadratic"]
    again = zdx_opt.fit_many(loss, jnp.ones_like(data), 2 * data, **settings)
    assert TRACES["quadratic"] == traced
    onp.testing.assert_allclose(again.params, 2 * data, atol=1e-12)


@pytest.mark.parametrize("vectorise", [False, True])
def test_hessian_many_uses_new_values_of_captured_arrays_without_compiling(
    quartic_point, vectorise
):
    params, data = quartic_point
    zdx_opt.hessian_many(make_quartic(jnp.ones(2)), params, data, vectorise=vectorise)
    traced = TRACES["quartic"]
    same = zdx_opt.hessian_many(make_quartic(jnp.ones(2)), params, data, vectorise=vectorise)
    weights = jnp.array([0.5, 3.0])
    changed = zdx_opt.hessian_many(make_quartic(weights), params, data, vectorise=vectorise)
    assert TRACES["quartic"] == traced
    expected = expected_hessians(make_quartic(jnp.ones(2)), params, data)
    onp.testing.assert_allclose(same, expected, rtol=1e-12, atol=1e-12)
    expected = expected_hessians(make_quartic(weights), params, data)
    onp.testing.assert_allclose(changed, expected, rtol=1e-12, atol=1e-12)


def test_hessian_many_equals_jax_hessian_per_data_set_for_a_pytree_of_arrays(quartic_point):
    params, data = quartic_point
    fn = make_quartic(jnp.array([2.0, 0.25]))
    hessians = zdx_opt.hessian_many(fn, params, data, block_size=2)
    assert hessians.shape == (3, 6, 6) and hessians.dtype == jnp.float64
    onp.testing.assert_allclose(hessians, expected_hessians(fn, params, data), rtol=1e-12)
    onp.testing.assert_array_equal(hessians, jnp.swapaxes(hessians, 1, 2))


def make_scaled(scale):
    def fn(p, d):
        TRACES["scaled"] += 1
        return scale * jnp.sum((p - d) ** 2)

    return fn


def test_a_captured_number_is_part_of_the_program(data):
    # A Python number is compared by value: another number compiles another program.
    points = jnp.zeros_like(data)
    eye = jnp.eye(2)[None].repeat(4, 0)
    onp.testing.assert_allclose(zdx_opt.hessian_many(make_scaled(2.0), points, data), 4.0 * eye)
    traced = TRACES["scaled"]
    onp.testing.assert_allclose(zdx_opt.hessian_many(make_scaled(3.0), points, data), 6.0 * eye)
    assert TRACES["scaled"] > traced
    traced = TRACES["scaled"]
    onp.testing.assert_allclose(zdx_opt.hessian_many(make_scaled(2.0), points, data), 4.0 * eye)
    assert TRACES["scaled"] == traced


class _Settings:
    """A plain object: its state lives in its ``__dict__``, which the rule does not compare."""

    def __init__(self, scale, target):
        self.scale = scale
        self.target = target


def test_a_function_reading_a_plain_object_gets_fresh_results_and_keeps_no_program(data):
    settings = _Settings(2.0, 1.0)

    def fn(p, d):
        return settings.scale * jnp.sum((p - settings.target * d) ** 2)

    points = jnp.zeros_like(data)
    held = _blocks._PROGRAM.held._cache_size()
    eye = jnp.eye(2)[None].repeat(4, 0)
    onp.testing.assert_allclose(zdx_opt.hessian_many(fn, points, data), 4.0 * eye)
    onp.testing.assert_allclose(zdx_opt.fit_many(fn, points, data, **FIT).params, data)
    settings.scale, settings.target = 3.0, -2.0
    onp.testing.assert_allclose(zdx_opt.hessian_many(fn, points, data), 6.0 * eye)
    onp.testing.assert_allclose(
        zdx_opt.fit_many(fn, points, data, **FIT).params, -2.0 * data, atol=1e-12
    )
    assert _blocks._PROGRAM.held._cache_size() == held


def test_a_plain_object_in_args_gets_fresh_results(data):
    settings = _Settings(2.0, 1.0)

    def fn(p, args):
        d, s = args
        return s.scale * jnp.sum((p - d) ** 2)

    points = jnp.zeros_like(data)
    args, axes = (data, settings), (0, None)
    eye = jnp.eye(2)[None].repeat(4, 0)
    onp.testing.assert_allclose(zdx_opt.hessian_many(fn, points, args, args_axes=axes), 4.0 * eye)
    settings.scale = 5.0
    onp.testing.assert_allclose(zdx_opt.hessian_many(fn, points, args, args_axes=axes), 10.0 * eye)


def test_a_function_needing_the_values_of_captured_arrays_is_traced_with_them(data):
    def make(weights):
        def fn(p, d):
            scale = float(onp.asarray(weights).sum())  # needs the value, not a tracer
            return scale * jnp.sum((p - d) ** 2)

        return fn

    points = jnp.zeros_like(data)
    eye = jnp.eye(2)[None].repeat(4, 0)
    onp.testing.assert_allclose(zdx_opt.hessian_many(make(jnp.ones(2)), points, data), 4.0 * eye)
    onp.testing.assert_allclose(
        zdx_opt.hessian_many(make(jnp.array([1.0, 2.0])), points, data), 6.0 * eye
    )
