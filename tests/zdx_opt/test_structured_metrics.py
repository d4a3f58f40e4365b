"""natural_gradient and fit_many with a structured (sparse) or matrix-free Fisher matrix:
the same steps as with the dense matrix, exactly (sparse) or to the CG tolerance."""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import optax
import pytest
import scipy.sparse as sp

import zdx_base
import zdx_batching as zb
import zdx_opt
from zdx_opt import _metric

NPIX = 6  # 36 scalars: above dense_size, so the response's pattern is detected
STACK = jax.random.uniform(jax.random.key(3), (3, NPIX, NPIX)) + 0.5
PARAMS = {
    "flux": jnp.array(2.0),
    "response": 1.0 + 0.01 * jax.random.normal(jax.random.key(5), (NPIX, NPIX)),
    "tilt": jnp.array(0.1),
}
N = 2 + NPIX * NPIX


def residuals(p, stack=STACK):
    """A detector-like model over its errors, and a prior on the pixel response as
    residuals (it resolves the degeneracy of the response's mean against the flux)."""
    model = p["flux"] * stack * (1.0 + p["tilt"] * stack) * p["response"]
    return jnp.concatenate([jnp.ravel(model) / 0.05, jnp.ravel(p["response"] - 1.0) / 0.05])


def flat(tree):
    return np.asarray(zdx_base.ravel(tree).flat)


@pytest.fixture(scope="module")
def metric():
    sparse = zb.sparse_fisher(residuals, PARAMS)
    dense = np.asarray(sparse.todense())
    gradient = zdx_base.ravel(PARAMS)[1](jax.random.normal(jax.random.key(1), (N,)))
    return sparse, dense, gradient


def step(transform, gradient, params=None, jit=True):
    update = jax.jit(transform.update) if jit else transform.update
    out, state = update(gradient, transform.init(PARAMS), params)
    return flat(out), state


@pytest.mark.parametrize("damping", [0.0, 1e-3])
def test_sparse_metric_gives_the_dense_step_to_rounding(metric, damping):
    sparse, dense, gradient = metric
    expected, _ = step(zdx_opt.natural_gradient(jnp.asarray(dense), damping=damping), gradient)
    for given in (sparse, sparse.to_scipy()):
        got, state = step(zdx_opt.natural_gradient(given, damping=damping), gradient)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())
        assert isinstance(state, zdx_opt.SparseNaturalGradientState)


def test_operator_metric_gives_the_dense_step_to_the_cg_tolerance(metric):
    _, dense, gradient = metric
    damping = 1e-3
    expected, _ = step(zdx_opt.natural_gradient(jnp.asarray(dense), damping=damping), gradient)
    operator = zb.fisher_operator(residuals, PARAMS)
    transform = zdx_opt.natural_gradient(
        operator, damping=damping, fisher_diagonal=np.diag(dense), rtol=1e-11
    )
    got, state = step(transform, gradient)
    assert isinstance(state, zdx_opt.MatrixFreeNaturalGradientState)
    assert float(state.residual) < 1e-9 and 0 < int(state.steps) <= N
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-8 * np.abs(expected).max())
    # A Fisher-vector product, without damping: CG on F itself.
    exact = np.linalg.solve(dense, flat(gradient))
    product = jnp.asarray(dense)
    fvp = zdx_opt.natural_gradient(lambda p: lambda v: product @ v, damping=0.0)
    got, state = step(fvp, gradient, PARAMS)
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-6 * np.abs(exact).max())
    assert float(state.residual) < 1e-7


def test_refreshed_sparse_and_operator_metrics_follow_the_parameters_under_jit(metric):
    _, _, gradient = metric
    transform = zb.sparse_fisher_fn(residuals)
    sparse = zdx_opt.natural_gradient(transform, damping=1e-4, refresh_every=2)
    dense = zdx_opt.natural_gradient(
        lambda p: zb.fisher(residuals, p)[0], damping=1e-4, refresh_every=2
    )
    diagonal = lambda p: jnp.diag(zb.fisher(residuals, p)[0])  # noqa: E731
    operator = zdx_opt.natural_gradient(
        lambda p: zb.fisher_operator(residuals, p),
        damping=1e-4,
        refresh_every=2,
        fisher_diagonal=diagonal,
        rtol=1e-11,
    )
    states = [t.init(PARAMS) for t in (sparse, dense, operator)]
    updates = [jax.jit(t.update) for t in (sparse, dense, operator)]
    for k in range(4):
        params = dict(PARAMS, flux=PARAMS["flux"] + 0.3 * k, tilt=PARAMS["tilt"] * (1 + k))
        outs = []
        for i, update in enumerate(updates):
            out, states[i] = update(gradient, states[i], params)
            outs.append(flat(out))
        scale = np.abs(outs[1]).max()
        np.testing.assert_allclose(outs[0], outs[1], rtol=0, atol=1e-10 * scale)
        np.testing.assert_allclose(outs[2], outs[1], rtol=0, atol=1e-8 * scale)
    refreshed = dict(PARAMS, flux=PARAMS["flux"] + 0.6, tilt=PARAMS["tilt"] * 3)  # at k = 2
    np.testing.assert_allclose(flat(states[2].anchor), flat(refreshed), rtol=0)


def test_an_unchanged_sparse_metric_is_factorised_once_and_vmaps(metric, monkeypatch):
    sparse, dense, _ = metric
    made = []
    original = zb.SchurFactor

    def counting(*args, **kwargs):
        made.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(zb, "SchurFactor", counting)
    transform = zdx_opt.natural_gradient(sparse, damping=1e-6)
    state = transform.init(PARAMS)
    update = jax.jit(transform.update)
    batch = jax.random.normal(jax.random.key(2), (4, N))
    many, _ = jax.vmap(lambda g: update(g, state))(batch)
    assert len(made) == 1  # at construction; every solve after it reuses the factorisation
    damped = dense + 1e-6 * np.diag(np.diag(dense))
    np.testing.assert_allclose(many, np.linalg.solve(damped, np.asarray(batch).T).T, rtol=1e-9)


def test_one_natural_step_of_a_linear_model_lands_on_the_least_squares_solution():
    design = jnp.asarray(sp.random(30, 12, density=0.2, random_state=1).toarray()) + jnp.eye(30, 12)
    data = jnp.arange(30.0) / 10

    def linear_residuals(p):
        return design @ p["x"] - data

    start = {"x": jnp.zeros(12)}
    loss = lambda p: 0.5 * jnp.sum(linear_residuals(p) ** 2)  # noqa: E731
    optim = optax.chain(
        zdx_opt.natural_gradient(zb.sparse_fisher(linear_residuals, start), damping=0.0),
        optax.sgd(1.0),
    )
    updates, _ = jax.jit(optim.update)(jax.grad(loss)(start), optim.init(start))
    solution = np.linalg.lstsq(np.asarray(design), np.asarray(data), rcond=None)[0]
    np.testing.assert_allclose(start["x"] + updates["x"], solution, rtol=1e-10)


def test_bad_metrics_are_refused_with_the_argument_named(metric):
    sparse, dense, _ = metric
    with pytest.raises(TypeError, match="natural_gradient: fisher must be an"):
        zdx_opt.natural_gradient("fisher")
    with pytest.raises(ValueError, match="square Fisher matrix, got a sparse matrix of shape"):
        zdx_opt.natural_gradient(sp.random(4, 3, density=0.5))
    with pytest.raises(ValueError, match="must be symmetric"):
        zdx_opt.natural_gradient(sp.csr_matrix(np.triu(np.ones((3, 3)))))
    with pytest.raises(ValueError, match="not numerically positive definite"):
        zdx_opt.natural_gradient(sp.diags([1.0, -1.0, 1.0]), damping=0.0)
    with pytest.raises(ValueError, match="applies to a matrix-free fisher only"):
        zdx_opt.natural_gradient(sparse, rtol=1e-6)
    with pytest.raises(ValueError, match="rtol must be"):
        zdx_opt.natural_gradient(lambda p: lambda v: v, rtol=2.0)
    with pytest.raises(ValueError, match="must act on flat vectors of the 38 parameters"):
        zdx_opt.natural_gradient(
            lambda p: lx.MatrixLinearOperator(jnp.eye(3), lx.symmetric_tag)
        ).init(PARAMS)
    with pytest.raises(ValueError, match="tagged symmetric"):
        zdx_opt.natural_gradient(lx.MatrixLinearOperator(jnp.asarray(dense)))
    with pytest.raises(ValueError, match=r"fisher_diagonal must have shape \(38,\)"):
        zdx_opt.natural_gradient(lambda p: lambda v: v, fisher_diagonal=jnp.ones(3)).init(PARAMS)
    with pytest.raises(ValueError, match="Fisher matrix is 38 x 38 but the params have 3"):
        zdx_opt.natural_gradient(sparse).init({"x": jnp.ones(3)})


def test_singular_or_wrong_metrics_met_inside_jit_raise_when_the_program_runs(metric):
    sparse, _, gradient = metric
    zero = zb.SparseMatrix(
        sparse.data * 0.0, sparse.indices, sparse.shape, sparse.names, sparse.mismatch
    )
    with pytest.raises(Exception, match="not numerically positive definite"):
        jax.jit(zdx_opt.natural_gradient(lambda p: zero, damping=0.0).init)(PARAMS)
    wrong = zb.SparseMatrix(sparse.data, sparse.indices, sparse.shape, sparse.names, jnp.array(0.1))
    with pytest.raises(Exception, match="sparsity pattern is wrong"):
        jax.jit(zdx_opt.natural_gradient(lambda p: wrong).init)(PARAMS)
    negative = zdx_opt.natural_gradient(lambda p: lambda v: -v, damping=0.0)
    with pytest.raises(Exception, match="not positive definite"):
        jax.jit(negative.update)(gradient, negative.init(PARAMS), PARAMS)


# --- fit_many -----------------------------------------------------------------------------

SETS = 3
STACKS = jax.random.uniform(jax.random.key(7), (SETS, 2, 3, 3)) + 0.5


def small_residuals(p, args):
    stack, data = args
    model = p["flux"] * stack * p["response"]
    return jnp.concatenate([jnp.ravel(model - data) / 0.05, jnp.ravel(p["response"] - 1.0) / 0.1])


TRUTH = {
    "flux": jnp.array([1.0, 2.0, 3.0]),
    "response": 1 + 0.05 * jax.random.normal(jax.random.key(8), (SETS, 3, 3)),
}
DATA = jax.vmap(lambda p, s: p["flux"] * s * p["response"])(TRUTH, STACKS)
DATA = DATA + 0.05 * jax.random.normal(jax.random.key(9), DATA.shape)


def small_loss(p, args):
    return 0.5 * jnp.sum(small_residuals(p, args) ** 2)


def dense_fisher(p, args):
    flat_p, unravel, _ = zdx_base.ravel(p)
    jac = jax.jacfwd(lambda x: small_residuals(unravel(x), args))(flat_p)
    return jac.T @ jac


def product_fisher(p, args):
    flat_p, unravel, _ = zdx_base.ravel(p)
    _, forward = jax.linearize(lambda x: small_residuals(unravel(x), args), flat_p)
    backward = jax.linear_transpose(forward, flat_p)
    return lambda v: backward(forward(v))[0]


def test_fit_many_with_a_structured_or_matrix_free_fisher_equals_dense():
    start = {"flux": jnp.full(SETS, 1.5), "response": jnp.ones((SETS, 3, 3))}
    settings = dict(steps=6, learning_rate=0.8, momentum=0.0, refresh_every=2, damping=0.0)
    dense = zdx_opt.fit_many(small_loss, start, (STACKS, DATA), fisher_fn=dense_fisher, **settings)
    sparse = zdx_opt.fit_many(
        small_loss,
        start,
        (STACKS, DATA),
        fisher_fn=zb.sparse_fisher_fn(small_residuals),
        **settings,
    )
    free = zdx_opt.fit_many(
        small_loss, start, (STACKS, DATA), fisher_fn=product_fisher, rtol=1e-12, **settings
    )
    np.testing.assert_allclose(sparse.losses, dense.losses, rtol=1e-10)
    np.testing.assert_allclose(free.losses, dense.losses, rtol=1e-8)
    for fits in (sparse, free):
        np.testing.assert_allclose(fits.params["response"], dense.params["response"], rtol=1e-8)
    np.testing.assert_array_equal(sparse.solve_residual, 0.0)
    assert np.all(free.solve_residual < 1e-9)
    assert np.all(np.asarray(dense.loss) < 0.1 * np.asarray(dense.losses[:, 0]))


def test_fit_many_refuses_bad_cg_options():
    with pytest.raises(ValueError, match="fit_many: max_steps"):
        zdx_opt.fit_many(small_loss, {"flux": jnp.ones(SETS)}, (STACKS, DATA), max_steps=0)


def test_metric_forms_are_told_apart():
    assert _metric.metric_form("f", "x", np.eye(2)) == _metric.DENSE
    assert _metric.metric_form("f", "x", sp.eye(2)) == _metric.SPARSE
    assert _metric.metric_form("f", "x", lambda v: v) == _metric.OPERATOR
