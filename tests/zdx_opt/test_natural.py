"""natural_gradient: an optax transformation g -> F^-1 g on a pytree of gradients."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import zdx_opt as opt


@pytest.fixture(scope="module")
def problem():
    params = {"a": jnp.array([1.0, -2.0]), "b": jnp.array(0.5), "c": {"d": jnp.ones((2, 2))}}
    n = ravel_pytree(params)[0].size  # 7
    k1, k2 = jr.split(jr.key(0))
    a = jr.normal(k1, (n, n))
    F = a @ a.T + 0.5 * jnp.eye(n)
    grads = ravel_pytree(params)[1](jr.normal(k2, (n,)))
    return params, F, grads


def test_step_is_the_hand_computed_natural_gradient(problem):
    params, F, grads = problem
    lr = 0.1
    optim = optax.chain(opt.natural_gradient(F, damping=0.0), optax.sgd(lr))
    updates, _ = optim.update(grads, optim.init(params))
    g, unravel = ravel_pytree(grads)
    expected = unravel(-lr * np.linalg.solve(np.asarray(F), np.asarray(g)))
    for got, want in zip(jax.tree_util.tree_leaves(updates), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-11)
    assert jax.tree_util.tree_structure(updates) == jax.tree_util.tree_structure(grads)


def test_damping_is_marquardt_scaled_by_the_diagonal(problem):
    params, F, grads = problem
    damping = 0.3
    ng = opt.natural_gradient(F, damping=damping)
    precond, _ = ng.update(grads, ng.init(params))
    g, _ = ravel_pytree(grads)
    damped = np.asarray(F) + damping * np.diag(np.diag(np.asarray(F)))
    np.testing.assert_allclose(ravel_pytree(precond)[0], np.linalg.solve(damped, g), rtol=1e-12)


def test_chain_equals_the_tutorials_manual_preconditioning(problem):
    # Tutorial section 5 multiplies the flat gradient by inv(F) before a mapped sgd.
    params, F, _ = problem
    target = ravel_pytree(params)[1](jnp.arange(7.0))
    grad_fn = jax.jit(
        jax.grad(lambda p: jnp.sum(jnp.cos(ravel_pytree(p)[0] - ravel_pytree(target)[0])))
    )
    C = jnp.linalg.inv(F)
    manual_optim, manual_state = opt.map_optimisers(
        params, {("a", "b", "c"): optax.sgd(0.1, momentum=0.5)}
    )
    chained = optax.chain(opt.natural_gradient(F, damping=0.0), optax.sgd(0.1, momentum=0.5))
    chained_state = chained.init(params)
    p_manual = p_chain = params
    for _ in range(10):
        G, unflat = ravel_pytree(grad_fn(p_manual))
        up, manual_state = manual_optim.update(unflat(jnp.dot(G, C)), manual_state)
        p_manual = optax.apply_updates(p_manual, up)
        up, chained_state = chained.update(grad_fn(p_chain), chained_state)
        p_chain = optax.apply_updates(p_chain, up)
    np.testing.assert_allclose(ravel_pytree(p_chain)[0], ravel_pytree(p_manual)[0], rtol=1e-9)


def test_callable_fisher_is_refreshed_every_k_steps_under_jit(problem):
    params, F, grads = problem
    # A Fisher matrix that depends on the parameters: F * (1 + a[0]^2).
    fisher_fn = lambda p: F * (1.0 + p["a"][0] ** 2)  # noqa: E731
    ng = opt.natural_gradient(fisher_fn, damping=0.0, refresh_every=3)
    update = jax.jit(ng.update)
    state = ng.init(params)
    g, _ = ravel_pytree(grads)
    used = 1.0 + params["a"][0] ** 2
    for step in range(7):
        p = jax.tree_util.tree_map(lambda x, s=step: x + s, params)  # a[0] = 1 + step
        if step % 3 == 0 and step > 0:
            used = 1.0 + p["a"][0] ** 2
        out, state = update(grads, state, p)
        expected = np.linalg.solve(np.asarray(F) * float(used), g)
        np.testing.assert_allclose(ravel_pytree(out)[0], expected, rtol=1e-11)
    assert int(state.count) == 7


def test_callable_fisher_needs_params(problem):
    params, F, grads = problem
    ng = opt.natural_gradient(lambda p: F)
    state = ng.init(params)
    with pytest.raises(ValueError, match="needs the parameters"):
        ng.update(grads, state)
    once = opt.natural_gradient(lambda p: F, refresh_every=None)
    once.update(grads, once.init(params))  # computed in init: no params needed


def test_near_singular_fisher_is_regularised_and_singular_is_refused(problem):
    params, _, grads = problem
    v = jr.normal(jr.key(1), (7, 2))
    rank2 = v @ v.T
    with pytest.raises(ValueError, match="positive definite"):
        opt.natural_gradient(rank2, damping=0.0)
    ng = opt.natural_gradient(rank2 + 1e-14 * jnp.eye(7), damping=1e-6)
    out, _ = ng.update(grads, ng.init(params))
    assert np.all(np.isfinite(ravel_pytree(out)[0]))
    # A callable Fisher that turns singular raises when the program runs.
    bad = opt.natural_gradient(lambda p: rank2 * 0.0, damping=0.0)
    with pytest.raises(Exception, match="not numerically positive definite"):
        jax.jit(bad.init)(params)


def test_bad_arguments_are_refused(problem):
    params, F, _ = problem
    with pytest.raises(ValueError, match="damping"):
        opt.natural_gradient(F, damping=-1.0)
    with pytest.raises(ValueError, match="refresh_every"):
        opt.natural_gradient(F, refresh_every=0)
    with pytest.raises(ValueError, match="symmetric"):
        opt.natural_gradient(F.at[0, 1].add(1.0))
    with pytest.raises(ValueError, match="NaN or inf"):
        opt.natural_gradient(F.at[0, 0].set(jnp.nan))
    ng = opt.natural_gradient(jnp.eye(3))
    with pytest.raises(ValueError, match="3 x 3 but the params have 7"):
        ng.init(params)
