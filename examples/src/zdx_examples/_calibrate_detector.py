"""``zdx-examples calibrate-detector``: a pixel response and the optics fitted together.

The problem is :func:`~zdx_examples._detector.detector_problem` (dLux's instrumental
calibration, sized by ``npix``). The fit is ``zdx_opt.gauss_newton``: damped Gauss-Newton
steps solved exactly on the Fisher matrix computed by colouring, with no learning rate.
The pixel response is fitted by its logarithm: its overall scale is degenerate with the
flux, a straight line in logarithms, and a Gaussian prior on every ``log_response`` (mean
0, the scatter the truth is drawn with) makes the posterior along it exactly Gaussian. A
broad prior on the log of the jitter keeps it finite where the images say little. Every
parameter's error bar comes from the same factorised curvature (its Schur complement:
no dense matrix), and the pulls against the truth check them.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import resource
import time
import types
from typing import Any

import jax.numpy as jnp
import numpy as onp

import zdx_base
import zdx_opt

from ._detector import detector_problem
from ._run_folder import RunFolder, open_run_folder
from ._settings import CALIBRATE_DETECTOR_DEFAULTS as CALIBRATE_DETECTOR_DEFAULTS

RESPONSE_SCATTER = 0.05  # the true log response is RESPONSE_SCATTER * N(0, 1)
JITTER_PRIOR = (0.0, 0.7)  # on log(jitter / pixel): broad, an instrument team's knowledge
REFERENCE_STEPS = 60  # Gauss-Newton steps of the reference optimum (to rounding)


def starting_point(problem: Any) -> dict:
    """The tutorial's kind of start: flat response, no aberration, centred, a flux from the
    data's total, a guessed jitter."""
    npix = problem.settings["npix"]
    flat_counts = problem.settings["flat"] * npix**2
    counts = float(jnp.sum(problem.data)) / problem.data.shape[0] - flat_counts
    return {
        "log_flux": jnp.asarray(onp.log10(counts)),
        "position": jnp.zeros(2),
        "zernikes": jnp.zeros_like(problem.truth["zernikes"]),
        "log_jitter": jnp.log(jnp.asarray(0.7)),
        "log_response": jnp.zeros((npix, npix)),
    }


def _fit(problem: Any, start: Any, *, max_steps: int, progress: bool, rtol: float = 1e-10):
    """``zdx_opt.gauss_newton`` on the problem, with its priors and declared pattern."""
    return zdx_opt.gauss_newton(
        problem.residuals,
        start,
        prior={"log_response": (0.0, RESPONSE_SCATTER), "log_jitter": JITTER_PRIOR},
        declare={"log_response": "elementwise"},
        max_steps=max_steps,
        rtol=rtol,
        progress=progress,
    )


_FIT_ARRAYS = ("chi2_history", "objective_history", "seconds")


def _kept_fit(folder: RunFolder | None, name: str, start: dict, run: Any) -> tuple[Any, float]:
    """``run()`` (a ``zdx_opt.gauss_newton`` fit) and the seconds it took; with ``folder``,
    the parts of the fit that the summary and the figures read, recorded as ``name`` (or
    read back from that record when it is there)."""
    found = None if folder is None else folder.load(name)
    if found is None:
        began = time.perf_counter()
        fit = run()
        seconds = time.perf_counter() - began
        if folder is None:
            return fit, seconds
        arrays = {key: onp.asarray(getattr(fit, key)) for key in _FIT_ARRAYS}
        arrays["params"] = zdx_base.ravel(fit.params).flat
        arrays["errors"] = zdx_base.ravel(fit.errors).flat
        info = {"chi2": float(fit.chi2), "objective": float(fit.objective)}
        info.update(steps=int(fit.steps), converged=bool(fit.converged), fit_seconds=seconds)
        folder.save(name, arrays, info)
        found = folder.load(name)  # the same numbers whether fitted now or read back
    arrays, info = found
    unravel = zdx_base.ravel(start).unravel
    seconds = info.pop("fit_seconds")
    fit = types.SimpleNamespace(
        **info,
        **{key: arrays[key] for key in _FIT_ARRAYS},
        params=unravel(jnp.asarray(arrays["params"])),
        errors=unravel(jnp.asarray(arrays["errors"])),
    )
    return fit, seconds


def _peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def calibrate_detector(
    *,
    npix: int = 32,
    pupil_npix: int = 64,
    ndither: int = 3,
    nwavels: int = 3,
    seed: int = 0,
    max_steps: int = 30,
    flat: float = 0.0,
    out: str | pathlib.Path | None = None,
    progress: bool = True,
    restart: bool = False,
) -> dict[str, Any]:
    """Simulate the calibration data, fit it, and report; returns the summary.

    With ``out``, writes ``response.png``, ``errors.png``, ``pulls.png``,
    ``convergence.png``, ``summary.json`` and ``report.md`` there, and records the fit and
    the reference fit in ``out/progress/`` when each ends: run again with the same
    settings, a fit recorded there is read back, not run again, and the summary is the
    same apart from the seconds and the peak memory (``restart`` discards the progress).

    Raises
    ------
    RunFolderError
        (A ``ValueError``.) If ``out`` holds the progress of other settings (without ``restart``).
    zdx_base.CheckpointInterrupted
        After SIGINT or SIGTERM (with ``out``), once the fit under way is recorded.
    """
    settings = {
        "npix": npix,
        "pupil_npix": pupil_npix,
        "ndither": ndither,
        "nwavels": nwavels,
        "seed": seed,
        "max_steps": max_steps,
        "flat": flat,
    }
    folder = open_run_folder("calibrate-detector", out, settings, restart, 0, 1)
    problem = detector_problem(
        npix,
        pupil_npix=pupil_npix,
        ndither=ndither,
        nwavels=nwavels,
        response_scatter=RESPONSE_SCATTER,
        flat=flat,
        seed=seed,
    )
    start = starting_point(problem)
    guard = contextlib.nullcontext() if folder is None else folder.interruptible()
    with guard:
        fit, fit_seconds = _kept_fit(
            folder,
            "fit",
            start,
            lambda: _fit(problem, start, max_steps=max_steps, progress=progress),
        )
        if folder is not None:
            folder.stop_if_asked("the fit (the reference fit is left)")
        reference, _ = _kept_fit(
            folder,
            "reference",
            start,
            lambda: _fit(problem, fit.params, max_steps=REFERENCE_STEPS, progress=False, rtol=0.0),
        )
    reference_objective = min(reference.objective, fit.objective)
    objective_history = onp.asarray(fit.objective_history)
    # Delta chi2 < 1 of the optimum: the objective (chi2 / 2 + prior) within 1/2 of it.
    within = onp.flatnonzero(objective_history - reference_objective < 0.5)
    truth = problem.truth
    pulls = onp.asarray(
        (fit.params["log_response"] - truth["log_response"]) / fit.errors["log_response"]
    )
    ndata = int(problem.data.size)
    nparams = problem.settings["nparams"]
    summary = {
        "settings": dict(problem.settings),
        "chi2": fit.chi2,
        "chi2r": fit.chi2 / (ndata - nparams),
        "ndata": ndata,
        "reference_chi2": reference.chi2,
        "delta_objective": float(fit.objective - reference_objective),
        "steps": fit.steps,
        "steps_to_delta_chi2_below_1": int(within[0]) if within.size else None,
        "converged": fit.converged,
        "seconds": fit_seconds,
        "peak_memory_mb": _peak_memory_mb(),
        "pull_mean": float(pulls.mean()),
        "pull_std": float(pulls.std()),
        "coverage_1sigma": float(onp.mean(onp.abs(pulls) < 1.0)),
        "coverage_2sigma": float(onp.mean(onp.abs(pulls) < 2.0)),
        # Pixels the data constrain: error bar below half the prior's.
        "responses_seen": float(
            onp.mean(onp.asarray(fit.errors["log_response"]) < 0.5 * RESPONSE_SCATTER)
        ),
        "globals": {
            name: {
                "value": onp.asarray(fit.params[name]).tolist(),
                "error": onp.asarray(fit.errors[name]).tolist(),
                "truth": onp.asarray(truth[name]).tolist(),
            }
            for name in ("log_flux", "position", "log_jitter", "zernikes")
        },
        "chi2_history": onp.asarray(fit.chi2_history).tolist(),
        "seconds_history": onp.asarray(fit.seconds).tolist(),
        "priors": {"log_response": [0.0, RESPONSE_SCATTER], "log_jitter": list(JITTER_PRIOR)},
    }
    if out is not None:
        _write(
            pathlib.Path(out), summary, problem, fit, pulls, objective_history, reference_objective
        )
    return summary


def _coverage_fit(settings: dict, k: int) -> dict:
    """Data set ``k`` of :func:`detector_coverage` fitted: its record (the response pulls)
    and, as JSON, its reduced chi-squared, steps and seconds."""
    problem = detector_problem(
        settings["npix"],
        pupil_npix=settings["pupil_npix"],
        ndither=settings["ndither"],
        nwavels=settings["nwavels"],
        response_scatter=RESPONSE_SCATTER,
        flat=settings["flat"],
        seed=settings["seed"] + k,
    )
    start = time.perf_counter()
    fit = _fit(problem, starting_point(problem), max_steps=settings["max_steps"], progress=False)
    seconds = time.perf_counter() - start
    truth = problem.truth["log_response"]
    pull = (fit.params["log_response"] - truth) / fit.errors["log_response"]
    chi2r = fit.chi2 / (problem.data.size - problem.settings["nparams"])
    info = {"chi2r": float(chi2r), "steps": int(fit.steps), "seconds": seconds}
    return {"arrays": {"pulls": onp.ravel(onp.asarray(pull))}, "info": info}


def detector_coverage(
    *,
    datasets: int = 100,
    npix: int = 16,
    pupil_npix: int = 64,
    ndither: int = 3,
    nwavels: int = 3,
    seed: int = 0,
    max_steps: int = 30,
    flat: float = 0.0,
    out: str | pathlib.Path | None = None,
    progress: bool = True,
    restart: bool = False,
    process_id: int = 0,
    num_processes: int = 1,
) -> dict[str, Any]:
    """Fit ``datasets`` simulated data sets (seeds ``seed``, ``seed + 1``...) and check that
    the pixel responses' error bars are calibrated: the pooled pulls should have a
    standard deviation near 1 and a 1-sigma coverage within three binomial standard errors
    of 68.27 %.

    With ``out``, every fitted data set is recorded in ``out/progress/`` (see
    ``_run_folder``): run again with the same settings, the data sets recorded there are
    loaded, not fitted again, and the summary is the same apart from the seconds
    (``restart`` discards the progress). Several processes sharing ``out`` (``process_id``
    of ``num_processes``) each fit every ``num_processes``-th data set; process 0 waits
    for all and returns the summary, the same as one process's apart from the seconds (a
    process other than 0 returns only its index and how many data sets it recorded).

    Returns
    -------
    summary : dict
        The pooled pull statistics, coverage and verdict, the mean reduced chi-squared,
        the most steps, the median seconds per fit and the total seconds (also written to
        ``out/summary.json`` with ``out``).

    Raises
    ------
    ValueError
        If several processes are asked for without ``out``.
    RunFolderError
        (A ``ValueError``.) If ``out`` holds the progress of other settings (without ``restart``).
    zdx_base.CheckpointInterrupted
        After SIGINT or SIGTERM, once the data set being fitted is recorded (with ``out``).
    """
    from tqdm.auto import tqdm

    settings = {
        "datasets": datasets,
        "npix": npix,
        "pupil_npix": pupil_npix,
        "ndither": ndither,
        "nwavels": nwavels,
        "seed": seed,
        "max_steps": max_steps,
        "flat": flat,
    }
    folder = open_run_folder(
        "calibrate-detector", out, settings, restart, process_id, num_processes
    )
    labels = [f"dataset_{k:06d}" for k in range(datasets)]
    mine = range(datasets) if folder is None else folder.share(datasets)
    records = []
    began = time.perf_counter()
    guard = contextlib.nullcontext() if folder is None else folder.interruptible()
    with guard:
        for count, k in enumerate(tqdm(mine, desc="data sets", disable=not progress), 1):
            found = None if folder is None else folder.load(labels[k])
            if found is None:
                done = _coverage_fit(settings, k)
                found = done["arrays"], done["info"]
                if folder is not None:
                    folder.save(labels[k], *found)
            records.append(found)
            if folder is not None:
                folder.stop_if_asked(f"{count} of the {len(mine)} data sets of this process")
    if folder is not None:
        records = folder.gather(labels, say=print if progress else None)
        if records is None:
            return folder.left_to_process_0(len(mine))
    pooled = onp.concatenate([arrays["pulls"] for arrays, _ in records])
    chi2r = [info["chi2r"] for _, info in records]
    steps = [info["steps"] for _, info in records]
    seconds = [info["seconds"] for _, info in records]
    expected = 0.682689492
    binomial = float(onp.sqrt(expected * (1 - expected) / pooled.size))
    coverage = float(onp.mean(onp.abs(pooled) < 1.0))
    summary = {
        "datasets": datasets,
        "npix": npix,
        "pulls": int(pooled.size),
        "pull_mean": float(pooled.mean()),
        "pull_std": float(pooled.std()),
        "coverage_1sigma": coverage,
        "coverage_2sigma": float(onp.mean(onp.abs(pooled) < 2.0)),
        "coverage_binomial_sigma": binomial,
        "coverage_deviation_in_sigma": (coverage - expected) / binomial,
        "calibrated": bool(
            0.95 <= pooled.std() <= 1.05 and abs(coverage - expected) <= 3 * binomial
        ),
        "chi2r_mean": float(onp.mean(chi2r)),
        "steps_max": int(max(steps)),
        "seconds_per_fit_median": float(onp.median(seconds)),
        "total_seconds": time.perf_counter() - began,
    }
    if out is not None:
        folder = pathlib.Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _write(out, summary, problem, fit, pulls, objective_history, reference_objective) -> None:
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    truth = onp.exp(onp.asarray(problem.truth["log_response"]))
    found = onp.exp(onp.asarray(fit.params["log_response"]))
    errors = found * onp.asarray(fit.errors["log_response"])  # the response's, to first order
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    for ax, image, title in zip(
        axes, (truth, found, found - truth), ("true response", "fitted", "fitted - true")
    ):
        shown = ax.imshow(image, cmap="RdBu_r" if "-" in title else "viridis")
        ax.set_title(title)
        figure.colorbar(shown, ax=ax, shrink=0.8)
    figure.tight_layout()
    figure.savefig(out / "response.png", dpi=110)
    plt.close(figure)

    figure, ax = plt.subplots(figsize=(5, 4))
    shown = ax.imshow(errors, cmap="magma")
    ax.set_title("error bar of every pixel's response")
    figure.colorbar(shown, ax=ax)
    figure.tight_layout()
    figure.savefig(out / "errors.png", dpi=110)
    plt.close(figure)

    figure, ax = plt.subplots(figsize=(5, 4))
    ax.hist(pulls.ravel(), bins=40, density=True, alpha=0.7, label="(fitted - true) / error")
    grid = onp.linspace(-4, 4, 200)
    ax.plot(grid, onp.exp(-0.5 * grid**2) / onp.sqrt(2 * onp.pi), "k", label="N(0, 1)")
    ax.set_title(
        f"pulls: std {summary['pull_std']:.3f}, 1-sigma coverage {summary['coverage_1sigma']:.3f}"
    )
    ax.legend()
    figure.tight_layout()
    figure.savefig(out / "pulls.png", dpi=110)
    plt.close(figure)

    gap = onp.maximum(objective_history - reference_objective, 1e-6)
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].semilogy(onp.arange(gap.size), 2 * gap, "o-")
    axes[0].set_xlabel("step")
    axes[1].semilogy(fit.seconds, 2 * gap, "o-")
    axes[1].set_xlabel("seconds")
    for ax in axes:
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_ylabel("chi2 above the optimum")
    figure.tight_layout()
    figure.savefig(out / "convergence.png", dpi=110)
    plt.close(figure)

    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    settings = summary["settings"]
    lines = [
        "# Detector calibration",
        "",
        f"{settings['npix']} x {settings['npix']} pixel responses with the optics "
        f"({settings['nparams']} parameters), from {settings['ndither'] ** 2} dithered "
        f"images at {settings['nwavels']} wavelengths ({summary['ndata']} pixels of data).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| chi2 (reduced) | {summary['chi2']:.2f} ({summary['chi2r']:.4f}) |",
        f"| reference chi2 (Gauss-Newton to rounding) | {summary['reference_chi2']:.2f} |",
        f"| steps (to chi2 within 1 of the optimum) | {summary['steps']} "
        f"({summary['steps_to_delta_chi2_below_1']}) |",
        f"| seconds | {summary['seconds']:.1f} |",
        f"| peak memory | {summary['peak_memory_mb']:.0f} MB |",
        f"| response pulls: mean, std | {summary['pull_mean']:.3f}, {summary['pull_std']:.3f} |",
        f"| 1-sigma / 2-sigma coverage | {summary['coverage_1sigma']:.3f} / "
        f"{summary['coverage_2sigma']:.3f} |",
        "",
        "![response](response.png) ![errors](errors.png)",
        "",
        "![pulls](pulls.png) ![convergence](convergence.png)",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
