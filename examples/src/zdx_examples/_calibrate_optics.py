"""Are the Hessian error bars of the optics fit calibrated? Coverage over many data sets.

``N`` data sets are simulated from one set of true parameters (fresh noise each), every
one is fitted exactly as the report's natural-gradient fit does (data-based start, the
sign search over the even Zernike terms, natural-gradient descent), the Hessian of minus
the log-likelihood at each fit gives its covariance, and the pulls ``(fit - truth) /
sigma`` are compared with ``N(0, 1)``: coverage at 1 and 2 sigma with binomial errors,
mean, standard deviation and normality (``zdx_stats``). All the fits run as one compiled
program per block of data sets (``zdx_opt.fit_many``, ``zdx_opt.hessian_many``).
"""

from __future__ import annotations

import contextlib
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as onp

import zdx_base
import zdx_opt
import zdx_stats
from zdx_base import checks

from ._curvature import loss_curvature_fn
from ._filters import filter_set
from ._fit import get_reduced_chi2, loglike_fn, loss_fn
from ._observation import Observation
from ._run_folder import open_run_folder
from ._settings import OPTICS_CALIBRATION_DEFAULTS as OPTICS_CALIBRATION_DEFAULTS
from ._settings import with_defaults
from ._simulate import simulate, start_params, true_parameters
from ._stage_recorder import StageRecorder
from ._start import search_signs
from ._telescope import build_optics

POISSON_LIMIT = 1e4
"""Mean count above which :func:`simulate_averaged` draws counts from a normal law."""


def simulate_averaged(
    optics: Any, truth: dict, seeds: Any, n_images: int, read_noise: float
) -> list:
    """Many data sets of averaged exposures, drawn directly, with their expected errors.

    The mean of ``n_images`` exposures of ``Poisson(psf) + N(0, read_noise^2)`` is, in
    distribution, ``Poisson(n_images psf) / n_images + N(0, read_noise^2 / n_images)``:
    drawn here directly (one draw per pixel instead of ``n_images``), with the error
    ``sqrt((psf + read_noise^2) / n_images)`` known rather than estimated from the
    exposures' spread. Same data law as :func:`simulate`, without the scatter of
    estimated errors. Counts with a mean of :data:`POISSON_LIMIT` or more are drawn from
    the normal law of the same mean and variance (its skewness is below 0.01 there):
    ``jax.random.poisson`` overstates the variance at large means (measured: 1.02 times at
    1e6, 1.46 times at 1e8), which widened every pull in a first calibration run.

    Returns
    -------
    observations : list[Observation]
        One per filter, ``data`` and ``error`` of shape ``(len(seeds), pixels, pixels)``.
    """
    template = [Observation(0.0, 0.0, name) for name in optics.filters]
    psfs = jnp.stack([obs(truth, optics) for obs in template])
    error = jnp.sqrt((psfs + read_noise**2) / n_images)

    rate = n_images * psfs
    small = rate < POISSON_LIMIT

    def one(seed):
        keys = jax.random.split(jax.random.key(seed), 3)
        counts = jax.random.poisson(keys[0], jnp.where(small, rate, 0.0)).astype(psfs.dtype)
        normal = rate + jnp.sqrt(rate) * jax.random.normal(keys[2], psfs.shape)
        counts = jnp.where(small, counts, normal)
        read = read_noise / jnp.sqrt(n_images) * jax.random.normal(keys[1], psfs.shape)
        return counts / n_images + read

    data = jax.jit(jax.vmap(one))(jnp.asarray(seeds))
    errors = jnp.broadcast_to(error, data.shape)
    return [
        obs.set(["data", "error"], [data[:, k], errors[:, k]]) for k, obs in enumerate(template)
    ]


def stack_observations(simulations: list) -> list:
    """One list of observations whose ``data`` and ``error`` have a leading data-set axis."""
    first = simulations[0].observations
    stacked = []
    for k, obs in enumerate(first):
        data = jnp.stack([sim.observations[k].data for sim in simulations])
        error = jnp.stack([sim.observations[k].error for sim in simulations])
        stacked.append(obs.set(["data", "error"], [data, error]))
    return stacked


def _simulate_data_sets(s: dict[str, Any]) -> tuple[Any, dict, list, dict]:
    """The telescope, the truth, ``s["n"]`` simulated data sets (observations stacked on a
    leading axis) and the data-based start of each."""
    optics = build_optics(
        filters=filter_set(s["filters"]),
        npix=s["npix"],
        psf_npixels=s["psf_npix"],
        n_zernike=s["n_zernike"],
    )
    truth = true_parameters(optics, s["seed"])
    seeds = s["seed"] * 100_000 + 1 + onp.arange(s["n"])
    if s["noise"] == "exposures":
        simulations = [
            simulate(optics, int(seed), s["n_images"], s["read_noise"], true_params=truth)
            for seed in seeds
        ]
        observations = stack_observations(simulations)
    else:
        observations = simulate_averaged(optics, truth, seeds, s["n_images"], s["read_noise"])
    starts = jax.vmap(_start_of, in_axes=(None, 0))(
        (optics, observations), [(obs.data, obs.error) for obs in observations]
    )
    return optics, truth, observations, starts


def _block_indices(n: int, size: int) -> list[onp.ndarray]:
    """The data sets of each block: ``size`` at a time, the last block padded with copies
    of the last data set (so that every block runs the same compiled programs)."""
    return [onp.minimum(onp.arange(first, first + size), n - 1) for first in range(0, n, size)]


def _fit_block(s: dict[str, Any], optics: Any, observations: list, starts: dict) -> dict:
    """The sign search, the natural-gradient fit and the Hessian of one block of data sets;
    the arrays of its record (``fits`` flattened, ``search_losses``, ``hessians``) and the
    seconds of each stage."""
    size = int(observations[0].data.shape[0])
    recorder = StageRecorder()
    with recorder.stage("choose_start"):
        search = search_signs(
            "calibrate_optics",
            starts,
            (optics, observations),
            batched_data=True,
            pilot_steps=s["pilot_steps"],
            trial_steps=s["trial_steps"],
            learning_rate=s["search_learning_rate"],
            refresh_every=s["refresh_every"],
            block_size=size,
        )
        jax.block_until_ready(search.params)
    args = (optics, observations)
    with recorder.stage("natural_gradient"):
        fits = zdx_opt.fit_many(
            loss_fn,
            search.params,
            args,
            args_axes=(None, 0),
            fisher_fn=loss_curvature_fn,
            steps=s["ngd_steps"],
            learning_rate=s["learning_rate"],
            refresh_every=s["refresh_every"],
            block_size=size,
        )
        jax.block_until_ready(fits.params)
    with recorder.stage("hessian"):
        hessians = zdx_opt.hessian_many(
            lambda p, a: -loglike_fn(p, a),
            fits.params,
            args,
            args_axes=(None, 0),
            block_size=size,
        )
        hessians = jax.block_until_ready(hessians)
    arrays = {
        "fits": jax.vmap(lambda p: zdx_base.ravel(p).flat)(fits.params),
        "search_losses": search.losses,
        "patterns": search.patterns,
        "hessians": hessians,
    }
    seconds = {name: record["seconds"] for name, record in recorder.records.items()}
    return {"arrays": {k: onp.asarray(v) for k, v in arrays.items()}, "seconds": seconds}


def calibrate_optics(
    progress: bool = True,
    out: str | pathlib.Path | None = None,
    restart: bool = False,
    process_id: int = 0,
    num_processes: int = 1,
    **settings: Any,
) -> dict[str, Any]:
    """Coverage and pulls of the Hessian error bars of the optics fit over ``n`` data sets.

    The data sets are fitted ``block_size`` at a time (the sign search, the
    natural-gradient fit and the Hessian of a block each run as one compiled program).
    With ``out``, every finished block is recorded in ``out/progress/`` (see
    ``_run_folder``): run again with the same settings, the blocks recorded there are
    loaded, not fitted again, and the summary is the same, bit for bit apart from the
    ``seconds``, as that of a run never stopped. Several processes sharing ``out`` each
    fit every ``num_processes``-th block; process 0 waits for all and returns the summary,
    the same as one process's.

    Parameters
    ----------
    progress : bool
        A line per block and per stage on standard error.
    out : str or Path, optional
        The folder that keeps the progress (and, from the command, the report).
    restart : bool
        Discard the progress kept in ``out`` and start over.
    process_id, num_processes : int
        This process's index and how many processes share the blocks (through ``out``).
    **settings
        Any of :data:`OPTICS_CALIBRATION_DEFAULTS`.

    Returns
    -------
    summary : dict
        ``settings``, ``names``, ``truth``, ``seconds`` per stage, ``chi2r`` per data set,
        ``fits`` / ``sigmas`` / ``pulls`` ``(n, parameters)``, ``coverage`` (levels,
        nominal, per parameter, overall, binomial errors, deviations in binomial sigmas),
        ``pull_statistics`` and the sign search's choices. A process other than 0 returns
        only its index and how many blocks it recorded.

    Raises
    ------
    TypeError
        For an unknown setting.
    ValueError
        For an unknown ``noise``, or several processes without ``out``.
    RunFolderError
        (A ``ValueError``.) If ``out`` holds the progress of other settings (without ``restart``).
    RuntimeError
        If fewer than two fits reach the noise.
    zdx_base.CheckpointInterrupted
        After SIGINT or SIGTERM, once the block being fitted is recorded (with ``out``).
    """
    s = with_defaults("calibrate_optics", OPTICS_CALIBRATION_DEFAULTS, settings)
    checks.check_choice("calibrate_optics", "noise", s["noise"], ("averaged", "exposures"))
    folder = open_run_folder("calibrate optics", out, s, restart, process_id, num_processes)
    recorder = StageRecorder(progress=progress)
    sets = "data sets"
    with recorder.stage("simulate", unit=sets) as stage:
        optics, truth, observations, starts = _simulate_data_sets(s)
        jax.block_until_ready(observations)
        stage.stop(steps=s["n"])

    blocks = _block_indices(s["n"], min(s["block_size"], s["n"]))
    names = [f"block_{b:05d}" for b in range(len(blocks))]
    mine = range(len(blocks)) if folder is None else folder.share(len(blocks))
    records = []
    guard = contextlib.nullcontext() if folder is None else folder.interruptible()
    with guard:
        for count, b in enumerate(mine, 1):
            found = None if folder is None else folder.load(names[b])
            if found is not None:
                recorder.say(f"[block {b + 1}/{len(blocks)}] read back from {folder.folder}")
            else:
                index = blocks[b]
                block_obs = [
                    obs.set(["data", "error"], [obs.data[index], obs.error[index]])
                    for obs in observations
                ]
                block_starts = jax.tree.map(lambda leaf, i=index: leaf[i], starts)
                done = _fit_block(s, optics, block_obs, block_starts)
                found = done["arrays"], {"seconds": done["seconds"]}
                if folder is not None:
                    folder.save(names[b], *found)
                recorder.say(
                    f"[block {b + 1}/{len(blocks)}] "
                    + ", ".join(f"{k} {v:.1f} s" for k, v in found[1]["seconds"].items())
                )
            records.append(found)
            if folder is not None:
                folder.stop_if_asked(f"{count} of the {len(mine)} blocks of this process")
    if folder is not None:
        records = folder.gather(names, say=recorder.say)
        if records is None:
            return folder.left_to_process_0(len(mine))
    seconds = {"simulate": recorder.records["simulate"]["seconds"]}
    for _, info in records:
        for name, value in info["seconds"].items():
            seconds[name] = seconds.get(name, 0.0) + value
    arrays = [found[0] for found in records]
    return _summarise(s, optics, truth, observations, arrays, seconds)


def _summarise(
    s: dict, optics: Any, truth: dict, observations: list, records: list, seconds: dict
) -> dict[str, Any]:
    """The summary of :func:`calibrate_optics` from the records of its blocks."""
    n = s["n"]
    flat_fits = jnp.concatenate([jnp.asarray(r["fits"]) for r in records])[:n]
    search_losses = jnp.concatenate([jnp.asarray(r["search_losses"]) for r in records])[:n]
    hessians = jnp.concatenate([jnp.asarray(r["hessians"]) for r in records])[:n]
    patterns = jnp.asarray(records[0]["patterns"])
    flat_truth, unravel, _ = zdx_base.ravel(truth)

    def one_chi2r(flat, arrays):
        one = [obs.set(["data", "error"], list(pair)) for obs, pair in zip(observations, arrays)]
        return get_reduced_chi2(unravel(flat), optics, one)

    arrays = [(obs.data, obs.error) for obs in observations]
    chi2r = jax.jit(jax.vmap(one_chi2r))(flat_fits, arrays)
    eigenvalues = jnp.linalg.eigvalsh(hessians)
    positive = eigenvalues[:, 0] > 0
    covariances = jnp.linalg.inv(hessians)
    sigmas = jnp.sqrt(jnp.diagonal(covariances, axis1=1, axis2=2))
    converged = positive & (chi2r < 1.5) & jnp.all(jnp.isfinite(sigmas), axis=1)
    used = onp.flatnonzero(onp.asarray(converged))
    if used.size < 2:
        raise RuntimeError(
            f"calibrate_optics: only {used.size} of {n} fits reached the noise (reduced "
            f"chi-squared from {float(jnp.min(chi2r)):.4g} to {float(jnp.max(chi2r)):.4g}); "
            "no calibration is possible. Lengthen the sign search (pilot_steps, "
            "trial_steps) or the fit (ngd_steps)."
        )
    pulls = zdx_stats.pulls(flat_fits[used], flat_truth, sigmas[used])
    cover = zdx_stats.coverage(pulls, levels=(1.0, 2.0))
    stats = zdx_stats.pull_statistics(pulls)
    names = list(zdx_base.scalar_names(truth))
    search_choice = onp.asarray(jnp.argmin(search_losses, axis=1))
    return {
        "settings": s,
        "names": names,
        "truth": onp.asarray(flat_truth).tolist(),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "total_seconds": round(sum(seconds.values()), 2),
        "chi2r": onp.asarray(chi2r).tolist(),
        "converged": int(used.size),
        "not_converged": [int(i) for i in onp.flatnonzero(~onp.asarray(converged))],
        "fits": onp.asarray(flat_fits).tolist(),
        "sigmas": onp.asarray(sigmas).tolist(),
        "pulls": onp.asarray(pulls).tolist(),
        "coverage": _coverage_dict(cover),
        "pull_statistics": {k: onp.asarray(v).tolist() for k, v in stats._asdict().items()},
        "sign_search": {
            "patterns": onp.asarray(patterns).tolist(),
            "chosen_counts": onp.bincount(search_choice, minlength=patterns.shape[0]).tolist(),
        },
    }


def _start_of(fixed: tuple, arrays: list) -> dict:
    """:func:`start_params` of one data set given its arrays (vmappable)."""
    optics, observations = fixed
    one = [obs.set(["data", "error"], list(pair)) for obs, pair in zip(observations, arrays)]
    return start_params(one, optics)


def _coverage_dict(cover: zdx_stats.Coverage) -> dict[str, Any]:
    return {
        "levels": onp.asarray(cover.levels).tolist(),
        "nominal": onp.asarray(cover.nominal).tolist(),
        "per_parameter": onp.asarray(cover.per_parameter).tolist(),
        "overall": onp.asarray(cover.overall).tolist(),
        "error_per_parameter": onp.asarray(cover.error_per_parameter).tolist(),
        "error_overall": onp.asarray(cover.error_overall).tolist(),
        "deviation_sigmas": onp.asarray(cover.deviation()).tolist(),
        "trials": cover.trials,
    }
