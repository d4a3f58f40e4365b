"""Degrees of freedom: scalars of the data minus scalars of the parameters."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest

import zdx_stats as stats


@dataclasses.dataclass
class Model:
    """A module-like pytree: two data fields and one static field (not a leaf)."""

    weights: jax.Array
    bias: float
    name: str


jax.tree_util.register_dataclass(Model, data_fields=["weights", "bias"], meta_fields=["name"])


def test_every_leaf_counts_all_its_scalars():
    params = {"a": jnp.ones((2, 3)), "b": 1.0, "c": [jnp.zeros(4), 2], "d": True}
    data = (jnp.ones((5, 5)), {"x": jnp.ones(3)}, 7.0)
    assert stats.ddof(params, data) == (25 + 3 + 1) - (6 + 1 + 4 + 1 + 1)


def test_module_like_pytrees_count_their_array_and_number_fields():
    assert stats.ddof(Model(jnp.ones(3), 0.5, "m"), jnp.ones(10)) == 6


def test_the_result_may_be_zero_or_negative():
    assert stats.ddof(jnp.ones(5), jnp.ones(5)) == 0
    assert stats.ddof(jnp.ones(6), jnp.ones(5)) == -1


def test_nan_counts_as_data_unless_finite_only():
    data = jnp.array([1.0, jnp.nan, jnp.inf, 2.0, 3.0])
    assert stats.ddof(1.0, data) == 4
    assert stats.ddof(1.0, data, finite_only=True) == 2
    assert type(stats.ddof(1.0, data, finite_only=True)) is int


def test_finite_only_counts_over_a_pytree_of_data():
    data = {"blue": jnp.array([jnp.nan, 1.0]), "red": jnp.ones(3), "n": float("nan")}
    assert stats.ddof(jnp.ones(2), data, finite_only=True) == 4 - 2


def test_mask_selects_data_points_and_combines_with_finite_only():
    data = [jnp.array([1.0, jnp.nan, 3.0]), jnp.ones((2, 2))]
    mask = [jnp.array([True, True, False]), jnp.array([[True, False], [True, True]])]
    assert stats.ddof(1.0, data, mask=mask) == 5 - 1
    assert stats.ddof(1.0, data, mask=mask, finite_only=True) == 4 - 1


def test_under_jit_finite_only_gives_a_traced_count():
    f = jax.jit(lambda d: stats.ddof(jnp.ones(2), d, finite_only=True))
    assert int(f(jnp.array([1.0, jnp.nan, 2.0, 3.0]))) == 1
    # without a mask the count depends on shapes only: a plain int even when traced
    g = jax.jit(lambda d: jnp.asarray(stats.ddof(jnp.ones(2), d)) + 0 * d.sum())
    assert float(g(jnp.ones(4))) == 2


def test_a_leaf_that_is_not_a_number_is_named_by_its_path():
    with pytest.raises(TypeError, match=r"ddof: every leaf of params .*str 'x' at params\['n'\]"):
        stats.ddof({"a": jnp.ones(3), "n": "x"}, jnp.ones(10))
    with pytest.raises(TypeError, match=r"data\[1\]"):
        stats.ddof(1.0, [jnp.ones(2), object()])


def test_a_mask_must_match_the_data():
    data = jnp.ones(3)
    with pytest.raises(ValueError, match=r"mask leaf 0 has shape \(2,\).*\(3,\)"):
        stats.ddof(1.0, data, mask=jnp.array([True, False]))
    with pytest.raises(ValueError, match="same pytree structure"):
        stats.ddof(1.0, [data, data], mask=jnp.ones(3, bool))
    with pytest.raises(TypeError, match=r"mask must be boolean.*float"):
        stats.ddof(1.0, data, mask=jnp.ones(3))
