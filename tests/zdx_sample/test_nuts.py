"""nuts: latent-space NUTS whose draws, in physical units, have the posterior's widths."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zdx_sample._nuts import choose_chain_method


@pytest.fixture(scope="module")
def result(problems, gauss):
    return problems.nuts(
        gauss, num_warmup=300, num_samples=1000, num_chains=2, key=jax.random.key(0)
    )


def test_samples_are_a_pytree_in_physical_units(gauss, result):
    assert result.samples["x"].shape == (2000, gauss.n - 1)
    assert result.samples["y"].shape == (2000,)
    assert result.draws.shape == (2, 1000, gauss.n)
    assert result.names == gauss.names
    np.testing.assert_array_equal(result.draws[1, 0, :-1], result.samples["x"][1000])


def test_marginal_widths_within_ten_percent(gauss, result):
    draws = np.asarray(result.draws).reshape(-1, gauss.n)
    np.testing.assert_allclose(draws.std(0), gauss.sigma, rtol=0.1)
    np.testing.assert_allclose(result.sigma["x"], gauss.sigma[:-1], rtol=0.1)
    se = gauss.sigma / np.sqrt(np.asarray(result.ess_bulk))
    np.testing.assert_array_less(np.abs(draws.mean(0) - gauss.mu), 5 * se)
    np.testing.assert_allclose(np.cov(draws.T), gauss.cov, atol=0.15 * np.max(gauss.cov))


def test_diagnostics_per_named_scalar(gauss, result):
    assert result.r_hat.shape == (gauss.n,) and result.ess_bulk.shape == (gauss.n,)
    assert float(jnp.max(result.r_hat)) < 1.02
    assert float(jnp.min(result.ess_bulk)) > 300  # whitened: nearly independent draws
    assert result.divergences.shape == (2,) and result.num_divergences == 0
    table = result.diagnostics()
    assert list(table) == list(gauss.names)
    assert set(table["y"]) == {"mean", "sd", "r_hat", "ess_bulk"}
    text = result.summary()
    assert "x[2]" in text and "2 chain(s) x 1000 draws, 0 divergence(s)" in text


def test_whitening_map_round_trips(gauss, result):
    latent = result.latent_map
    P = latent.projection
    fisher = np.linalg.inv(gauss.cov)
    np.testing.assert_allclose(P.T @ fisher @ P, np.eye(gauss.n), atol=1e-9)
    np.testing.assert_allclose(latent.x0, gauss.mu, atol=1e-14)


def test_log_density_of_the_draws(gauss, result):
    x = result.draws[0, :5]
    params = {"x": x[:, :-1], "y": x[:, -1]}
    expected = jax.vmap(
        lambda p: (
            gauss.loglike(p)
            + sum(
                jnp.sum(d.log_prob(v))
                for d, v in ((gauss.prior["x"], p["x"]), (gauss.prior["y"], p["y"]))
            )
        )
    )(params)
    np.testing.assert_allclose(result.log_density[0, :5], expected, rtol=1e-10)


def test_chain_method_follows_the_devices():
    assert choose_chain_method(1, None) == "sequential"
    many = jax.local_device_count() + 1
    assert choose_chain_method(many, None) == "vectorized"
    assert choose_chain_method(jax.local_device_count(), None) in ("parallel", "sequential")
    assert choose_chain_method(3, "sequential") == "sequential"
    with pytest.raises(ValueError, match="chain_method"):
        choose_chain_method(2, "threads")


def test_single_chain_gets_a_split_r_hat(problems, gauss):
    res = problems.nuts(gauss, num_warmup=100, num_samples=200, key=1)
    assert res.chain_method == "sequential"
    assert np.all(np.isfinite(res.r_hat)) and float(jnp.max(res.r_hat)) < 1.1


@pytest.mark.slow
def test_chains_run_in_parallel_over_devices(tmp_path):
    script = textwrap.dedent(
        """
        import jax, jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)
        import zdx_sample as zs
        assert jax.local_device_count() == 2
        loglike = lambda p: -0.5 * jnp.sum((p["a"] / 0.5) ** 2)
        res = zs.nuts(loglike, {"a": jnp.zeros(2)}, num_warmup=100, num_samples=300,
                      num_chains=2, progress=False)
        print(res.chain_method, res.draws.shape, float(res.draws.std()))
        """
    )
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    method, *_, std = out.stdout.split()
    assert method == "parallel"
    assert abs(float(std) - 0.5) < 0.1
