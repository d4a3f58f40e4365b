"""map_optimisers: one optax optimiser per parameter, group or dotted path."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import zdx_opt as opt


def _run(optim, state, params, grad_fn, steps):
    for _ in range(steps):
        updates, state = optim.update(grad_fn(params), state)
        params = optax.apply_updates(params, updates)
    return params, state


def _array_leaves(tree):
    return [x for x in jax.tree_util.tree_leaves(tree) if eqx.is_array(x) and x.ndim > 0]


def test_tutorial_groups_match_separate_sgd_runs():
    # The tutorial's mapping: ("mean", "std") share sgd, "power" has a delayed sgd.
    params = {"mean": jnp.array([2.0, -3.0]), "std": jnp.array([0.5, 2.0]), "power": jnp.ones(2)}
    grad_fn = lambda p: jax.tree_util.tree_map(lambda x: jnp.sin(x) + 0.3, p)  # noqa: E731
    optimisers = {
        ("mean", "std"): optax.sgd(0.002, momentum=0.5),
        "power": optax.sgd(opt.delay(0.005, 5), momentum=0.5),
    }
    optim, state = opt.map_optimisers(params, optimisers)
    got, _ = _run(optim, state, params, grad_fn, 20)

    # The same, written out by hand: one optimiser per group on its own subtree.
    expected = dict(params)
    for names, optimiser in (
        (("mean", "std"), optax.sgd(0.002, momentum=0.5)),
        (("power",), optax.sgd(opt.delay(0.005, 5), momentum=0.5)),
    ):
        sub = {k: params[k] for k in names}
        sub, _ = _run(optimiser, optimiser.init(sub), sub, grad_fn, 20)
        expected.update(sub)
    for k in params:
        np.testing.assert_array_equal(got[k], expected[k])
    # "power" did not move during the delay but did afterwards.
    assert not np.allclose(got["power"], params["power"])


def test_unmapped_parameters_stay_fixed_and_carry_no_state():
    params = {"a": jnp.arange(3.0), "b": jnp.ones((2, 2)), "c": jnp.array(5.0)}
    grad_fn = lambda p: jax.tree_util.tree_map(lambda x: x + 1.0, p)  # noqa: E731
    optim, state = opt.map_optimisers(params, {"a": optax.adam(0.1)})
    # adam keeps mu and nu for "a" only: two arrays of shape (3,) and nothing else.
    assert [x.shape for x in _array_leaves(state)] == [(3,), (3,)]
    final, _ = _run(optim, state, params, grad_fn, 300)
    np.testing.assert_array_equal(final["b"], params["b"])
    np.testing.assert_array_equal(final["c"], params["c"])
    np.testing.assert_allclose(final["a"], -1.0, atol=1e-5)  # adam reached x + 1 = 0


def test_dotted_paths_reach_into_nested_dicts_and_most_specific_wins():
    params = {
        "wfe": jnp.zeros(3),
        "position": {"blue": jnp.zeros(2), "red": jnp.zeros(2), "green": jnp.zeros(2)},
    }
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    optimisers = {
        "position": optax.sgd(1.0),
        "position.blue": optax.sgd(10.0),
        "wfe": optax.sgd(0.5),
    }
    optim, state = opt.map_optimisers(params, optimisers)
    updates, _ = optim.update(grads, state)
    np.testing.assert_array_equal(updates["position"]["blue"], -10.0 * jnp.ones(2))
    np.testing.assert_array_equal(updates["position"]["red"], -1.0 * jnp.ones(2))
    np.testing.assert_array_equal(updates["wfe"], -0.5 * jnp.ones(3))

    # Only one leaf mapped: the rest of the nested dict stays fixed.
    optim, state = opt.map_optimisers(params, {"position.red": optax.sgd(1.0)})
    updates, _ = optim.update(grads, state)
    np.testing.assert_array_equal(updates["position"]["red"], -jnp.ones(2))
    for leaf in (updates["wfe"], updates["position"]["blue"], updates["position"]["green"]):
        np.testing.assert_array_equal(leaf, jnp.zeros_like(leaf))


def test_a_tuple_group_is_one_pytree_for_its_optimiser():
    params = {"x": jnp.array([3.0]), "y": jnp.array([4.0]), "z": jnp.array([4.0])}
    grads = params
    optim, state = opt.map_optimisers(params, {("x", "y"): optax.clip_by_global_norm(1.0)})
    updates, _ = optim.update(grads, state)
    # The joint norm of (3, 4) is 5: both are scaled by 1/5 together.
    np.testing.assert_allclose(updates["x"], [0.6])
    np.testing.assert_allclose(updates["y"], [0.8])
    np.testing.assert_array_equal(updates["z"], [0.0])
    assert set(state.inner_states) == {"x,y", "<fixed>"}


def test_works_on_equinox_modules_and_under_jit():
    class Model(eqx.Module):
        slope: jax.Array
        offset: jax.Array

    params = Model(jnp.array(1.0), jnp.array(2.0))
    optim, state = opt.map_optimisers(params, {"offset": optax.sgd(0.1)})
    grads = Model(jnp.array(1.0), jnp.array(1.0))
    updates, state = jax.jit(optim.update)(grads, state)
    assert float(updates.slope) == 0.0
    assert float(updates.offset) == pytest.approx(-0.1)


def test_integer_parameters_get_float_state():
    _, state = opt.map_optimisers({"n": 3}, {"n": optax.sgd(0.1, momentum=0.9)})
    (trace,) = [x for x in jax.tree_util.tree_leaves(state) if eqx.is_array(x)]
    assert jnp.issubdtype(trace.dtype, jnp.floating)


def test_strict_names_the_parameters_without_optimiser():
    params = {"a": 1.0, "b": {"c": 2.0, "d": 3.0}}
    with pytest.raises(ValueError, match=r"'b\.d'"):
        opt.map_optimisers(params, {"a": optax.sgd(1.0), "b.c": optax.sgd(1.0)}, strict=True)
    opt.map_optimisers(params, {("a", "b"): optax.sgd(1.0)}, strict=True)  # all covered


def test_bad_mappings_are_refused_clearly():
    params = {"a": 1.0, "b": 2.0}
    with pytest.raises(ValueError, match=r"'nope'.*not in `params`.*'a', 'b'"):
        opt.map_optimisers(params, {"nope": optax.sgd(1.0)}, strict=True)
    with pytest.raises(ValueError, match="two optimisers"):
        opt.map_optimisers(params, {"a": optax.sgd(1.0), ("a", "b"): optax.sgd(2.0)})
    with pytest.raises(TypeError, match="GradientTransformation"):
        opt.map_optimisers(params, {"a": 0.1})
    with pytest.raises(TypeError, match="names"):
        opt.map_optimisers(params, {1: optax.sgd(1.0)})
    with pytest.raises(TypeError, match="dict"):
        opt.map_optimisers(params, [optax.sgd(1.0)])


def test_unknown_names_are_ignored_with_a_warning_unless_strict():
    # zodiax 0.5 accepts optimisers for names that are not parameters when strict=False
    params = {"a": jnp.ones(2), "b": jnp.zeros(1)}
    with pytest.warns(UserWarning, match=r"'zz'.*not in `params`.*ignored"):
        optim, state = opt.map_optimisers(params, {"a": optax.sgd(1.0), "zz": optax.adam(1.0)})
    assert set(state.inner_states) == {"a", "<fixed>"}
    updates, _ = optim.update({"a": jnp.ones(2), "b": jnp.ones(1)}, state, params)
    assert jnp.array_equal(updates["a"], -jnp.ones(2))
    assert jnp.array_equal(updates["b"], jnp.zeros(1))
    with pytest.warns(UserWarning) as warned:  # a group of unknown names has no state
        _, state = opt.map_optimisers(params, {"a": optax.sgd(1.0), ("zz", "yy"): optax.sgd(1.0)})
    assert set(state.inner_states) == {"a", "<fixed>"}
    messages = [str(w.message) for w in warned]
    assert any("'zz'" in m for m in messages) and any("'yy'" in m for m in messages)
