"""Sampler benchmark: ESS per second and per gradient evaluation, zdx-sample against peers.

    python benchmarks/samplers.py [--size quick|full] [--targets ID,ID] [--samplers ID,ID]
                                  [--out FILE]

Every sampler runs one chain (``--chains`` to change) of ``num_warmup`` warm-up and
``num_samples`` kept draws on each target (1000 + 4000 in the full size, 200 + 400 on
the optics posterior, 300 + 1000 on ``gauss10`` alone in the quick size): a first
(compiling) call each, then ``--repeats`` rounds of one timed call per sampler in turn
(5 in the full size, 1 in the quick size, 1 on the optics posterior), keeping the fastest
round. Wall time and the CPU time of the process are kept apart: on a shared machine the
CPU time is the steadier of the two, and XLA's CPU runtime may spread one program over two
threads, which raises the CPU time above the wall time. The figures are the smallest
bulk ESS over the coordinates (the same estimator, ``zdx_sample``'s rank-normalised one,
for every sampler), that ESS per second (wall and CPU) of the fastest round, and per
gradient evaluation of the kept draws. Each row also records the largest relative error
of the marginal standard deviations where the target's are known, so that a fast but
wrong sampler shows.

Targets: ``gauss10`` (10-D Gaussian, scales 0.1 to 1, rotated), ``gauss100`` (the same
in 100-D), ``logistic10`` (Bayesian logistic regression, 10 coefficients, 500 points,
N(0, 1) priors) and ``optics`` (the optics posterior of ``problems.py`` at a small size:
7 Zernike terms, one filter, 64^2 pupil, flat prior, around the true parameters; the
peers sample it in the coordinates that whiten its Hessian there, as zdx does, because in
the raw coordinates, whose scales differ by orders of magnitude, numpyro's warm-up did not
finish in ten minutes).

Samplers: ``zdx-nuts`` (``zdx_sample.nuts``, whitened), ``numpyro`` (numpyro NUTS, dense
mass matrix, no progress bar), ``blackjax`` (blackjax ``window_adaptation`` + NUTS, dense,
in one jitted ``lax.scan``). The results go to
``benchmarks/results/<machine>/samplers_<size>_<time>.json``.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import sys
import time
import warnings

import jax

jax.config.update("jax_enable_x64", True)

import blackjax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from numpyro.infer import MCMC, NUTS  # noqa: E402

import zdx_sample as zs  # noqa: E402
from zdx_sample._diagnostics import rhat_and_ess  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

SIZES = {
    "quick": {
        "num_warmup": 300,
        "num_samples": 1000,
        "targets": ["gauss10"],
        "chain_counts": (1, 8),
        "repeats": 1,
    },
    "full": {
        "num_warmup": 1000,
        "num_samples": 4000,
        "targets": ["gauss10", "gauss100", "logistic10", "optics"],
        "chain_counts": (1, 4, 16, 64),
        "repeats": 5,
    },
}
# (num_warmup, num_samples) of targets too costly for the size's lengths (a gradient of
# the optics posterior costs milliseconds).
SHORTER = {"optics": (200, 400)}
# A zdx sampler that misses these on a target with known widths fails the run.
MAX_SD_ERROR = 0.15
MAX_R_HAT = 1.05
SAMPLERS = ["zdx-nuts", "zdx-mams", "numpyro", "blackjax"]


# ----------------------------------------------------------------------------- targets
class Target:
    """``log_density(x)`` of a flat vector ``x`` (as a ``{"x": x}`` pytree for zdx), a
    start ``x0`` near the mode, and the marginal standard deviations when known."""

    def __init__(self, name, log_density, x0, sigma=None, description="", whiten=False):
        self.name = name
        self.log_density = log_density
        self.x0 = jnp.asarray(x0)
        self.sigma = None if sigma is None else np.asarray(sigma)
        self.description = description
        # Peers sample u with x = x0 + P u (P whitens the Hessian at x0, as zdx does)
        # where the parameters' scales differ by orders of magnitude: in the raw
        # coordinates their warm-up does not finish in minutes.
        self.projection = None
        if whiten:
            fisher = -np.asarray(jax.hessian(log_density)(self.x0))
            vals, vecs = np.linalg.eigh(0.5 * (fisher + fisher.T))
            self.projection = jnp.asarray(vecs / np.sqrt(vals))

    def peer_problem(self):
        """``(log_density, start, to_x)`` in the coordinates the peers sample."""
        if self.projection is None:
            return self.log_density, self.x0, lambda draws: draws
        x0, proj, log_density = self.x0, self.projection, self.log_density
        return (
            lambda u: log_density(x0 + proj @ u),
            jnp.zeros_like(x0),
            lambda draws: np.asarray(x0) + np.asarray(draws) @ np.asarray(proj).T,
        )

    @property
    def loglike(self):
        """``params -> log_density(params["x"])``, as a partial of a module-level function:
        a new one per call is the same program for zdx (a bound method of this plain
        class would be traced afresh at every call, by zdx_batching.capture's rule)."""
        return functools.partial(_loglike_of_x, self.log_density)


def _loglike_of_x(log_density, params):
    return log_density(params["x"])


def rotated_gaussian(dim: int, seed: int = 0) -> Target:
    known = zs.targets.rotated_gaussian(dim, seed)

    def log_density(x):
        return known.log_likelihood({"x": x})

    return Target(
        f"gauss{dim}",
        log_density,
        known.mean,
        known.sigma,
        f"{dim}-D Gaussian, scales 0.1 to 1, rotated",
    )


def logistic_regression(dim: int = 10, points: int = 500, seed: int = 1) -> Target:
    rng = np.random.default_rng(seed)
    features = jnp.asarray(rng.normal(size=(points, dim)))
    truth = rng.normal(size=dim)
    labels = jnp.asarray(rng.uniform(size=points) < 1 / (1 + np.exp(-features @ truth)))

    def log_density(w):
        logits = features @ w
        return jnp.sum(labels * logits - jnp.logaddexp(0.0, logits)) - 0.5 * jnp.sum(w**2)

    # the mode, by Newton's method, so that every sampler starts from the same point
    w = jnp.zeros(dim)
    hess = jax.hessian(log_density)
    grad = jax.grad(log_density)
    for _ in range(20):
        w = w - jnp.linalg.solve(hess(w), grad(w))
    return Target(
        f"logistic{dim}",
        log_density,
        w,
        None,
        f"logistic regression, {dim} coefficients, {points} points, N(0, 1) priors",
    )


def optics_target() -> Target:
    from jax.flatten_util import ravel_pytree
    from problems import optics_loglike, optics_problem

    problem = optics_problem(n_zernike=7, n_filters=1, npix=64)
    flat, unravel = ravel_pytree(problem.x)
    args = problem.args

    def log_density(x):
        return optics_loglike(unravel(x), args)

    return Target(
        "optics",
        log_density,
        flat,
        None,
        f"optics posterior, {problem.n} parameters, 64^2 pupil, flat prior "
        "(peers in whitened coordinates)",
        whiten=True,
    )


TARGETS = {
    "gauss10": lambda: rotated_gaussian(10),
    "gauss100": lambda: rotated_gaussian(100),
    "logistic10": logistic_regression,
    "optics": optics_target,
}


# ----------------------------------------------------------------------------- samplers
def run_zdx(target: Target, key, num_warmup, num_samples, chains, method="nuts"):
    res = zs.nuts(
        target.loglike,
        {"x": target.x0},
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=chains,
        key=key,
        progress=False,
        method=method,
    )
    jax.block_until_ready(res.draws)
    return np.asarray(res.draws), int(jnp.sum(res.integration_steps))


def run_numpyro(target: Target, key, num_warmup, num_samples, chains):
    log_density, x0, to_x = target.peer_problem()
    mcmc = MCMC(
        NUTS(potential_fn=lambda x: -log_density(x), dense_mass=True),
        num_warmup=num_warmup,
        num_samples=num_samples,
        num_chains=chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    init = jnp.broadcast_to(x0, (chains, x0.size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mcmc.run(key, init_params=init if chains > 1 else init[0], extra_fields=("num_steps",))
    draws = np.asarray(mcmc.get_samples(group_by_chain=True)).reshape(chains, num_samples, -1)
    steps = int(np.sum(mcmc.get_extra_fields()["num_steps"]))
    return to_x(draws), steps


_BLACKJAX_PROGRAMS: dict = {}


def run_blackjax(target: Target, key, num_warmup, num_samples, chains):
    log_density, x0, to_x = target.peer_problem()
    cache_key = (target.name, num_warmup, num_samples)
    if cache_key not in _BLACKJAX_PROGRAMS:

        def one_chain(key, x0):
            warm_key, sample_key = jax.random.split(key)
            adapt = blackjax.window_adaptation(
                blackjax.nuts, log_density, is_mass_matrix_diagonal=False
            )
            (state, parameters), _ = adapt.run(warm_key, x0, num_steps=num_warmup)
            kernel = blackjax.nuts(log_density, **parameters).step

            def step(state, key):
                state, info = kernel(key, state)
                return state, (state.position, info.num_integration_steps)

            _, (draws, steps) = jax.lax.scan(step, state, jax.random.split(sample_key, num_samples))
            return draws, jnp.sum(steps)

        _BLACKJAX_PROGRAMS[cache_key] = jax.jit(jax.vmap(one_chain))
    program = _BLACKJAX_PROGRAMS[cache_key]
    init = jnp.broadcast_to(x0, (chains, x0.size))
    draws, steps = jax.block_until_ready(program(jax.random.split(key, chains), init))
    return to_x(draws), int(jnp.sum(steps))


def run_zdx_mams(target: Target, key, num_warmup, num_samples, chains):
    return run_zdx(target, key, num_warmup, num_samples, chains, method="mams")


RUNNERS = {
    "zdx-nuts": run_zdx,
    "zdx-mams": run_zdx_mams,
    "numpyro": run_numpyro,
    "blackjax": run_blackjax,
}


def _timed(run, target, key, num_warmup, num_samples, chains):
    """One call: ``(draws, gradients, wall seconds, CPU seconds of this process)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    draws, steps = run(target, key, num_warmup, num_samples, chains)
    return draws, steps, time.perf_counter() - wall, time.process_time() - cpu


def measure_side_by_side(
    target: Target, samplers, num_warmup, num_samples, chains, repeats: int = 1
) -> list[dict]:
    """Every sampler on ``target``: a first (compiling) call each, then ``repeats`` rounds
    of one timed call per sampler, in turn, so that a change of the machine's load falls
    on all of them alike. The row keeps the fastest round (wall and CPU time apart)."""
    first = {}
    for sampler in samplers:
        first[sampler] = _timed(
            RUNNERS[sampler], target, jax.random.key(1), num_warmup, num_samples, chains
        )[2]
    rounds = {sampler: [] for sampler in samplers}
    for _ in range(repeats):
        for sampler in samplers:
            rounds[sampler].append(
                _timed(RUNNERS[sampler], target, jax.random.key(2), num_warmup, num_samples, chains)
            )
    return [
        _row(target, sampler, num_warmup, num_samples, chains, first[sampler], rounds[sampler])
        for sampler in samplers
    ]


def measure(target: Target, sampler: str, num_warmup, num_samples, chains) -> dict:
    return measure_side_by_side(target, [sampler], num_warmup, num_samples, chains)[0]


def _row(target, sampler, num_warmup, num_samples, chains, first, rounds) -> dict:
    draws, steps, _, _ = rounds[0]  # the same key every round: the same draws
    seconds = min(r[2] for r in rounds)
    cpu_seconds = min(r[3] for r in rounds)
    r_hat, ess = rhat_and_ess(draws)
    row = {
        "target": target.name,
        "description": target.description,
        "sampler": sampler,
        "chains": chains,
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "first_call_s": first,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "repeats": len(rounds),
        "min_ess_bulk": float(np.min(ess)),
        "max_r_hat": float(np.max(r_hat)),
        "gradient_evaluations": steps,
        "ess_per_second": float(np.min(ess)) / seconds,
        "ess_per_cpu_second": float(np.min(ess)) / cpu_seconds,
        "ess_per_gradient": float(np.min(ess)) / max(steps, 1),
    }
    if target.sigma is not None:
        sd = draws.reshape(-1, draws.shape[-1]).std(axis=0)
        row["max_sd_error"] = float(np.max(np.abs(sd / target.sigma - 1)))
    return row


def chain_scaling(num_warmup, num_samples, counts) -> dict:
    """``zdx_sample.nuts`` on ``gauss10`` with more and more chains in one call."""
    target = TARGETS["gauss10"]()
    rows = []
    for chains in counts:
        row = measure(target, "zdx-nuts", num_warmup, num_samples, chains)
        rows.append(row)
        print(
            f"gauss10 x {chains:>3} chains: {row['seconds']:7.3f} s, "
            f"{1000 * row['seconds'] / chains:6.1f} ms per chain, min ESS "
            f"{row['min_ess_bulk']:8.0f}",
            flush=True,
        )
    return {
        "target": "gauss10",
        "num_warmup": num_warmup,
        "num_samples": num_samples,
        "rows": rows,
    }


def failures(rows: list[dict]) -> list[str]:
    """What a zdx sampler got wrong (known widths, R-hat), for the exit status."""
    wrong = []
    for row in rows:
        if not row["sampler"].startswith("zdx"):
            continue
        name = f"{row['sampler']} on {row['target']} ({row['chains']} chain(s))"
        if row.get("max_sd_error", 0.0) > MAX_SD_ERROR:
            wrong.append(f"{name}: marginal widths off by {row['max_sd_error']:.2f}")
        if row["max_r_hat"] > MAX_R_HAT:
            wrong.append(f"{name}: R-hat {row['max_r_hat']:.3f}")
    return wrong


def machine_folder() -> str:
    from machine import machine_name

    return os.path.join(HERE, "results", machine_name())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    parser.add_argument("--targets", default=None, help="comma-separated target ids")
    parser.add_argument("--samplers", default=",".join(SAMPLERS))
    parser.add_argument("--chains", type=int, default=1)
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed rounds per sampler (default by size)"
    )
    parser.add_argument(
        "--no-scaling", action="store_true", help="skip the many-chains measurement"
    )
    parser.add_argument("--out", default=None, help="JSON file (default: results folder)")
    options = parser.parse_args(argv)
    size = SIZES[options.size]
    targets = options.targets.split(",") if options.targets else size["targets"]
    samplers = options.samplers.split(",")
    unknown = [t for t in targets if t not in TARGETS] + [s for s in samplers if s not in RUNNERS]
    if unknown:
        parser.error(f"unknown target or sampler: {unknown}")
    repeats = options.repeats or size["repeats"]
    rows = []
    for name in targets:
        target = TARGETS[name]()
        warmup, draws = SHORTER.get(name, (size["num_warmup"], size["num_samples"]))
        side_by_side = measure_side_by_side(
            target, samplers, warmup, draws, options.chains, 1 if name in SHORTER else repeats
        )
        for sampler, row in zip(samplers, side_by_side):
            rows.append(row)
            print(
                f"{name:>10} {sampler:>12}: {row['seconds']:7.3f} s, min ESS "
                f"{row['min_ess_bulk']:7.0f}, ESS/s {row['ess_per_second']:8.0f}, "
                f"ESS/CPU s {row['ess_per_cpu_second']:8.0f}, "
                f"ESS/grad {row['ess_per_gradient']:.4f}, R-hat {row['max_r_hat']:.3f}"
                + (f", sd err {row['max_sd_error']:.3f}" if "max_sd_error" in row else ""),
                flush=True,
            )
    scaling = None
    if not options.no_scaling and "zdx-nuts" in samplers:
        scaling = chain_scaling(size["num_warmup"], size["num_samples"], size["chain_counts"])
    out = options.out
    if out is None:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
        folder = machine_folder()
        os.makedirs(folder, exist_ok=True)
        out = os.path.join(folder, f"samplers_{options.size}_{stamp}.json")
    with open(out, "w") as f:
        json.dump(
            {
                "size": options.size,
                "versions": versions(),
                "rows": rows,
                "chain_scaling": scaling,
            },
            f,
            indent=1,
        )
    print(f"wrote {out}")
    if options.out is None:  # the section of the report, beside the results
        from samplers_report import sampler_section

        markdown = sampler_section(os.path.dirname(out), options.size)
        with open(os.path.join(os.path.dirname(out), f"samplers_{options.size}.md"), "w") as f:
            f.write(markdown + "\n")
    wrong = failures(rows + (scaling["rows"] if scaling else []))
    for line in wrong:
        print(f"FAILED: {line}")
    return 1 if wrong else 0


def versions() -> dict:
    """Versions of Python and of the libraries timed, for the results and their report."""
    import importlib.metadata
    import platform

    names = ("jax", "blackjax", "numpyro", "zdx-sample")
    found = {"python": platform.python_version()}
    return found | {name: importlib.metadata.version(name) for name in names}


if __name__ == "__main__":
    raise SystemExit(main())
