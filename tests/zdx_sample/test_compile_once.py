"""Every estimator reuses its compiled programs for a new likelihood of the same code and
equal captures (``zdx_batching.capture``), with the values of the arrays it captures,
and traces afresh (keeping nothing) a likelihood whose captures the rule cannot describe.

Each likelihood counts how often JAX traces it in the module-level counter ``TRACES``: a
module-level name is read by identity under the reuse rule, so counting changes nothing
that a likelihood captures (a counter captured in its closure would, and would force a
new trace by design).
"""

import collections

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

import zdx_batching
import zdx_sample as zs
from zdx_sample import _compiled

TRACES: collections.Counter = collections.Counter()
SIGMA = 0.2
DATA_1 = jnp.array([0.3, -0.2, 0.5])
DATA_2 = jnp.array([-0.4, 0.6, 0.1])
START = {"x": jnp.array([0.3, -0.2, 0.5])}
PRIOR = {"x": dist.Uniform(-2.0, 2.0).expand([3])}


def _gaussian(p, data, name):
    TRACES[name] += 1
    return -0.5 * jnp.sum(((p["x"] - data) / SIGMA) ** 2)


def likelihood_of(data, name):
    """A new function object at every call, of the same code, capturing ``data``."""
    return lambda p: _gaussian(p, data, name)


def _nuts(loglike):
    res = zs.nuts(loglike, START, PRIOR, num_warmup=150, num_samples=100, key=1, progress=False)
    return res.draws.reshape(-1, 3)


def _laplace(loglike):
    res = zs.laplace(loglike, START, PRIOR, optimise=True, importance_samples=200, key=1)
    return jnp.concatenate(
        [res.mean["x"], res.covariance.ravel(), res.corrected_log_evidence[None]]
    )


def _variational(loglike):
    res = zs.variational(
        loglike,
        START,
        PRIOR,
        optimise=True,
        num_steps=50,
        elbo_samples=100,
        importance_samples=100,
        key=1,
        progress=False,
    )
    return jnp.concatenate([res.mean["x"], res.covariance.ravel(), res.elbo[None]])


def _nested(loglike):
    res = zs.nested_sampling(loglike, PRIOR, num_live=40, num_samples=200, key=1, progress=False)
    return res.samples["x"]


ESTIMATORS = {"nuts": _nuts, "laplace": _laplace, "variational": _variational, "nested": _nested}


def posterior_mean(name, values):
    """The posterior mean of ``x`` from what the estimator's runner returned."""
    return np.mean(values, axis=0) if name in ("nuts", "nested") else np.asarray(values[:3])


# The posterior mean of each estimator is within this of the data (posterior sigma 0.2;
# nested sampling with 40 live points and nuts with 100 draws are rough).
MEAN_TOLERANCE = {"nuts": 0.15, "laplace": 1e-6, "variational": 0.05, "nested": 0.2}


@pytest.fixture(scope="module", params=list(ESTIMATORS))
def first_run(request):
    """Each estimator run once on ``DATA_1`` (compiling its programs)."""
    name = request.param
    values = ESTIMATORS[name](likelihood_of(DATA_1, name))
    return name, values, TRACES[name]


def test_a_new_lambda_of_the_same_code_and_data_is_not_traced_again(first_run):
    name, first, traces = first_run
    assert traces >= 1
    again = ESTIMATORS[name](likelihood_of(DATA_1, name))
    assert TRACES[name] == traces
    np.testing.assert_array_equal(np.asarray(again), np.asarray(first))  # the same seed
    np.testing.assert_allclose(posterior_mean(name, first), DATA_1, atol=MEAN_TOLERANCE[name])


def test_new_data_of_the_same_shape_gives_the_new_posterior_without_tracing(first_run):
    name, _, _ = first_run
    traces = TRACES[name]
    values = ESTIMATORS[name](likelihood_of(DATA_2, name))
    assert TRACES[name] == traces
    np.testing.assert_allclose(posterior_mean(name, values), DATA_2, atol=MEAN_TOLERANCE[name])


class Holder:
    """A plain object: its state lives in its ``__dict__``, which the rule does not compare."""

    def __init__(self, data):
        self.data = data


def _held_entries():
    return sum(program.held._cache_size() for program in _compiled.PROGRAMS)


def test_a_likelihood_reading_a_plain_object_is_traced_afresh_and_never_stale(first_run):
    name = first_run[0]
    counter = f"{name} reading a plain object"
    holder = Holder(DATA_1)
    loglike = lambda p: _gaussian(p, holder.data, counter)  # noqa: E731
    entries, batching_entries = _held_entries(), zdx_batching.cache_info()["entries"]
    first = ESTIMATORS[name](loglike)
    traces = TRACES[counter]
    np.testing.assert_allclose(posterior_mean(name, first), DATA_1, atol=MEAN_TOLERANCE[name])
    holder.data = DATA_2  # the same object, changed in place
    values = ESTIMATORS[name](loglike)
    assert TRACES[counter] > traces  # traced afresh
    np.testing.assert_allclose(posterior_mean(name, values), DATA_2, atol=MEAN_TOLERANCE[name])
    # nothing was kept for it: no entry in the held programs, nor in zdx_batching's
    assert _held_entries() == entries
    assert zdx_batching.cache_info()["entries"] == batching_entries


def test_a_likelihood_that_needs_its_data_concrete_still_works():
    name = "a likelihood that needs its data concrete"
    table = np.array([0.3, -0.2, 0.5])  # read with numpy: its values must be known

    def make():
        return lambda p: _gaussian(p, jnp.asarray(np.cumsum(table)), name)

    first = _laplace(make())
    traces = TRACES[name]
    again = _laplace(make())
    assert TRACES[name] == traces
    np.testing.assert_array_equal(np.asarray(again), np.asarray(first))
    np.testing.assert_allclose(first[:3], np.cumsum(table), atol=1e-6)
