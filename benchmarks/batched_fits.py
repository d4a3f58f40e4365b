"""Many optics fits in one compiled program against a Python loop of the same fits.

    python benchmarks/batched_fits.py                       # N = 1, 10, 100
    python benchmarks/batched_fits.py --n 1 10 --json out.json

For each N: N data sets of the optics problem at the calibration's sizes (32-pixel pupil,
16-pixel detector, 7 Zernike terms, 3 filters: 16 parameters), each fitted from the same
kind of start by ``steps`` natural-gradient steps (Gauss-Newton metric refreshed every 5
steps, momentum 0.5) followed by the Hessian of minus the log-likelihood at the fit.

- batched: ``zdx_opt.fit_many`` + ``zdx_opt.hessian_many`` over all N data sets at once;
- loop: a Python loop over the data sets, each fitted by the same compiled programs on a
  batch of one (``fit_many`` + ``hessian_many`` with one data set): compiled once, then
  re-used for every data set, so the loop recompiles nothing and runs one small program
  at a time.

Seconds per fit are wall-clock seconds over N, first call included (compilation is part
of what a user waits for) and, separately, a second batched call with new data of the
same shapes. Exits with status 1 when the batched time per fit at the largest N is more
than half the loop's.
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

import zdx_base  # noqa: E402
import zdx_opt  # noqa: E402
from zdx_examples import optics as ex  # noqa: E402
from zdx_examples._calibrate_optics import simulate_averaged  # noqa: E402
from zdx_examples._curvature import loss_curvature_fn  # noqa: E402
from zdx_examples._filters import filter_set  # noqa: E402
from zdx_examples._fit import loglike_fn, loss_fn  # noqa: E402


def problem(n: int, seed: int, npix: int, psf_npix: int):
    optics = ex.build_optics(filters=filter_set(3), npix=npix, psf_npixels=psf_npix)
    truth = ex.true_parameters(optics, 0)
    observations = simulate_averaged(optics, truth, seed * 1000 + np.arange(n), 1000, 10.0)
    # Start near the truth (as after the sign search): the same start for both ways.
    key = jax.random.key(seed)
    flat, unravel, _ = zdx_base.ravel(truth)
    noise = jax.random.normal(key, (n, flat.size)) * jnp.where(jnp.abs(flat) > 1, 1.0, 0.005)
    starts = jax.vmap(unravel)(flat + noise)
    return optics, observations, starts


def one_data_set(observations, i):
    """The ``i``-th data set as a batch of one (leading axis of length 1)."""
    rows = slice(i, i + 1)
    return [obs.set(["data", "error"], [obs.data[rows], obs.error[rows]]) for obs in observations]


def minus_loglike(params, args):
    """The function whose Hessian gives the error bars (one object, so compiled once)."""
    return -loglike_fn(params, args)


VECTORISE = {"auto": None, "yes": True, "no": False}
vectorise = None  # set from --vectorise in main

# How every data set is fitted (the module docstring): the natural gradient with the
# Gauss-Newton metric of the loss (refreshed every 5 steps, fit_many's default).
NATURAL_GRADIENT = {"fisher_fn": loss_curvature_fn, "learning_rate": 0.5}


def fit_and_hessians(optics, observations, starts, steps):
    """``fit_many`` + ``hessian_many`` over the data sets given; the fits and Hessians."""
    args = (optics, observations)
    blocks = {"args_axes": (None, 0), "vectorise": vectorise}  # one data set per row
    fits = zdx_opt.fit_many(loss_fn, starts, args, steps=steps, **NATURAL_GRADIENT, **blocks)
    hessians = zdx_opt.hessian_many(minus_loglike, fits.params, args, **blocks)
    return fits, jax.block_until_ready(hessians)


def batched(optics, observations, starts, steps):
    clock = time.perf_counter()
    fits, _ = fit_and_hessians(optics, observations, starts, steps)
    return time.perf_counter() - clock, np.asarray(fits.loss)


def loop(optics, observations, starts, steps):
    """The fits one data set at a time; total seconds, seconds of the first fit, losses."""
    clock = time.perf_counter()
    n = jax.tree.leaves(starts)[0].shape[0]
    losses, first = [], None
    for i in range(n):
        start = jax.tree.map(lambda leaf, i=i: leaf[i : i + 1], starts)
        fits, _ = fit_and_hessians(optics, one_data_set(observations, i), start, steps)
        losses.append(float(fits.loss[0]))
        first = time.perf_counter() - clock if first is None else first
    return time.perf_counter() - clock, first, np.array(losses)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--npix", type=int, default=32)
    parser.add_argument("--psf-npix", type=int, default=16)
    parser.add_argument(
        "--vectorise",
        choices=sorted(VECTORISE),
        default="auto",
        help="fit_many's vectorise: auto (its default), yes (jax.vmap), no (jax.lax.map)",
    )
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    global vectorise
    vectorise = VECTORISE[args.vectorise]
    rows = []
    for n in args.n:
        optics, observations, starts = problem(n, 1, args.npix, args.psf_npix)
        # Each way starts from empty caches, so that both first calls include compilation.
        jax.clear_caches()
        first, batched_losses = batched(optics, observations, starts, args.steps)
        optics, observations2, starts2 = problem(n, 2, args.npix, args.psf_npix)
        again, _ = batched(optics, observations2, starts2, args.steps)
        jax.clear_caches()
        looped, loop_first, loop_losses = loop(optics, observations, starts, args.steps)
        loop_steady = (looped - loop_first) / (n - 1) if n > 1 else float("nan")
        # both ways fit the same data from the same starts: the losses must agree
        agree = float(np.max(np.abs(batched_losses - loop_losses) / loop_losses))
        row = {
            "n": n,
            "batched_s_per_fit": first / n,
            "batched_again_s_per_fit": again / n,
            "loop_s_per_fit": looped / n,
            "loop_first_fit_s": loop_first,
            "loop_s_per_fit_after_first": loop_steady,
            "ratio": first / looped,
            "ratio_compiled": (again / n) / loop_steady if n > 1 else float("nan"),
            "max_relative_loss_difference": agree,
            "load_average": os.getloadavg()[0],
        }
        rows.append(row)
        print(
            f"N={n:4d}  batched {first / n:7.3f} s/fit (again {again / n:7.3f})  "
            f"loop {looped / n:7.3f} s/fit (first fit {loop_first:6.1f} s, then "
            f"{loop_steady:6.3f})  ratio {first / looped:5.2f} "
            f"(compiled {row['ratio_compiled']:5.2f})  loss agreement {agree:.1e}  "
            f"load {row['load_average']:.1f}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as handle:
            settings = {"steps": args.steps, "vectorise": args.vectorise}
            json.dump({**settings, "rows": rows, "devices": str(jax.devices())}, handle)
    return 0 if rows[-1]["ratio"] <= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
