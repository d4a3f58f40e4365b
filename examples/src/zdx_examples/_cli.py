"""The ``zdx-examples`` command: run the tutorial's fits end to end and summarise them.

``zdx-examples gaussians-fit`` fits the sum of Gaussians with BFGS and estimates the
uncertainties from the Hessian (sections 1 to 3 of the tutorial); ``zdx-examples
optics-fit`` simulates the hierarchical optics data and fits it with L-BFGS in the
whitened (Fisher eigen-) parametrisation (sections 4 to 6), then compares the fit with the
truth through the Hessian at the best fit. Each prints one ``name value`` line per figure
and can write them to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optimistix as optx
from jax.flatten_util import ravel_pytree

import zdx_base
import zdx_batching
import zdx_opt
import zdx_stats

from . import gaussians as gauss
from . import optics as ex


def gaussians_fit(seed: int = 0) -> dict[str, Any]:
    """Fit the tutorial's sum of Gaussians; a summary of the fit.

    Parameters
    ----------
    seed : int
        Seed of the simulated noise (the tutorial's is 0).

    Returns
    -------
    summary : dict
        ``initial_chi2r``, ``final_chi2r``, ``steps``, ``seconds``, the best-fit values
        ``params`` and their one-sigma uncertainties ``sigma`` (lists per parameter).
    """
    sim = gauss.simulate(seed=seed)
    args = (sim.model, sim.data, sim.error)
    params = gauss.init_params(sim.model)
    ddof = zdx_stats.ddof(params, sim.data)
    initial = zdx_stats.chi2r(sim.model(params), sim.data, sim.error, ddof)
    solver = optx.BestSoFarMinimiser(optx.BFGS(rtol=1e-12, atol=1e-12))
    start = time.perf_counter()
    sol = optx.minimise(gauss.loss_fn, solver, params, args)
    seconds = time.perf_counter() - start
    final = zdx_stats.chi2r(sim.model(sol.value), sim.data, sim.error, ddof)
    hessian, unflatten = zdx_batching.hessian(lambda p: gauss.neg_loglike_fn(p, args), sol.value)
    sigma = unflatten(jnp.sqrt(jnp.diag(jnp.linalg.inv(hessian))))
    return {
        "initial_chi2r": float(initial),
        "final_chi2r": float(final),
        "steps": int(sol.stats["num_steps"]),
        "seconds": round(seconds, 3),
        "params": {k: [float(v) for v in sol.value[k]] for k in sol.value},
        "sigma": {k: [float(v) for v in sigma[k]] for k in sigma},
    }


def optics_fit(
    npix: int = 256, n_images: int = 1000, seed: int = 0, max_steps: int = 256
) -> dict[str, Any]:
    """Simulate and fit the hierarchical optics problem; a summary of the fit.

    The fit is the tutorial's section 6: the Fisher matrix of the loss at the starting
    guess (on data simulated from that guess) gives the whitening projection
    (``zdx_opt.eigen_projection``), and L-BFGS minimises the loss in that latent space.
    The Hessian of minus the log-likelihood at the best fit gives the uncertainties.

    Parameters
    ----------
    npix : int
        Pixels across the pupil.
    n_images : int
        Exposures averaged per filter.
    seed : int
        Seed of the true parameters and of the noise.
    max_steps : int
        Most L-BFGS steps.

    Returns
    -------
    summary : dict
        ``initial_chi2r``, ``truth_chi2r``, ``final_chi2r``, ``steps``, ``seconds``,
        ``max_abs_pull`` (largest ``|fit - truth| / sigma``), and per scalar parameter
        ``names``, ``fit``, ``sigma``, ``truth``.
    """
    optics = ex.build_optics(npix=npix)
    sim = ex.simulate(optics, seed=seed, n_images=n_images)
    observations = sim.observations
    args = (optics, observations)
    params = ex.start_params(observations, optics)

    read_noise = 10.0
    psfs = jnp.array([obs(params, optics) for obs in observations])
    errors = jnp.sqrt((psfs + read_noise**2) / n_images)
    simulated = [
        obs.set(["data", "error"], [d, e]) for d, e, obs in zip(psfs, errors, observations)
    ]
    fisher, _ = zdx_batching.hessian(lambda p: ex.loss_fn(p, (optics, simulated)), params)
    x0, unravel = ravel_pytree(params)
    projection = zdx_opt.eigen_projection(fmat=fisher)

    def project(u):
        return unravel(x0 + jnp.dot(projection, u))

    def latent_loss(u, args):
        return ex.loss_fn(project(u), args)

    solver = optx.BestSoFarMinimiser(optx.LBFGS(rtol=1e-6, atol=1e-6))
    start = time.perf_counter()
    sol = optx.minimise(
        latent_loss,
        solver,
        jnp.zeros(projection.shape[-1]),
        args,
        max_steps=max_steps,
        throw=False,
    )
    seconds = time.perf_counter() - start
    best = project(sol.value)

    hessian, _ = zdx_batching.hessian(lambda p: -ex.loglike_fn(p, args), best)
    sigma = jnp.sqrt(jnp.diag(jnp.linalg.inv(hessian)))
    fit, _ = ravel_pytree(best)
    truth, _ = ravel_pytree(sim.true_params)
    names = list(zdx_base.scalar_names(best))
    return {
        "initial_chi2r": float(ex.get_reduced_chi2(params, optics, observations)),
        "truth_chi2r": float(ex.get_reduced_chi2(sim.true_params, optics, observations)),
        "final_chi2r": float(ex.get_reduced_chi2(best, optics, observations)),
        "steps": int(sol.stats["num_steps"]),
        "seconds": round(seconds, 3),
        "max_abs_pull": float(jnp.max(jnp.abs((fit - truth) / sigma))),
        "names": names,
        "fit": [float(v) for v in fit],
        "sigma": [float(v) for v in sigma],
        "truth": [float(v) for v in truth],
    }


def _print_summary(summary: dict[str, Any]) -> None:
    for key, value in summary.items():
        if not isinstance(value, (list, dict)):
            print(f"{key} {value}")
    if "names" in summary:
        print(f"{'parameter':<16}{'fit':>14}{'sigma':>12}{'truth':>14}")
        for row in zip(summary["names"], summary["fit"], summary["sigma"], summary["truth"]):
            print(f"{row[0]:<16}{row[1]:>14.6g}{row[2]:>12.3g}{row[3]:>14.6g}")
    if "params" in summary:
        for key, values in summary["params"].items():
            for i, (v, s) in enumerate(zip(values, summary["sigma"][key])):
                print(f"{key}[{i}] {v:.6g} +- {s:.3g}")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zdx-examples", description="Run the zodiax tutorial's example fits."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gaussians-fit", help="BFGS fit of the sum of Gaussians")
    g.add_argument("--seed", type=int, default=0, help="seed of the noise (default 0)")
    g.add_argument("--json", help="also write the summary to this JSON file")
    o = sub.add_parser("optics-fit", help="reparametrised L-BFGS fit of the optics model")
    o.add_argument("--npix", type=_positive_int, default=256, help="pupil pixels (256)")
    o.add_argument("--n-images", type=_positive_int, default=1000, help="exposures (1000)")
    o.add_argument("--seed", type=int, default=0, help="seed of truth and noise (0)")
    o.add_argument("--max-steps", type=_positive_int, default=256, help="L-BFGS steps (256)")
    o.add_argument("--json", help="also write the summary to this JSON file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``zdx-examples``; returns the exit status."""
    args = _parser().parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    if args.command == "gaussians-fit":
        summary = gaussians_fit(seed=args.seed)
    else:
        summary = optics_fit(
            npix=args.npix, n_images=args.n_images, seed=args.seed, max_steps=args.max_steps
        )
    _print_summary(summary)
    if args.json:
        with open(args.json, "w") as file:
            json.dump(summary, file, indent=2)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
