"""The warm-up of the HMC-family samplers: Stan's windows, dual averaging, the metric."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zdx_sample import _warmup


def test_windows_of_a_thousand_steps_are_stans():
    slow, end = _warmup.window_schedule(1000)
    assert not slow[:75].any() and not slow[-50:].any()
    assert slow[75:950].all()
    # slow windows of 25, 50, 100, 200 and the rest (500) steps
    np.testing.assert_array_equal(np.flatnonzero(end), [99, 149, 249, 449, 949])


def test_short_warmups_shrink_the_windows_or_adapt_the_step_size_only():
    slow, end = _warmup.window_schedule(100)
    assert slow.sum() == 100 - 15 - 10 and np.flatnonzero(end).tolist() == [89]
    slow, end = _warmup.window_schedule(19)
    assert not slow.any() and not end.any()


def _dual_averaging_error(target, steps):
    # acceptance exp(-step): the step size that reaches `target` is -log(target)
    state = _warmup.dual_averaging_start(jnp.asarray(1.0))

    def step(state, _):
        accept = jnp.exp(-jnp.exp(state.log_step))
        return _warmup.dual_averaging_update(state, accept, target), None

    state, _ = jax.lax.scan(step, state, None, length=steps)
    return abs(np.exp(float(state.log_step_avg)) / -np.log(target) - 1)


@pytest.mark.parametrize("target", [0.6, 0.8, 0.9])
def test_dual_averaging_converges_to_the_step_size_of_the_target_acceptance(target):
    # the error of dual averaging falls like 1 / sqrt(steps)
    coarse, fine = _dual_averaging_error(target, 2000), _dual_averaging_error(target, 8000)
    assert fine < coarse / 1.8
    assert fine < 0.015


def test_dual_averaging_treats_a_nan_acceptance_as_a_rejection():
    state = _warmup.dual_averaging_start(jnp.asarray(1.0))
    after = _warmup.dual_averaging_update(state, jnp.asarray(jnp.nan), 0.8)
    assert float(after.log_step) < float(state.mu) and np.isfinite(float(after.log_step))


def test_metric_factor_is_the_window_covariance_shrunk_towards_the_identity():
    rng = np.random.default_rng(0)
    dim, n = 3, 200
    x = rng.normal(size=(n, dim)) @ np.diag([0.5, 1.0, 2.0]) + 1.0
    state = _warmup.welford_start(dim, jnp.float64)
    for row in x:
        state = _warmup.welford_update(state, jnp.asarray(row))
    weight = dim + 5.0
    expected = (n * np.cov(x.T) + weight * np.eye(dim)) / (n + weight)
    factor = np.asarray(_warmup.metric_factor(state, dense=True))
    np.testing.assert_allclose(factor @ factor.T, expected, rtol=1e-10)
    assert np.allclose(factor, np.tril(factor))
    diagonal = np.asarray(_warmup.metric_factor(state, dense=False))
    np.testing.assert_allclose(diagonal**2, np.diag(np.diag(expected)), rtol=1e-10)
