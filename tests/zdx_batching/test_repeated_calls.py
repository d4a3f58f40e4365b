"""Repeated calls take the shortcut (a matcher per stored program) and are never stale.

A new ``lambda`` around the same loss and data, as the tutorial writes before each call,
finds its program without being described again; whatever a description would key on
(a closure's numbers, module-level names, the shapes of captured arrays) still makes the
call go the general way, and the result equals a fresh ``jax.hessian``.
"""

import concurrent.futures

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zdx_batching as batching
from zdx_batching import _cache, _early
from zdx_batching._shortcut import NoMatch, build

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


def hits():
    return batching.cache_info()["hits"]


@pytest.fixture(autouse=True)
def empty_cache():
    batching.clear_cache()
    yield
    batching.clear_cache()


def test_a_new_lambda_over_the_same_data_takes_the_shortcut():
    data = jnp.array([1.0, 2.0, 3.0, 4.0])
    batching.hessian(bound(data, 2), X)
    setting_count = len(_cache._shortcuts)
    assert setting_count == 1
    before = hits()
    H, _ = batching.hessian(bound(data, 2), X)
    assert hits() == before + 1
    np.testing.assert_allclose(H, fresh(bound(data, 2)), rtol=1e-12)


def test_new_data_of_the_same_shape_reuses_the_program_with_the_new_values():
    first, second = jnp.array([1.0, 2.0, 3.0, 4.0]), jnp.array([-4.0, 0.5, 9.0, 0.0])
    batching.hessian(bound(first, 2), X)
    H, _ = batching.hessian(bound(second, 2), X)
    assert batching.cache_info()["entries"] == 1
    np.testing.assert_allclose(H, fresh(bound(second, 2)), rtol=1e-12)


def test_a_changed_number_in_the_closure_is_a_new_program():
    data = jnp.array([1.0, 2.0, 3.0, 4.0])
    batching.hessian(bound(data, 2), X)
    H, _ = batching.hessian(bound(data, 3), X)
    np.testing.assert_allclose(H, fresh(bound(data, 3)), rtol=1e-12)
    assert batching.cache_info()["entries"] == 2


def test_rebinding_a_module_level_number_is_seen():
    global SCALE
    batching.hessian(scaled, X["x"])
    try:
        SCALE = 5.0
        H, _ = batching.hessian(scaled, X["x"])
        flat_expected = jax.hessian(scaled)(X["x"])
        np.testing.assert_allclose(H, flat_expected, rtol=1e-12)
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


def test_a_matcher_refuses_every_kind_of_difference():
    data = np.array([1.0, 2.0])
    f = bound(data, 2)
    matcher = build((f, None), frozenset({np.ndarray, type(jnp.zeros(1))}))
    leaves: list = []
    matcher((f, None), leaves)
    assert len(leaves) == 1 and leaves[0] is data
    other_shape = np.array([1.0, 2.0, 3.0])
    other_dtype = np.array([1, 2])
    for changed in (
        (bound(data, 3), None),  # a number
        (bound(other_shape, 2), None),  # a shape
        (bound(other_dtype, 2), None),  # a dtype
        (bound(jnp.asarray(data), 2), None),  # numpy -> JAX
        (bound(data, 2.0), None),  # int -> float
        (lambda p, q=1: loss(p, data, 2), None),  # other code
        (f, (1.0,)),  # args
    ):
        with pytest.raises(NoMatch):
            matcher(changed, [])


def test_what_the_matchers_do_not_know_goes_the_general_way():
    class Model:
        def __init__(self, data):
            self.data = data

        def nll(self, p):
            return jnp.sum((p["x"] - self.data) ** 2 * jnp.cosh(p["x"]))

    assert build(Model(jnp.ones(4)).nll, frozenset({np.ndarray})) is None
    model = Model(np.array([1.0, 2.0, 3.0, 4.0]))
    batching.hessian(model.nll, X)
    model.data = np.array([10.0, 20.0, 30.0, 40.0])
    H, _ = batching.hessian(model.nll, X)
    np.testing.assert_allclose(H, fresh(model.nll), rtol=1e-12)


def test_a_program_found_by_its_matcher_is_the_most_recently_used():
    data = jnp.array([1.0, 2.0, 3.0, 4.0])
    batching.hessian(bound(data, 2), X)
    first = list(_cache._programs.values())[-1]
    batching.hessian(bound(data, 3), X)
    assert list(_cache._programs.values())[-1] is not first
    batching.hessian(bound(data, 2), X)  # by its matcher
    assert list(_cache._programs.values())[-1] is first


def test_a_call_like_the_last_starts_early_and_gives_the_fresh_matrix(monkeypatch):
    agreed = []
    original = _early.Attempt.agrees

    def recorded(self, program, inputs):
        agreed.append(original(self, program, inputs))
        return agreed[-1]

    monkeypatch.setattr(_early.Attempt, "agrees", recorded)
    datasets = [jnp.array([1.0, 2.0, 3.0, 4.0]) * k for k in (1.0, -2.0, 0.5, 3.0)]
    for data in datasets:
        H, _ = batching.hessian(bound(data, 2), X)
        np.testing.assert_allclose(H, fresh(bound(data, 2)), rtol=1e-12)
    # the first call compiles; from the second (or the third) on, calls start early
    assert len(agreed) == 3 and agreed[1:] == [True, True]


def test_an_early_start_that_the_check_does_not_confirm_is_dropped(monkeypatch):
    data = jnp.array([1.0, 2.0, 3.0, 4.0])
    batching.hessian(bound(data, 3), X)
    (other,) = _cache._programs.values()  # the program of another function, same shapes
    for _ in range(2):  # a program served by the shortcut: the next call may start early
        batching.hessian(bound(data, 2), X)
    started = []

    def start(inputs):
        started.append(inputs)
        return other._run(*inputs)

    monkeypatch.setattr(other, "start", start)
    lookup = _cache.shortcut

    def wrong_guess(setting, value, count=True):
        found = lookup(setting, value, count)
        return (other, found[1]) if found is not None and not count else found

    monkeypatch.setattr(_cache, "shortcut", wrong_guess)
    H, _ = batching.hessian(bound(data, 2), X)
    assert len(started) == 1  # the wrong program did start early...
    np.testing.assert_allclose(H, fresh(bound(data, 2)), rtol=1e-12)  # ...and was dropped
    assert not np.allclose(fresh(bound(data, 3)), fresh(bound(data, 2)), rtol=1e-3)


def test_a_call_with_other_options_or_another_point_does_not_start_early(monkeypatch):
    data = jnp.array([1.0, 2.0, 3.0, 4.0])
    for _ in range(2):
        batching.hessian(bound(data, 2), X)
    starts = []
    monkeypatch.setattr(
        _early.Attempt, "agrees", lambda self, program, inputs: starts.append(self.result) or False
    )
    batching.hessian(bound(data, 2), X, nbatches=2)
    batching.hessian(bound(data, 2), {"x": X["x"].astype(jnp.float32)})
    with pytest.raises(ValueError, match="nbatches must be at least 1"):
        batching.hessian(bound(data, 2), X, nbatches=0)
    assert all(result is None for result in starts)


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
