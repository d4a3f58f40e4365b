"""Why do single parameters' pull widths leave [0.9, 1.1]? The estimator, or chance?

    python examples/results/calibrate-optics-pulls/analyse_pulls.py \\
        examples/results/calibrate-optics-n200/summary.json \\
        examples/results/calibrate-optics-n200-seed1/summary.json --out pulls.json

For each ``zdx-examples calibrate optics`` summary given, with the data sets simulated again
from its settings (the simulation is a function of the seed):

1. convergence: the Newton step ``H^-1 g`` of minus the log-likelihood left at each fit, in
   units of each parameter's sigma (0 at the maximum);
2. linearity: the pull each data set would have if the model were linear in the parameters
   (the noise projected by the Fisher matrix at the truth), against the fitted pulls; a
   correlation of 1 means the Laplace approximation is exact here and the pulls are the
   noise's;
3. more noise of the same generator: the pull widths of ``--more`` further data sets
   (linear pulls; the first 200 are the calibration's own), in blocks of the
   calibration's size;
4. joint tests against ``N(0, R)``, ``R`` the correlation of the parameters given by the
   Fisher matrix: the statistic ``T = sum_j (N - 1) (s_j^2 - 1)^2 / 2`` over the 16
   variances, and how often every ``s_j`` lies in [0.9, 1.1], both by Monte Carlo.
"""

from __future__ import annotations

import argparse
import json
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import zdx_opt  # noqa: E402
from zdx_examples import optics as ex  # noqa: E402
from zdx_examples._calibrate_optics import simulate_averaged  # noqa: E402
from zdx_examples._cli import filter_set  # noqa: E402
from zdx_examples._observation import Observation  # noqa: E402


def minus_loglike(params, args):
    return -ex.loglike_fn(params, args)


def variance_statistic(stds: np.ndarray, n: int) -> np.ndarray:
    """``sum_j (n - 1) (s_j^2 - 1)^2 / 2`` over the last axis (about chi2(16) if independent)."""
    return np.sum((n - 1) * (stds**2 - 1) ** 2 / 2, axis=-1)


def null_draws(correlation: np.ndarray, n: int, replications: int, seed: int) -> np.ndarray:
    """Pull widths ``(replications, parameters)`` of ``n`` draws from ``N(0, correlation)``."""
    rng = np.random.default_rng(seed)
    chol = np.linalg.cholesky(correlation)
    stds = np.empty((replications, correlation.shape[0]))
    for r in range(replications):
        draws = rng.standard_normal((n, correlation.shape[0])) @ chol.T
        stds[r] = draws.std(axis=0, ddof=1)
    return stds


def analyse(summary: dict, more: int, replications: int) -> dict:
    s = summary["settings"]
    n = s["n"]
    optics = ex.build_optics(
        filters=filter_set(s["filters"]),
        npix=s["npix"],
        psf_npixels=s["psf_npix"],
        n_zernike=s["n_zernike"],
    )
    truth = ex.true_parameters(optics, s["seed"])
    flat_truth, unravel = ravel_pytree(truth)
    if not np.allclose(flat_truth, summary["truth"]):
        raise ValueError("analyse: the settings do not give the summary's truth")
    seeds = s["seed"] * 100_000 + 1 + np.arange(n + more)
    everything = simulate_averaged(optics, truth, seeds, s["n_images"], s["read_noise"])
    observations = [o.set(["data", "error"], [o.data[:n], o.error[:n]]) for o in everything]

    # 1. convergence
    fits = jnp.asarray(summary["fits"])
    hessians = zdx_opt.hessian_many(
        minus_loglike, jax.vmap(unravel)(fits), (optics, observations), args_axes=(None, 0)
    )

    def gradient(x, arrays):
        one = [o.set(["data", "error"], list(pair)) for o, pair in zip(observations, arrays)]
        return jax.grad(lambda y: minus_loglike(unravel(y), (optics, one)))(x)

    arrays = [(o.data, o.error) for o in observations]
    grads = jax.jit(jax.vmap(gradient))(fits, arrays)
    newton = jnp.linalg.solve(hessians, grads[..., None])[..., 0]
    sigmas = jnp.sqrt(jnp.diagonal(jnp.linalg.inv(hessians), axis1=1, axis2=2))
    newton_in_sigma = np.asarray(newton / sigmas)

    # 2. linearity: noise projected by the Fisher matrix at the truth
    template = [Observation(0.0, 0.0, name) for name in optics.filters]
    error = jnp.stack([o.error[0] for o in everything])

    def image(x):
        p = unravel(x)
        return jnp.stack([o(p, optics) for o in template])

    jac = np.asarray(jax.jacfwd(lambda x: (image(x) / error).ravel())(flat_truth))
    cov = np.linalg.inv(jac.T @ jac)
    sigma_truth = np.sqrt(np.diag(cov))
    expected = np.asarray(image(flat_truth))
    noise = np.stack(
        [np.asarray((o.data - expected[k]) / o.error) for k, o in enumerate(everything)], axis=1
    )
    linear = noise.reshape(n + more, -1) @ jac @ cov / sigma_truth
    pulls = np.asarray(summary["pulls"])
    if pulls.shape[0] != n:
        raise ValueError("analyse: some fits were left out of the pulls; not handled here")

    # 3. further data sets of the same generator, in blocks of n
    blocks = linear[: (n + more) // n * n].reshape(-1, n, linear.shape[1]).std(axis=1, ddof=1)

    # 4. joint tests against N(0, R)
    correlation = cov / np.outer(sigma_truth, sigma_truth)
    null = null_draws(correlation, n, replications, seed=s["seed"])
    stds = pulls.std(axis=0, ddof=1)
    t_obs = float(variance_statistic(stds, n))
    t_null = variance_statistic(null, n)
    within = (null >= 0.9) & (null <= 1.1)
    inside = np.all(within, axis=1)
    names = summary["names"]
    return {
        "seed": s["seed"],
        "n": n,
        "names": names,
        "pull_std": stds.tolist(),
        "rms_newton_step_in_sigma": np.sqrt(np.mean(newton_in_sigma**2, axis=0)).tolist(),
        "max_abs_newton_step_in_sigma": float(np.max(np.abs(newton_in_sigma))),
        "sigma_at_truth_over_mean_sigma_of_fits": (
            sigma_truth / np.asarray(sigmas).mean(axis=0)
        ).tolist(),
        "correlation_fitted_vs_linear_pulls": [
            float(np.corrcoef(pulls[:, j], linear[:n, j])[0, 1]) for j in range(len(names))
        ],
        "more_data_sets": more,
        "pull_std_more_data_sets": linear[n:].std(axis=0, ddof=1).tolist(),
        "blocks_of_n": int(blocks.shape[0]),
        "blocks_with_every_std_in_0.9_1.1": int(np.sum(np.all(np.abs(blocks - 1) <= 0.1, axis=1))),
        "blocks_position_green_1_below_0.9": int(
            np.sum(blocks[:, names.index("position.green[1]")] < 0.9)
        ),
        "variance_statistic": t_obs,
        "variance_statistic_p_value": float(np.mean(t_null >= t_obs)),
        "null_fraction_every_std_in_0.9_1.1": float(np.mean(inside)),
        "null_expected_stds_outside_0.9_1.1": float(np.mean(np.sum(~within, axis=1))),
        "null_replications": replications,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summaries", nargs="+")
    parser.add_argument("--more", type=int, default=5000)
    parser.add_argument("--replications", type=int, default=20000)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    results = []
    for path in args.summaries:
        with open(path) as handle:
            result = analyse(json.load(handle), args.more, args.replications)
        results.append(result)
        print(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}, indent=1))
        for j, name in enumerate(result["names"]):
            print(
                f"  {name:18s} std {result['pull_std'][j]:.3f}  "
                f"next {args.more}: {result['pull_std_more_data_sets'][j]:.3f}  "
                f"newton/sigma {result['rms_newton_step_in_sigma'][j]:.1e}  "
                f"corr(fit, linear) {result['correlation_fitted_vs_linear_pulls'][j]:.6f}"
            )
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
