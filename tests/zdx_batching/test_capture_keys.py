"""How a call is described for the cache: the parts of its key that repeated calls compare."""

from __future__ import annotations

import gc
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import zdx_batching as batching
from zdx_batching._capture import Opaque, capture
from zdx_batching._capture_key import ById


class Box:
    """A plain object for identity parts."""


def test_an_identity_part_is_one_object_per_living_object():
    box = Box()
    assert ById(box) is ById(box)
    assert ById(box) != ById(Box())


def test_an_identity_part_is_forgotten_when_its_object_dies():
    box = Box()
    part = ById(box)
    del box
    gc.collect()
    assert part.get() is None
    assert ById(Box()) is not part  # whatever address the new object gets


def test_an_object_that_cannot_be_weakly_referenced_keeps_its_part():
    namespace = {"a": 1.0}
    assert ById(namespace) is ById(namespace)
    assert ById(namespace).get() is namespace


def test_tuples_lists_and_dicts_of_the_same_contents_are_told_apart():
    a = jnp.ones(2)
    keys = {repr(capture(value).key) for value in ((a, 1.0), [a, 1.0], {0: a, 1: 1.0})}
    assert len(keys) == 3


def test_a_dict_is_described_in_sorted_key_order_as_jax_flattens_it():
    a, b = jnp.ones(2), jnp.zeros(3)
    described = capture({"b": b, "a": a})
    assert [leaf.shape for leaf in described.leaves] == [(2,), (3,)]
    rebuilt = described.rebuild(iter(described.leaves))
    assert rebuilt.keys() == {"a", "b"}
    assert rebuilt["b"] is b


def test_a_dict_whose_keys_cannot_be_sorted_is_not_cached_but_still_right():
    with pytest.raises(Opaque):
        capture({1: jnp.ones(2), "x": jnp.ones(2)})
    data = {1: np.array([1.0, 2.0]), "x": np.array([3.0])}
    f = lambda p: jnp.sum(p**2 * data[1]) + jnp.sum(p) * data["x"][0]  # noqa: E731
    x = jnp.array([0.5, -0.5])
    first = batching.hessian(f, x)[0]
    data[1] = np.array([10.0, 20.0])
    np.testing.assert_allclose(batching.hessian(f, x)[0], np.diag([20.0, 40.0]))
    np.testing.assert_allclose(first, np.diag([2.0, 4.0]))


def test_an_iterator_is_opaque_never_flattened_as_a_pytree_leaf():
    with pytest.raises(Opaque, match="iterator"):
        capture(iter([1.0, 2.0]))
    with pytest.raises(Opaque, match="iterator"):
        capture(x for x in [1.0])


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
