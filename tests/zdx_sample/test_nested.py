"""nested_sampling: evidence within its reported error, posterior draws, exact call count."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import zdx_sample as zs


@pytest.fixture(scope="module")
def gauss(problems):
    return problems.correlated_gaussian(n=3, seed=2)


@pytest.fixture(scope="module")
def result(gauss):
    return zs.nested_sampling(gauss.loglike, gauss.prior, key=0, num_live=300, progress=False)


def test_evidence_within_three_reported_sigma(gauss, result):
    err = float(result.log_evidence_error)
    assert 0.05 < err < 0.3  # about sqrt(information / num_live)
    assert abs(float(result.log_evidence) - gauss.log_z) < 3 * err
    assert abs(err - math.sqrt(float(result.information) / 300)) < 0.5 * err


def test_information_is_the_prior_to_posterior_divergence(gauss, result):
    # for a Gaussian well inside a box: log V - n/2 log(2 pi e) - 1/2 log det Sigma
    expected = -gauss.log_z - 0.5 * gauss.n * math.log(2 * math.pi * math.e)
    expected -= 0.5 * np.linalg.slogdet(gauss.cov)[1]
    assert abs(float(result.information) - expected) < 0.3


def test_equally_weighted_samples_follow_the_posterior(gauss, result):
    x = np.column_stack([result.samples["x"], result.samples["y"]])
    assert x.shape == (result.num_samples, gauss.n)
    assert result.num_samples == int(result.ess_kish)
    assert result.num_samples > 300
    se = gauss.sigma / math.sqrt(result.num_samples)
    np.testing.assert_array_less(np.abs(x.mean(0) - gauss.mu), 5 * se)
    np.testing.assert_allclose(x.std(0), gauss.sigma, rtol=0.15)
    flat_mean = np.append(result.mean["x"], result.mean["y"])
    np.testing.assert_array_less(np.abs(flat_mean - gauss.mu), 5 * se)
    assert result.names == gauss.names


def test_weights_are_normalised(result):
    assert abs(float(jax.scipy.special.logsumexp(result.log_weights))) < 1e-10
    assert result.dead_points.shape[0] == result.log_weights.shape[0]


def test_likelihood_evaluations_are_counted_exactly():
    calls = []

    def loglike(p):
        jax.debug.callback(lambda v: calls.append(1), p["a"])
        return -0.5 * jnp.sum((p["a"] / 0.3) ** 2)

    prior = {"a": dist.Uniform(-2.0, 2.0).expand([2])}
    res = zs.nested_sampling(
        loglike, prior, key=1, num_live=20, num_delete=1, termination=0.1, progress=False
    )
    assert res.num_iterations > 10
    assert res.num_likelihood_evaluations == len(calls)


def test_num_samples_and_progress_bar(gauss, capsys):
    res = zs.nested_sampling(
        gauss.loglike,
        gauss.prior,
        key=2,
        num_live=300,
        num_samples=123,
        termination=0.1,
        progress=True,
    )
    assert res.samples["x"].shape == (123, gauss.n - 1)
    assert "nested sampling" in capsys.readouterr().err


def test_max_iterations_warns():
    prior = {"a": dist.Normal(0.0, 1.0)}
    with pytest.warns(RuntimeWarning, match="max_iterations"):
        zs.nested_sampling(
            lambda p: -0.5 * (p["a"] / 0.01) ** 2,
            prior,
            num_live=20,
            max_iterations=3,
            progress=False,
        )


@pytest.mark.slow
def test_live_point_counts_and_weights_match_blackjax(result):
    """The compiled weights follow blackjax's post-processing: the same live-point counts
    as ``compute_num_live`` and the same distribution of log Z as ``log_weights``."""
    from blackjax.ns.base import NSInfo, StateWithLogLikelihood
    from blackjax.ns.utils import compute_num_live, log_weights

    from zdx_sample._nested_weights import num_live_at_death, padded_weights

    death = jnp.asarray(result.log_likelihoods)
    # rebuild a plausible birth history: initial points (NaN), then births at earlier deaths
    birth = np.full(death.shape, np.nan)
    order = np.argsort(np.asarray(death))
    birth[order[300:]] = np.asarray(death)[order[: death.shape[0] - 300]]
    birth = jnp.asarray(birth)
    particles = StateWithLogLikelihood(result.dead_points, jnp.zeros_like(death), death, birth)
    info = NSInfo(particles, None)
    expected = compute_num_live(info)
    np.testing.assert_array_equal(num_live_at_death(birth, death), expected)
    # ties between a death and a birth: the death comes first
    tied = num_live_at_death(jnp.array([np.nan, np.nan, 1.0]), jnp.array([1.0, 2.0, 3.0]))
    tied_info = NSInfo(
        StateWithLogLikelihood(
            jnp.zeros((3, 1)),
            jnp.zeros(3),
            jnp.array([1.0, 2.0, 3.0]),
            jnp.array([np.nan, np.nan, 1.0]),
        ),
        None,
    )
    np.testing.assert_array_equal(tied, compute_num_live(tied_info))

    # padded to the next power of two (the padding must not change the weights)
    assert death.shape[0] & (death.shape[0] - 1) != 0
    mine_mean, mine_std, logw = padded_weights(jax.random.key(5), particles, 1000)
    assert logw.shape == death.shape and np.all(np.isfinite(logw))
    assert abs(float(jax.scipy.special.logsumexp(logw))) < 1e-10
    theirs = jax.scipy.special.logsumexp(log_weights(jax.random.key(6), info, shape=1000), axis=0)
    assert abs(float(mine_mean) - float(jnp.mean(theirs))) < 0.1 * float(mine_std)
    assert abs(float(mine_std) / float(jnp.std(theirs)) - 1) < 0.1


_TRACES = []


class _TracedLoglike(eqx.Module):
    """A likelihood holding its data as an array, as simulation studies build one per
    data set; each trace by JAX is recorded in ``_TRACES``."""

    centre: jax.Array

    def __call__(self, p):
        _TRACES.append(1)
        return -0.5 * jnp.sum(((p["a"] - self.centre) / 0.3) ** 2)


def test_a_new_likelihood_of_the_same_structure_reuses_the_compiled_programs():
    prior = {"a": dist.Normal(jnp.zeros(2), 1.0)}
    settings = {"key": 0, "num_live": 20, "progress": False}
    first = zs.nested_sampling(_TracedLoglike(jnp.array([0.1, -0.2])), prior, **settings)
    traced = len(_TRACES)
    again = zs.nested_sampling(_TracedLoglike(jnp.array([0.5, 0.4])), prior, **settings)
    assert len(_TRACES) == traced  # new data, no new trace
    # the new data is used: the posterior means follow the centres
    np.testing.assert_allclose(first.mean["a"], [0.1, -0.2], atol=0.25)
    np.testing.assert_allclose(again.mean["a"], [0.5, 0.4], atol=0.25)
