"""The accuracy and speed targets of zdx-sample, measured on posteriors with known answers.

    python benchmarks/sample_targets.py            # all targets, prints a table
    python benchmarks/sample_targets.py --json out.json

1. A 10-dimensional correlated Gaussian likelihood (a normalised density in the
   parameters) under a uniform prior box of +-10 marginal sigmas: log Z = -log V (the
   truncated mass is below 1e-20).
   - laplace: exact to 1e-6;
   - nested_sampling: within 3 reported sigma, reported sigma below 0.3, in under a
     minute on 2 CPU cores, the first call (compilation) included;
   - nuts: marginal widths within 10 %;
   - variational: ELBO and corrected log Z (reported, no target).
2. A product of logistic densities (heavier tails than a Gaussian) under a uniform box
   of +-40 scales, log Z exact from the logistic CDF:
   - laplace: the importance-corrected evidence within 0.05.

Each run is a fresh process, so the nested-sampling time includes compiling; no
persistent compilation cache is used. Exits with status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import zdx_sample as zs  # noqa: E402


def correlated_gaussian(n=10, seed=0, box=10.0):
    t = zs.targets.correlated_gaussian(n, seed, box)
    return t.log_likelihood, t.prior, t.mode, t.log_evidence, t.sigma


def logistic_product(n=5, box=40.0):
    t = zs.targets.logistic_product(n, box)
    return t.log_likelihood, t.prior, t.mode, t.log_evidence


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--num-live", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    figures: dict[str, object] = {
        "devices": [str(d) for d in jax.devices()],
        "cpu_count": os.cpu_count(),
    }
    checks: list[tuple[str, bool]] = []

    loglike, prior, mode, log_z, sig = correlated_gaussian()
    figures["gaussian_log_z_exact"] = log_z

    t = time.perf_counter()
    lap = zs.laplace(loglike, mode, prior)
    figures["laplace_seconds"] = time.perf_counter() - t
    figures["laplace_abs_error"] = abs(float(lap.log_evidence) - log_z)
    figures["laplace_is_error"] = float(lap.corrected_log_evidence) - log_z
    figures["laplace_is_sigma"] = float(lap.corrected_log_evidence_error)
    figures["laplace_is_pareto_k"] = lap.pareto_k
    checks.append(("laplace exact to 1e-6", figures["laplace_abs_error"] < 1e-6))

    t = time.perf_counter()
    ns = zs.nested_sampling(loglike, prior, key=args.seed, num_live=args.num_live, progress=True)
    figures["ns_seconds_first_call"] = time.perf_counter() - t
    t = time.perf_counter()
    ns2 = zs.nested_sampling(
        loglike, prior, key=args.seed + 1, num_live=args.num_live, progress=False
    )
    figures["ns_seconds_second_call"] = time.perf_counter() - t
    for label, res in (("ns", ns), ("ns_rerun", ns2)):
        figures[f"{label}_error"] = float(res.log_evidence) - log_z
        figures[f"{label}_sigma"] = float(res.log_evidence_error)
        figures[f"{label}_pulls"] = figures[f"{label}_error"] / figures[f"{label}_sigma"]
        figures[f"{label}_likelihood_evaluations"] = res.num_likelihood_evaluations
        figures[f"{label}_iterations"] = res.num_iterations
        figures[f"{label}_samples"] = res.num_samples
    ns_std = np.asarray(res.samples["x"]).std(0)
    figures["ns_max_width_error"] = float(np.max(np.abs(ns_std / sig - 1)))
    checks.append(("nested sampling within 3 reported sigma", abs(figures["ns_pulls"]) < 3))
    checks.append(("nested sampling sigma below 0.3", figures["ns_sigma"] < 0.3))
    checks.append(("nested sampling under 60 s, first call", figures["ns_seconds_first_call"] < 60))

    t = time.perf_counter()
    nu = zs.nuts(
        loglike,
        mode,
        prior,
        num_warmup=500,
        num_samples=2000,
        num_chains=2,
        key=args.seed,
        progress=False,
    )
    figures["nuts_seconds"] = time.perf_counter() - t
    widths = np.asarray(nu.draws).reshape(-1, sig.size).std(0)
    figures["nuts_max_width_error"] = float(np.max(np.abs(widths / sig - 1)))
    figures["nuts_max_r_hat"] = float(jnp.max(nu.r_hat))
    figures["nuts_min_ess_bulk"] = float(jnp.min(nu.ess_bulk))
    figures["nuts_divergences"] = nu.num_divergences
    checks.append(("nuts marginal widths within 10 %", figures["nuts_max_width_error"] < 0.1))

    t = time.perf_counter()
    vi = zs.variational(loglike, mode, prior, key=args.seed, progress=False)
    figures["vi_seconds"] = time.perf_counter() - t
    figures["vi_elbo_gap"] = log_z - float(vi.elbo)
    figures["vi_is_error"] = float(vi.corrected_log_evidence) - log_z
    figures["vi_is_sigma"] = float(vi.corrected_log_evidence_error)

    for n in (5, 10):
        loglike, prior, mode, log_z = logistic_product(n)
        lap = zs.laplace(loglike, mode, prior, importance_samples=4000, key=args.seed)
        figures[f"logistic{n}_laplace_error"] = float(lap.log_evidence) - log_z
        figures[f"logistic{n}_corrected_error"] = float(lap.corrected_log_evidence) - log_z
        figures[f"logistic{n}_corrected_sigma"] = float(lap.corrected_log_evidence_error)
        figures[f"logistic{n}_pareto_k"] = lap.pareto_k
        checks.append(
            (
                f"logistic x{n}: corrected Laplace within 0.05",
                abs(figures[f"logistic{n}_corrected_error"]) < 0.05,
            )
        )

    width = max(len(k) for k in figures)
    for key, value in figures.items():
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {text}")
    print()
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"figures": figures, "checks": dict(checks)}, fh, indent=2)
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
