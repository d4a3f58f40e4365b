"""What the ``zdx-examples`` commands do, as functions: each returns a summary dict."""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import optimistix as optx

import zdx_batching
import zdx_stats

from . import gaussians as gauss
from . import optics as ex
from ._plots import plot_gaussians
from ._report import summarise, write_files
from ._run_folder import RunFolder
from ._settings import DEFAULTS as DEFAULTS
from ._settings import with_defaults
from ._stage_recorder import StageRecorder

_FIT_SETTINGS = (
    "ngd_steps",
    "learning_rate",
    "refresh_every",
    "max_steps",
    "nuts_warmup",
    "nuts_samples",
    "nuts_chains",
    "seed",
)
"""The settings :func:`zdx_examples.optics.fit` takes under the same name."""


def gaussians_fit(seed: int = 0, out: str | pathlib.Path | None = None) -> dict[str, Any]:
    """Fit the tutorial's sum of Gaussians; a summary of the fit.

    Parameters
    ----------
    seed : int
        Seed of the simulated noise (the tutorial's is 0).
    out : str or Path, optional
        A folder to write ``gaussians.png`` and ``summary.json`` into.

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
    summary = {
        "initial_chi2r": float(initial),
        "final_chi2r": float(final),
        "steps": int(sol.stats["num_steps"]),
        "seconds": round(seconds, 3),
        "params": {k: [float(v) for v in sol.value[k]] for k in sol.value},
        "sigma": {k: [float(v) for v in sigma[k]] for k in sigma},
    }
    if out is not None:
        out = _folder(out)
        curves = {
            "truth": sim.true_values,
            "start": sim.model(params),
            "best fit": sim.model(sol.value),
        }
        plot_gaussians(sim.model.xs, sim.data, float(sim.error), curves).savefig(
            out / "gaussians.png", dpi=110
        )
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _folder(out: str | pathlib.Path) -> pathlib.Path:
    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out must be a folder, but {str(out)!r} is a file.")
    out.mkdir(parents=True, exist_ok=True)
    return out


def optics_fit(
    out: str | pathlib.Path | None = None,
    progress: bool = True,
    restart: bool = False,
    **settings: Any,
) -> dict[str, Any]:
    """Simulate the hierarchical optics data, fit it end to end and report; a summary.

    Parameters
    ----------
    out : str or Path, optional
        A folder to write the figures, ``summary.json`` and ``report.md`` into
        (:func:`zdx_examples.report.write_report`).
    progress : bool
        Show progress bars and a line per stage on standard error.
    **settings
        Any of :data:`DEFAULTS`: ``npix`` (pupil pixels), ``psf_npix`` (detector
        pixels), ``n_zernike``, ``filters`` (how many), ``n_images`` (exposures averaged),
        ``seed``, ``ngd_steps``, ``learning_rate``, ``refresh_every`` (of the natural
        gradient's Fisher matrix), ``max_steps`` (L-BFGS),
        ``nuts_warmup``, ``nuts_samples`` (0 skips NUTS), ``nuts_chains``,
        ``corner_params``.
    restart : bool
        Discard the progress kept in ``out`` and start over. Without it, a run given the
        ``out`` of an earlier run with the same settings (``corner_params`` aside) reads
        back the stages that run finished (:func:`zdx_examples.optics.fit`'s
        ``run_folder``) and ends with the same summary, apart from the seconds.

    Returns
    -------
    summary : dict
        :func:`zdx_examples.report.summarise` of the fit, with a ``simulate`` stage first
        (and, with ``out``, the ``files`` written, as in ``summary.json``).

    Raises
    ------
    TypeError
        For an unknown setting.
    ValueError
        For a setting out of range.
    RunFolderError
        (A ``ValueError``.) If ``out`` holds the progress of other settings (without ``restart``).
    zdx_base.CheckpointInterrupted
        After SIGINT or SIGTERM, once the stage running is recorded.
    """
    s = with_defaults("optics_fit", DEFAULTS, settings)
    folder = None if out is None else _folder(out)
    kept = {key: value for key, value in s.items() if key != "corner_params"}
    run_folder = None if out is None else RunFolder("optics-fit", out, kept, restart=restart)
    recorder = StageRecorder(progress=progress)
    guard = contextlib.nullcontext() if run_folder is None else run_folder.interruptible()
    with guard:
        with recorder.stage("simulate", unit="exposures") as stage:
            optics = ex.build_optics(
                filters=ex.filter_set(s["filters"]),
                npix=s["npix"],
                psf_npixels=s["psf_npix"],
                n_zernike=s["n_zernike"],
            )
            sim = ex.simulate(optics, seed=s["seed"], n_images=s["n_images"])
            jax.block_until_ready(sim.observations)
            stage.stop(steps=s["n_images"])
        result = ex.fit(
            sim,
            **{key: s[key] for key in _FIT_SETTINGS},
            progress=progress,
            stages=recorder.records,
            run_folder=run_folder,
        )
    summary = summarise(result, s)
    if folder is not None:
        summary = write_files(result, folder, summary, corner_params=s["corner_params"])[1]
    return summary


def calibrate(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``calibrate optics`` or ``calibrate gaussians`` from parsed options; a summary.

    With ``--out`` the run resumes from the progress kept there (``--restart`` discards
    it); of several processes (``--num-processes``), process 0 writes the report."""
    from ._calibrate_gaussians import SBC_DEFAULTS, sbc_gaussians
    from ._calibrate_optics import OPTICS_CALIBRATION_DEFAULTS, calibrate_optics
    from ._calibration_report import write_optics_calibration, write_sbc_report

    progress = not args.quiet
    resume = {"out": args.out, "restart": args.restart}
    resume.update(process_id=args.process_id, num_processes=args.num_processes)
    if args.experiment == "optics":
        settings = {key: getattr(args, key) for key in OPTICS_CALIBRATION_DEFAULTS}
        summary = calibrate_optics(progress=progress, **resume, **settings)
        if "process_id" in summary:  # another process writes the report
            return summary
        if args.out:
            write_optics_calibration(summary, _folder(args.out))
        return {
            "converged": summary["converged"],
            "coverage_1sigma": summary["coverage"]["overall"][0],
            "coverage_2sigma": summary["coverage"]["overall"][1],
            "pull_std": summary["pull_statistics"]["overall_std"],
            "total_seconds": summary["total_seconds"],
        }
    settings = {key: getattr(args, key) for key in SBC_DEFAULTS}
    summary = sbc_gaussians(progress=progress, **resume, **settings)
    if "process_id" in summary:
        return summary
    if args.out:
        write_sbc_report(summary, _folder(args.out))
    names = [n for n in ("nuts", "mams", "nested_sampling") if n in summary]
    return {f"{n}_min_pvalue_bonferroni": summary[n].get("min_pvalue_bonferroni") for n in names}
