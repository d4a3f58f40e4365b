"""nuts runs warm-up and sampling of every chain in one compiled program, reused from call
to call, with a coarse progress bar, and counts its gradient evaluations."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import zdx_sample as zs
from zdx_batching import compat
from zdx_sample import _chains, _compiled, _prepare, _program, _progress, targets


def rotated_gaussian(dim=10, seed=0):
    """The issue's target (``zdx_sample.targets.rotated_gaussian``): scales 0.1 to 1,
    rotated; flat prior."""
    target = targets.rotated_gaussian(dim, seed)
    return target.log_likelihood, target.mode, target.mean, target.sigma


@pytest.fixture(scope="module")
def target():
    return rotated_gaussian()


@pytest.fixture(scope="module")
def one_chain(target):
    loglike, start, *_ = target
    return zs.nuts(loglike, start, num_warmup=1000, num_samples=4000, key=0, progress=False)


def test_one_chain_of_the_rotated_gaussian_has_its_widths_and_mean(target, one_chain):
    _, _, mu, sigma = target
    draws = np.asarray(one_chain.draws).reshape(-1, mu.size)
    assert float(jnp.max(one_chain.r_hat)) < 1.01
    assert float(jnp.min(one_chain.ess_bulk)) > 2000
    assert one_chain.num_divergences == 0
    # a sample standard deviation from ESS draws is off by about 1 / sqrt(2 ESS)
    np.testing.assert_allclose(draws.std(0), sigma, rtol=5 / math.sqrt(2 * 2000))
    se = sigma / np.sqrt(np.asarray(one_chain.ess_bulk))
    np.testing.assert_array_less(np.abs(draws.mean(0) - mu), 5 * se)


def test_gradient_evaluations_are_counted_per_draw_and_for_the_warmup(one_chain):
    steps = np.asarray(one_chain.integration_steps)
    assert steps.shape == (1, 4000) and steps.min() >= 1 and steps.max() <= 1023
    assert one_chain.num_gradient_evaluations == int(steps.sum()) + int(
        one_chain.warmup_gradients.sum()
    )
    assert int(one_chain.warmup_gradients[0]) > 1000  # at least one per warm-up step
    assert one_chain.step_size.shape == (1,) and 0 < float(one_chain.step_size[0]) < 2
    assert one_chain.method == "nuts"


_TRACES = []  # module-level: read by identity, so counting changes no capture


def test_a_second_call_reuses_the_compiled_programs(target):
    _, start, mu, _ = target

    def loglike(p):
        _TRACES.append(1)
        d = p["x"] - mu
        return -0.5 * d @ d

    first = zs.nuts(loglike, start, num_warmup=50, num_samples=50, key=1, progress=False)
    traced = len(_TRACES)
    again = zs.nuts(loglike, start, num_warmup=50, num_samples=50, key=2, progress=False)
    assert len(_TRACES) == traced
    assert not np.allclose(first.draws, again.draws)  # new key, new draws


class _DataLoglike(eqx.Module):
    """A likelihood holding its data, one per data set as in simulation studies; each trace
    by JAX is recorded in ``_TRACES``."""

    data: jax.Array

    def __call__(self, p):
        _TRACES.append(1)
        return -0.5 * jnp.sum(((p["x"] - self.data) / 0.2) ** 2)


@pytest.mark.parametrize("method", ["nuts", "mams"])
def test_new_data_with_optimise_reuses_the_compiled_programs(method):
    """Simulation-based calibration calls ``nuts(optimise=True)`` once per data set: the
    search for the mode and the sampler are compiled on the first call only."""
    settings = {"num_warmup": 50, "num_samples": 50, "optimise": True, "method": method}
    start = {"x": jnp.zeros(3)}
    zs.nuts(_DataLoglike(jnp.array([0.1, 0.2, 0.3])), start, key=1, progress=False, **settings)
    traced = len(_TRACES)
    data = jnp.array([1.0, -1.0, 0.5])
    again = zs.nuts(_DataLoglike(data), start, key=2, progress=False, **settings)
    assert len(_TRACES) == traced
    # the new data is used: the draws sit around it (posterior sigma 0.2)
    np.testing.assert_allclose(again.samples["x"].mean(0), data, atol=0.15)


def test_the_progress_bar_moves_a_few_dozen_times_and_ends_full(target, monkeypatch):
    _, start, mu, _ = target
    moves = []
    bars = []
    real_move = _progress._move

    def counting_move(done, divergences):
        moves.append(int(done))
        bars.append(_progress._OPEN[-1])
        real_move(done, divergences)

    monkeypatch.setattr(_progress, "_move", counting_move)

    def loglike(p):  # a new function: compiled afresh, with the patched callback
        return -0.5 * jnp.sum((p["x"] - mu) ** 2)

    zs.nuts(loglike, start, num_warmup=300, num_samples=700, key=3, progress=True)
    assert 10 <= len(moves) <= _progress.REPORTS_PER_RUN + 1
    assert moves == sorted(moves) and moves[-1] == 1000
    assert bars[-1].n == bars[-1].total == 1000


def test_many_chains_run_in_one_call(target):
    loglike, start, _, sigma = target
    res = zs.nuts(
        loglike, start, num_warmup=300, num_samples=300, num_chains=8, key=4, progress=False
    )
    assert res.chain_method == "vectorized"
    assert res.draws.shape == (8, 300, 10) and res.divergences.shape == (8,)
    assert res.step_size.shape == (8,) and res.integration_steps.shape == (8, 300)
    assert float(jnp.max(res.r_hat)) < 1.02
    firsts = np.asarray(res.draws[:, 0, 0])
    assert np.unique(firsts).size == 8  # every chain its own draws
    draws = np.asarray(res.draws).reshape(-1, 10)
    np.testing.assert_allclose(draws.std(0), sigma, rtol=0.1)


def test_chains_one_after_another_match_the_chains_run_together(target):
    loglike, start, *_ = target
    kwargs = dict(num_warmup=100, num_samples=100, num_chains=3, key=5, progress=False)
    together = zs.nuts(loglike, start, chain_method="vectorized", **kwargs)
    sequential = zs.nuts(loglike, start, chain_method="sequential", **kwargs)
    assert sequential.chain_method == "sequential"
    # the same keys and starts per chain: the same chains, up to rounding
    np.testing.assert_allclose(sequential.draws, together.draws, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": "hmc"}, ValueError, r"nuts: method must be one of .*'hmc'"),
        ({"target_accept_prob": 1.0}, ValueError, r"nuts: target_accept_prob .* \(0, 1\)"),
        ({"target_accept_prob": "high"}, TypeError, "nuts: target_accept_prob must be"),
        ({"max_tree_depth": 0}, ValueError, "nuts: max_tree_depth must be an integer >= 1"),
    ],
)
def test_bad_sampler_settings_are_refused(target, kwargs, error, match):
    loglike, start, *_ = target
    with pytest.raises(error, match=match):
        zs.nuts(loglike, start, progress=False, **kwargs)


def test_the_inference_data_carry_the_gradient_counts(one_chain):
    data = one_chain.to_inference_data()
    assert data.sample_stats["n_steps"].shape == (1, 4000)
    assert data.attrs["estimator"] == "nuts"


def _program_inputs(target, chains):
    """What ``run_chains`` hands the compiled program: a short run of ``chains`` chains."""
    loglike, start, *_ = target
    prepared = _prepare.prepare("nuts", loglike, start)
    density = _chains.LatentDensity(prepared.posterior.log_posterior(), prepared.latent_map)
    settings = _program.Settings("nuts", 60, 40, 0.8, 10, True, 0)
    dim = prepared.latent_map.dim
    starts = jax.random.normal(jax.random.key(1), (chains, dim))
    keys = jax.random.key_data(jax.random.split(jax.random.key(2), chains))
    return settings, density, starts, keys, jnp.zeros((), jnp.int32), 1


@pytest.mark.parametrize("chains", [1, 3])
def test_the_cpu_compile_option_changes_the_speed_only(target, chains):
    # The sampler's program is compiled with XLA's region-analysis copy insertion on CPU:
    # the draws must be the very same as those of the ordinary compile.
    inputs = _program_inputs(target, chains)
    plain = _compiled.Program(_chains._program, static_argnames=_chains.STATIC_ARGUMENTS)
    tuned, plain = _chains._SAMPLER.held(*inputs), plain.held(*inputs)
    assert tuned["latent"].shape[:2] == (chains, 40)
    for name in plain:
        np.testing.assert_array_equal(np.asarray(tuned[name]), np.asarray(plain[name]))


def test_the_compile_options_are_those_this_jaxlib_accepts():
    if jax.default_backend() != "cpu":
        assert _chains.compiler_options() is None
        return
    accepted = compat.supported_compile_options(_chains.CPU_COMPILER_OPTIONS, "cpu")
    assert _chains.compiler_options() == (accepted or None)
