"""gauss_newton: least squares with nothing to tune, solved exactly on a sparse Fisher matrix."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zdx_opt

NPIX = 6
STACK = jax.random.uniform(jax.random.key(5), (4, NPIX, NPIX)) + 0.5
TRUTH = {
    "flux": jnp.array(2.0),
    "width": jnp.array(0.3),
    "response": 1.0 + 0.05 * jax.random.normal(jax.random.key(6), (NPIX, NPIX)),
}
SIGMA = 0.02


def model(p):
    """Images whose shape depends non-linearly on a global width, times a response map."""
    shaped = STACK * jnp.exp(-STACK / p["width"]) + jnp.tanh(p["width"]) * STACK**2
    return p["flux"] * shaped * p["response"]


DATA = model(TRUTH) + SIGMA * jax.random.normal(jax.random.key(7), STACK.shape)
START = {"flux": jnp.array(1.5), "width": jnp.array(0.45), "response": jnp.ones((NPIX, NPIX))}
PRIOR = {"response": (1.0, 0.05)}


def residuals(p):
    return (model(p) - DATA) / SIGMA


def objective(p):
    prior = 0.5 * jnp.sum(((p["response"] - 1.0) / 0.05) ** 2)
    return 0.5 * jnp.sum(residuals(p) ** 2) + prior


@pytest.fixture(scope="module")
def fit():
    return zdx_opt.gauss_newton(residuals, START, prior=PRIOR)


def test_converges_to_the_minimum_without_a_learning_rate(fit):
    assert fit.converged and fit.steps <= 30
    flat_gradient = jax.flatten_util.ravel_pytree(jax.grad(objective)(fit.params))[0]
    assert float(jnp.max(jnp.abs(flat_gradient))) < 1e-6 * float(objective(fit.params))
    assert fit.chi2 == pytest.approx(float(jnp.sum(residuals(fit.params) ** 2)), rel=1e-12)
    assert fit.chi2_history[-1] < 0.05 * fit.chi2_history[0]
    assert len(fit.seconds) == len(fit.chi2_history)


def test_error_bars_are_the_inverse_curvature_diagonal(fit):
    flat, unravel = jax.flatten_util.ravel_pytree(fit.params)

    def flat_residuals(v):
        return jnp.ravel(residuals(unravel(v)))

    J = jax.jacfwd(flat_residuals)(flat)
    precision = J.T @ J + np.diag(
        jax.flatten_util.ravel_pytree(
            {"flux": 0.0, "response": jnp.full((NPIX, NPIX), 400.0), "width": 0.0}
        )[0]
    )
    expected = np.sqrt(np.diag(np.linalg.inv(precision)))
    got = jax.flatten_util.ravel_pytree(fit.errors)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert fit.factor.dense.size == 2  # flux and width eliminated last


def test_dense_curvature_gives_the_same_fit(fit):
    dense = zdx_opt.gauss_newton(residuals, START, prior=PRIOR, curvature="dense")
    for name in ("flux", "width", "response"):
        np.testing.assert_allclose(dense.params[name], fit.params[name], rtol=1e-7)


def test_degenerate_problem_without_a_prior_says_what_to_do():
    # The flux and the response's mean are degenerate without the prior.
    with pytest.raises(ValueError, match="give them a prior"):
        zdx_opt.gauss_newton(residuals, START, max_steps=3)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"prior": {"nope": (0.0, 1.0)}}, ValueError, r"'nope'.*\['flux', 'response', 'width'\]"),
        ({"prior": {"flux": 1.0}}, TypeError, r"prior\['flux'\] must be a \(mean, sd\) pair"),
        ({"prior": {"flux": (1.0, 0.0)}}, ValueError, "every sd finite and > 0"),
        ({"prior": {"response": (np.ones(3), 1.0)}}, ValueError, "does not broadcast"),
        ({"curvature": "exact"}, ValueError, "curvature must be one of"),
        ({"max_steps": 0}, ValueError, "max_steps"),
    ],
)
def test_bad_arguments_are_named(options, error, match):
    with pytest.raises(error, match=match):
        zdx_opt.gauss_newton(residuals, START, **options)
