"""The reuse rule (``zdx_batching.capture``): which calls run a program compiled before.

A callable is seen as a pytree: the arrays it captures are inputs, everything else (code,
numbers, the layout of containers, module-level names by identity) is compared by
equality. A new ``lambda`` around the same loss and data, as the tutorial writes before
each call, runs the program compiled for the first; anything the rule cannot prove
unchanged traces again. Every result is compared with a fresh ``jax.hessian``.
"""

import concurrent.futures
import functools
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zdx_batching as batching

X = {"x": jnp.array([0.3, -0.2, 0.5, 0.1])}
SCALE = 2.0


def scaled(x):
    return SCALE * jnp.sum(jnp.cosh(x) ** 2)


def helper(x):
    return jnp.sum(jnp.sin(x) * x)


def through_helper(p, data):
    return helper(p["x"] * data) + jnp.sum(p["x"] ** 4)


def via_helper(data):
    return lambda p: through_helper(p, data)


def loss(p, data, power):
    return jnp.sum((p["x"] - data) ** 2 * jnp.cosh(p["x"]) ** power)


def bound(data, power):
    """A new function each call, of the same code: as ``lambda p: loss(p, data, power)``
    written on one line of a loop."""
    return lambda p: loss(p, data, power)


def fresh(f):
    flat, unravel = jax.flatten_util.ravel_pytree(X)
    return jax.hessian(lambda z: f(unravel(z)))(flat)


def misses():
    return batching.cache_info()["misses"]


@pytest.fixture(autouse=True)
def empty_cache():
    batching.clear_cache()
    yield
    batching.clear_cache()


# --- what is an input, what is compared -----------------------------------------------------


def test_a_new_lambda_over_the_same_data_runs_the_program_again():
    data = jnp.array([1.0, 2.0, 3.0, 4.0])
    batching.hessian(bound(data, 2), X)
    before = misses()
    H, _ = batching.hessian(bound(data, 2), X)
    assert misses() == before and batching.cache_info()["hits"] == 1
    np.testing.assert_allclose(H, fresh(bound(data, 2)), rtol=1e-12)


def test_new_data_of_the_same_shape_runs_the_same_program_with_the_new_values():
    first, second = jnp.array([1.0, 2.0, 3.0, 4.0]), np.array([-4.0, 0.5, 9.0, 0.0])
    batching.hessian(bound(first, 2), X)
    H, _ = batching.hessian(bound(second, 2), X)
    assert misses() == 1
    np.testing.assert_allclose(H, fresh(bound(second, 2)), rtol=1e-12)
    second[1] = 7.0  # written in place: read afresh
    H, _ = batching.hessian(bound(second, 2), X)
    assert misses() == 1
    np.testing.assert_allclose(H, fresh(bound(second, 2)), rtol=1e-12)


@pytest.mark.parametrize(
    "changed",
    [
        lambda data: bound(data, 3),  # a number
        lambda data: bound(data, 2.0),  # int -> float
        lambda data: bound(jnp.stack([data, data]), 2),  # a shape
        lambda data: bound(data.astype(jnp.float32), 2),  # a dtype
        lambda data: lambda p, q=1: loss(p, data, 2),  # other code
        lambda data: lambda p, q=2.0: loss(p, data, q),  # a default
        lambda data: functools.partial(loss, data=data, power=3),  # a partial's argument
    ],
)
def test_every_kind_of_difference_traces_again_and_gives_its_own_matrix(changed):
    data = jnp.array([1.0, 2.0, 3.0, 4.0])
    batching.hessian(bound(data, 2), X)
    f = changed(data)
    H, _ = batching.hessian(f, X)
    assert misses() == 2
    np.testing.assert_allclose(H, fresh(f), rtol=1e-6)


def test_zero_and_minus_zero_are_different_numbers():
    def with_offset(offset):
        return lambda p: jnp.sum(jnp.arctan2(offset, p["x"]) * p["x"] ** 2)

    batching.hessian(with_offset(0.0), X)
    H, _ = batching.hessian(with_offset(-0.0), X)
    assert misses() == 2
    np.testing.assert_allclose(H, fresh(with_offset(-0.0)), rtol=1e-12)


def test_rebinding_a_module_level_number_is_seen():
    global SCALE
    batching.hessian(scaled, X["x"])
    try:
        SCALE = 5.0
        H, _ = batching.hessian(scaled, X["x"])
        np.testing.assert_allclose(H, jax.hessian(scaled)(X["x"]), rtol=1e-12)
    finally:
        SCALE = 2.0


def test_rebinding_a_module_level_function_that_f_calls_is_seen():
    global helper
    data = jnp.array([1.0, 0.5, -1.0, 2.0])
    original = helper
    batching.hessian(via_helper(data), X)
    try:
        helper = lambda x: jnp.sum(jnp.exp(x))  # noqa: E731
        H, _ = batching.hessian(via_helper(data), X)
        np.testing.assert_allclose(H, fresh(via_helper(data)), rtol=1e-12)
    finally:
        helper = original


def test_tuples_lists_and_dicts_of_the_same_contents_are_told_apart():
    a = jnp.ones(2)
    keys = {batching.capture(value).key for value in ((a, 1.0), [a, 1.0], {0: a, 1: 1.0})}
    assert len(keys) == 3


def test_a_capture_rebuilds_its_callable_with_new_arrays_in_their_places():
    a, b = jnp.ones(2), jnp.zeros(3)
    captured = batching.capture(lambda p: p * 0 + jnp.sum(a) + {"b": b, "a": a}["b"].sum())
    leaves, treedef = jax.tree_util.tree_flatten(captured)
    assert [leaf.shape for leaf in leaves] == [(2,), (3,)]
    rebuilt = jax.tree_util.tree_unflatten(treedef, [10 * jnp.ones(2), jnp.ones(3)])
    assert float(rebuilt(0.0)) == pytest.approx(23.0)
    assert float(captured(0.0)) == pytest.approx(2.0)  # the original is untouched


def test_a_capture_is_a_pytree_that_jax_jit_reuses_for_a_new_lambda():
    traces = []

    @jax.jit
    def apply(function, x):
        traces.append(1)
        return function(x)

    for k in (1.0, 2.0, 3.0):
        data = jnp.full(4, k)
        assert float(apply(batching.capture(lambda x: jnp.sum(x * data)), jnp.ones(4))) == 4 * k  # noqa: B023 (a new lambda per value, on purpose)
    assert len(traces) == 1


def test_an_equinox_module_and_its_bound_method_are_described_by_their_fields():
    class Model(eqx.Module):
        weights: jax.Array
        power: int = eqx.field(static=True)

        def nll(self, p):
            return jnp.sum(self.weights * p["x"] ** self.power)

    for weights in (jnp.arange(4.0), jnp.ones(4)):
        model = Model(weights, 4)
        assert batching.capture(model.nll).reusable
        H, _ = batching.hessian(model.nll, X)
        np.testing.assert_allclose(H, fresh(model.nll), rtol=1e-12)
    assert misses() == 1
    batching.hessian(Model(jnp.ones(4), 2).nll, X)  # a static field changed
    assert misses() == 2


# --- what the rule cannot prove unchanged ----------------------------------------------------


class Box:
    """A plain object: its state lives in a ``__dict__`` the rule does not walk."""

    def __init__(self, data):
        self.data = data

    def nll(self, p):
        return jnp.sum((p["x"] - self.data) ** 2 * jnp.cosh(p["x"]))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: Box(np.ones(4)).nll, "Box"),
        (lambda: lambda p, box=Box(np.ones(4)): box.nll(p), "Box"),  # noqa: B008
        (lambda: lambda p, cls=Box: cls(np.ones(4)).nll(p), "Box"),
        (lambda: iter([1.0, 2.0]), "iterator"),
        (lambda: {1: jnp.ones(2), "x": jnp.ones(2)}, "dict"),  # keys that cannot be sorted
        (lambda: np.array([object()]), "objects"),
    ],
)
def test_what_cannot_be_compared_by_equality_is_not_reusable(make, reason):
    captured = batching.capture(make())
    assert not captured.reusable and captured.leaves == ()
    assert reason.lower() in captured.reason.lower()
    assert captured.key != batching.capture(make()).key


def test_a_plain_object_is_traced_again_and_its_changes_are_seen():
    model = Box(np.array([1.0, 2.0, 3.0, 4.0]))
    batching.hessian(model.nll, X)
    model.data = np.array([10.0, 20.0, 30.0, 40.0])
    H, _ = batching.hessian(model.nll, X)
    assert misses() == 2 and batching.cache_info()["entries"] == 0
    np.testing.assert_allclose(H, fresh(model.nll), rtol=1e-12)


def test_a_function_that_reaches_itself_is_not_reusable_and_stays_right():
    def make(scale):
        def f(p, depth=1):
            if depth == 0:
                return scale * jnp.sum(p["x"] ** 4)
            return f(p, depth - 1)

        return f

    assert "itself" in batching.capture(make(1.0)).reason
    np.testing.assert_allclose(batching.hessian(make(3.0), X)[0], fresh(make(3.0)), rtol=1e-12)


def test_a_function_reading_an_iterator_is_traced_afresh_and_gives_fresh_results():
    scales = iter([2.0, 3.0])

    def f(x):
        return next(scales) * jnp.sum(x**2)

    x = jnp.ones(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        first, _ = batching.hessian(f, x)
        second, _ = batching.hessian(f, x)
    np.testing.assert_allclose(first, 4.0 * np.eye(2))
    np.testing.assert_allclose(second, 6.0 * np.eye(2))


def test_a_dict_whose_keys_cannot_be_sorted_is_traced_again_and_stays_right():
    data = {1: np.array([1.0, 2.0]), "x": np.array([3.0])}
    f = lambda p: jnp.sum(p**2 * data[1]) + jnp.sum(p) * data["x"][0]  # noqa: E731
    x = jnp.array([0.5, -0.5])
    first = batching.hessian(f, x)[0]
    data[1] = np.array([10.0, 20.0])
    np.testing.assert_allclose(batching.hessian(f, x)[0], np.diag([20.0, 40.0]))
    np.testing.assert_allclose(first, np.diag([2.0, 4.0]))


def test_calls_from_several_threads_each_get_their_own_matrix():
    datasets = [jnp.array([1.0, 2.0, 3.0, 4.0]) * k for k in (1.0, -2.0, 0.5, 3.0)]
    expected = [fresh(bound(data, 2)) for data in datasets]

    def worker(index):
        for _ in range(15):
            H, _ = batching.hessian(bound(datasets[index], 2), X)
            np.testing.assert_allclose(H, expected[index], rtol=1e-12)
        return index

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(worker, range(4))) == [0, 1, 2, 3]
    assert batching.cache_info()["entries"] == 1


def test_a_capture_that_is_not_reusable_makes_any_capture_holding_it_not_reusable():
    inner = batching.capture(Box(np.ones(4)).nll)
    assert not inner.reusable
    outer = batching.capture(lambda p: inner(p))
    assert not outer.reusable and outer.reason == inner.reason


def test_captured_jit_holds_one_program_for_reusable_captures_and_none_for_the_others():
    apply = batching.CapturedJit(lambda function, p: function(p))
    for data in (np.ones(4), 2 * np.ones(4)):
        f = bound(jnp.asarray(data), 2)
        np.testing.assert_allclose(apply(batching.capture(f), X), f(X), rtol=1e-12)
    assert apply.held._cache_size() == 1
    model = Box(np.arange(4.0))
    for value in (1.0, 5.0):
        model.data = np.full(4, value)
        np.testing.assert_allclose(apply(batching.capture(model.nll), X), model.nll(X), rtol=1e-12)
    assert apply.held._cache_size() == 1
