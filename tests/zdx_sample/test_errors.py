"""Bad input gets a clear error naming what is wrong, never a silent NaN result."""

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import zdx_sample as zs


def loglike(p):
    return -0.5 * jnp.sum((p["a"] / 0.2) ** 2) - 0.5 * (p["b"] / 0.5) ** 2


PARAMS = {"a": jnp.zeros(3), "b": jnp.asarray(0.0)}
PRIOR = {"a": dist.Uniform(-5.0, 5.0).expand([3]), "b": dist.Normal(0.0, 10.0)}


@pytest.mark.parametrize(
    "prior, match",
    [
        ({"a": dist.Uniform(-5.0, 5.0).expand([3])}, r"no prior for \['b'\]"),
        (
            {**PRIOR, "c": dist.Normal(0.0, 1.0)},
            r"a prior for \['c'\], which `params` does not have",
        ),
        (
            {**PRIOR, "a": dist.Uniform(-5.0, 5.0)},
            r"'a': the distribution has shape \(\), the parameter \(3,\)",
        ),
        ({**PRIOR, "b": 3.0}, r"'b' is a float"),
    ],
)
@pytest.mark.parametrize("estimator", [zs.laplace, zs.nuts, zs.variational])
def test_prior_that_does_not_match_the_parameters(estimator, prior, match):
    with pytest.raises((ValueError, TypeError), match=match):
        estimator(loglike, PARAMS, prior)


def test_prior_that_is_not_distributions_for_nested_sampling():
    with pytest.raises(TypeError, match=r"numpyro distribution, but 'a.0' is a float"):
        zs.nested_sampling(loglike, {"a": (0.0, 1.0), "b": dist.Normal(0.0, 1.0)})


def test_improper_prior_for_evidence():
    improper = {**PRIOR, "b": dist.ImproperUniform(dist.constraints.real, (), ())}
    with pytest.raises(ValueError, match=r"improper distribution \(ImproperUniform\) at \['b'\]"):
        zs.nested_sampling(loglike, improper)
    res = zs.laplace(loglike, PARAMS, improper, importance_samples=0)
    assert np.all(np.isfinite(res.covariance))  # the approximation itself is fine
    with pytest.raises(ValueError, match=r"improper .* at \['b'\], so the evidence is not defined"):
        _ = res.log_evidence
    with pytest.raises(ValueError, match="has no evidence"):
        zs.compare({"model": res})


@pytest.mark.parametrize("estimator", [zs.laplace, zs.nuts, zs.variational])
def test_likelihood_nan_at_the_start_point(estimator):
    bad = lambda p: loglike(p) + jnp.log(p["b"] - 1.0)  # noqa: E731  NaN at b = 0
    with pytest.raises(
        ValueError, match=r"`log_likelihood` returned nan at the start point `params`"
    ):
        estimator(bad, PARAMS, PRIOR)


def test_likelihood_nan_at_the_prior_draws():
    bad = lambda p: loglike(p) + jnp.log(p["b"])  # noqa: E731  NaN for b < 0
    with pytest.raises(ValueError, match=r"NaN or \+inf at \d+ of 50 initial draws from the prior"):
        zs.nested_sampling(bad, PRIOR, num_live=50, progress=False)


def test_start_point_outside_the_prior():
    with pytest.raises(ValueError, match=r"outside the support of `prior` at \['a'\]"):
        zs.laplace(loglike, {"a": jnp.array([0.0, 6.0, 0.0]), "b": jnp.asarray(0.0)}, PRIOR)


def test_fisher_not_positive_definite():
    fisher = np.diag([25.0, 25.0, -1.0, 4.0])
    with pytest.raises(
        ValueError,
        match=r"laplace: `fisher` plus the prior's curvature, scaled to unit diagonal, must be "
        r"positive definite, got 1 of 4 .* mostly along \['a\[2\]'",
    ):
        zs.laplace(loglike, PARAMS, PRIOR, fisher=fisher)
    with pytest.raises(
        ValueError, match="nuts: `fisher`, scaled to unit diagonal, must be positive definite"
    ):
        zs.nuts(loglike, PARAMS, fisher=np.zeros((4, 4)))


def test_hessian_not_positive_definite_away_from_the_mode():
    # a double well: the Hessian at the saddle between the wells is indefinite
    well = lambda p: -((p["x"] ** 2 - 1.0) ** 2).sum()  # noqa: E731
    with pytest.raises(
        ValueError,
        match=r"laplace: the Hessian of the negative log posterior at `params`, scaled to unit "
        r"diagonal, must be positive definite.*optimise=True",
    ):
        zs.laplace(well, {"x": jnp.zeros(2)})
    # starting beside a well, optimise=True finds a mode and all is well
    res = zs.laplace(well, {"x": jnp.array([0.8, 1.3])}, optimise=True)
    np.testing.assert_allclose(res.mean["x"], [1.0, 1.0], atol=1e-6)


def test_fisher_of_the_wrong_shape_or_not_symmetric():
    with pytest.raises(
        ValueError, match=r"laplace: fisher must have shape \(4, 4\), got shape \(3, 3\)"
    ):
        zs.laplace(loglike, PARAMS, fisher=np.eye(3))
    with pytest.raises(ValueError, match="laplace: fisher must be symmetric"):
        zs.laplace(loglike, PARAMS, fisher=np.eye(4) + np.triu(np.ones((4, 4)), 1))
    with pytest.raises(ValueError, match="laplace: fisher must have finite entries"):
        zs.laplace(loglike, PARAMS, fisher=np.full((4, 4), np.nan))


def test_other_bad_arguments():
    with pytest.raises(TypeError, match="laplace: log_likelihood must be a function"):
        zs.laplace("not a function", PARAMS)
    with pytest.raises(TypeError, match=r"\['a'\] has dtype int"):
        zs.laplace(loglike, {"a": jnp.zeros(3, int), "b": 0.0})
    with pytest.raises(ValueError, match="must return a scalar"):
        zs.laplace(lambda p: p["a"], PARAMS)
    with pytest.raises(ValueError, match="nested_sampling: num_live must be an integer >= 2"):
        zs.nested_sampling(loglike, PRIOR, num_live=1)
    with pytest.raises(ValueError, match="nested_sampling: num_delete must be smaller than num_"):
        zs.nested_sampling(loglike, PRIOR, num_live=10, num_delete=10)
    with pytest.raises(ValueError, match=r"nested_sampling: termination must be a number in \(0,"):
        zs.nested_sampling(loglike, PRIOR, termination=2.0)
    with pytest.raises(ValueError, match="nuts: num_samples must be an integer >= 4"):
        zs.nuts(loglike, PARAMS, num_samples=2)
    with pytest.raises(TypeError, match="nuts: key must be"):
        zs.nuts(loglike, PARAMS, key="seed")
    with pytest.raises(ValueError, match="laplace: df must be a finite number > 0"):
        zs.laplace(loglike, PARAMS, PRIOR, df=-1.0)
    with pytest.raises(ValueError, match="variational: learning_rate must be"):
        zs.variational(loglike, PARAMS, learning_rate=0.0)
