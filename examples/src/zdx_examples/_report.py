"""The written result of an optics fit: figures, ``summary.json`` and ``report.md``."""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import numpy as onp

from ._fit import loss_fn
from ._plot_covariance import corner_plot, key_parameters, plot_matrices
from ._plot_images import plot_data, plot_z_scores
from ._plots import plot_losses, plot_parameter_history, plot_pulls
from ._result import OpticsFit
from ._saving import save_fit, saved_files_section

FIGURES = {
    "data.png": "The data per filter",
    "residuals.png": "Residual z-scores at the start and after each fit",
    "losses.png": "Loss curves",
    "parameters.png": "Parameter evolution during the natural-gradient descent",
    "matrices.png": "Loss curvature, covariance and correlation matrices",
    "pulls.png": "Fitted values against the truth, in units of the Hessian sigma",
    "corner.png": "Corner plot: NUTS draws against the Hessian ellipses and the truth",
}
"""The figure files :func:`write_report` writes, and their captions."""


def _number(x: Any) -> float | None:
    """A JSON-safe float: None for NaN and infinities (JSON has no such numbers)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _json_safe(obj: Any) -> Any:
    """``obj`` with every float made JSON-safe (see :func:`_number`) and NumPy scalars
    turned into Python numbers."""
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (bool, onp.bool_)):
        return bool(obj)
    if isinstance(obj, (int, onp.integer)):
        return int(obj)
    if isinstance(obj, (float, onp.floating)):
        return _number(obj)
    return obj


def summarise(result: OpticsFit, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The figures of an optics fit as a JSON-ready dict.

    Parameters
    ----------
    result : OpticsFit
        What :func:`fit` returned.
    settings : Mapping, optional
        The settings of the run (sizes, seeds), copied into ``"settings"``.

    Returns
    -------
    summary : dict
        ``initial_chi2r`` (at the start), ``truth_chi2r``, ``final_chi2r``,
        ``max_abs_pull`` (largest ``|fit - truth| / sigma``), ``steps`` and ``seconds``
        (stage -> number), ``total_seconds``, ``stages`` (stage -> everything it
        reported), ``parameters`` (one dict per scalar: ``name``, ``truth``, ``start``,
        ``fit``, ``sigma``, ``pull``, and ``nuts_mean`` / ``nuts_sigma`` when sampled),
        ``nuts`` (diagnostics or None), ``settings``, ``method_chi2r`` (the reduced
        chi-squared each method reached on its own) and ``start_choice`` (which start the
        sign search chose and why, or None).
    """
    sim = result.simulation
    start = onp.asarray(result.ngd_history[0])
    fit, sigma, truth = (onp.asarray(a) for a in (result.best, result.sigma, result.truth))
    pulls = (fit - truth) / sigma
    samples = result.samples
    parameters = []
    for i, name in enumerate(result.names):
        row = {
            "name": name,
            "truth": _number(truth[i]),
            "start": _number(start[i]),
            "fit": _number(fit[i]),
            "sigma": _number(sigma[i]),
            "pull": _number(pulls[i]),
        }
        if samples is not None:
            row["nuts_mean"] = _number(samples.mean[i])
            row["nuts_sigma"] = _number(samples.sigma[i])
        parameters.append(row)
    nuts = None
    if samples is not None:
        stage = result.stages.get("nuts", {})
        nuts = {
            "backend": samples.backend,
            "chains": int(samples.draws.shape[0]),
            "draws_per_chain": int(samples.draws.shape[1]),
            "max_r_hat": _number(onp.max(samples.r_hat)),
            "min_ess_bulk": _number(onp.min(samples.ess_bulk)),
            "divergences": samples.divergences,
            "seconds": stage.get("seconds"),
        }
    stages = {name: dict(record) for name, record in result.stages.items()}
    summary = {
        "initial_chi2r": _number(result.chi2r(result.start)),
        "truth_chi2r": _number(result.chi2r(sim.true_params)),
        "final_chi2r": _number(result.chi2r()),
        "max_abs_pull": _number(onp.max(onp.abs(pulls))),
        "best_method": result.best_method,
        "method_chi2r": result.method_chi2r(),
        "start_choice": None if result.start_choice is None else result.start_choice.describe(),
        "steps": {name: record["steps"] for name, record in stages.items()},
        "seconds": {name: record["seconds"] for name, record in stages.items()},
        "total_seconds": round(sum(record["seconds"] for record in stages.values()), 3),
        "stages": stages,
        "parameters": parameters,
        "nuts": nuts,
        "settings": dict(settings or {}),
    }
    return _json_safe(summary)


def make_figures(result: OpticsFit, corner_params: int = 6) -> dict[str, Any]:
    """Every figure of the report, by file name (see :data:`FIGURES`).

    Parameters
    ----------
    result : OpticsFit
        What :func:`fit` returned.
    corner_params : int
        How many parameters the corner plot shows: those most correlated with another
        (:func:`key_parameters`); ``0`` shows all.

    Returns
    -------
    figures : dict[str, matplotlib.figure.Figure]
    """
    sim = result.simulation
    optics, observations = sim.optics, sim.observations
    truth_loss = float(eqx.filter_jit(loss_fn)(sim.true_params, (optics, observations)))
    draws = None if result.samples is None else result.samples.flat
    return {
        "data.png": plot_data(observations, optics),
        "residuals.png": plot_z_scores(
            {
                "start": result.start,
                "natural gradient": result.ngd_params,
                "whitened L-BFGS": result.lbfgs_params,
            },
            optics,
            observations,
        ),
        "losses.png": plot_losses(result.ngd_losses, result.lbfgs_losses, reference=truth_loss),
        "parameters.png": plot_parameter_history(result.ngd_history, result.names, result.truth),
        "matrices.png": plot_matrices(result.loss_curvature, result.covariance, result.names),
        "pulls.png": plot_pulls(
            result.names,
            result.best,
            result.sigma,
            result.truth,
            None if result.samples is None else result.samples.mean,
            None if result.samples is None else result.samples.sigma,
        ),
        "corner.png": corner_plot(
            result.best,
            result.covariance,
            result.names,
            samples=draws,
            truth=result.truth,
            select=key_parameters(result.covariance, corner_params),
        ),
    }


def _format(value: float | None, digits: int = 6) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def markdown(summary: Mapping[str, Any], figures: Mapping[str, str] = FIGURES) -> str:
    """The text of ``report.md`` for a summary (:func:`summarise`).

    Parameters
    ----------
    summary : Mapping
        What :func:`summarise` returned.
    figures : Mapping[str, str]
        File name -> caption of the figures to show, relative to the report.

    Returns
    -------
    text : str
        Markdown: the headline figures, a table of the stages, the figures and a table of
        the fitted values ± sigma against the truth.
    """
    lines = ["# Hierarchical optics fit", ""]
    settings = summary.get("settings") or {}
    if settings:
        lines += ["Settings: " + ", ".join(f"`{k}={v}`" for k, v in settings.items()) + ".", ""]
    lines += [
        f"- reduced chi-squared: start {_format(summary['initial_chi2r'], 4)}, "
        f"best fit **{_format(summary['final_chi2r'], 5)}**, "
        f"truth {_format(summary['truth_chi2r'], 5)}",
        "- largest |fit − truth| / σ over all parameters: "
        f"**{_format(summary['max_abs_pull'], 3)}**",
        "- each method on its own: "
        + ", ".join(
            f"{method} chi2r {_format(value, 5)}"
            for method, value in (summary.get("method_chi2r") or {}).items()
        ),
        f"- error bars at the fit of: {summary['best_method']} (the lower loss of the two)",
        f"- start of both methods: {summary.get('start_choice') or 'the data-based start'}",
        f"- total time of the stages: {summary['total_seconds']:.1f} s",
        "",
        "## Stages",
        "",
        "| stage | steps | seconds | reduced chi-squared after |",
        "|---|---:|---:|---:|",
    ]
    for name, record in summary["stages"].items():
        chi2r = record.get("chi2r")
        lines.append(
            f"| {name} | {record['steps']} | {record['seconds']:.2f} | "
            f"{'' if chi2r is None else _format(chi2r, 5)} |"
        )
    nuts = summary.get("nuts")
    if nuts:
        lines += [
            "",
            f"NUTS ({nuts['backend']}): {nuts['chains']} chain(s) of {nuts['draws_per_chain']} "
            f"draws, largest R-hat {_format(nuts['max_r_hat'], 4)}, smallest effective sample "
            f"size {_format(nuts['min_ess_bulk'], 4)}, {nuts['divergences']} divergence(s).",
        ]
    lines += ["", "## Figures", ""]
    for file, caption in figures.items():
        lines += [f"### {caption}", "", f"![{caption}]({file})", ""]
    lines += [
        "## Fitted values",
        "",
        "Units: `flux` log10 photons, `position` arcseconds, `wfe` nanometres (Zernike "
        "coefficients from defocus on). σ is the square root of the diagonal of the inverse "
        "Hessian of −log-likelihood at the best fit; pull = (fit − truth) / σ.",
        "",
    ]
    header = "| parameter | truth | fit ± σ | pull |"
    rule = "|---|---:|---:|---:|"
    if nuts:
        header += " NUTS mean ± sd |"
        rule += "---:|"
    lines += [header, rule]
    for row in summary["parameters"]:
        line = (
            f"| `{row['name']}` | {_format(row['truth'], 8)} | "
            f"{_format(row['fit'], 8)} ± {_format(row['sigma'], 3)} | {_format(row['pull'], 3)} |"
        )
        if nuts:
            line += f" {_format(row.get('nuts_mean'), 8)} ± {_format(row.get('nuts_sigma'), 3)} |"
        lines.append(line)
    lines += saved_files_section(summary)
    return "\n".join(lines) + "\n"


def write_report(
    result: OpticsFit,
    out: str | pathlib.Path,
    settings: Mapping[str, Any] | None = None,
    corner_params: int = 6,
    dpi: int = 110,
) -> list[pathlib.Path]:
    """Write the figures (PNG), ``summary.json`` and ``report.md`` of a fit into ``out``.

    Parameters
    ----------
    result : OpticsFit
        What :func:`fit` returned.
    out : str or Path
        The folder; created (with parents) when missing. Existing files of the same
        names are replaced.
    settings : Mapping, optional
        The run's settings, written into the summary and the report.
    corner_params : int
        Parameters in the corner plot (see :func:`make_figures`).
    dpi : int
        Resolution of the PNG files.

    Returns
    -------
    paths : list[pathlib.Path]
        Every file written: the figures, the saved fit (:func:`save_fit`), then
        ``summary.json`` and ``report.md``.

    Raises
    ------
    NotADirectoryError
        If ``out`` exists and is not a folder.
    """
    return write_files(result, out, summarise(result, settings), corner_params, dpi)[0]


def write_files(
    result: OpticsFit,
    out: str | pathlib.Path,
    summary: Mapping[str, Any],
    corner_params: int = 6,
    dpi: int = 110,
) -> tuple[list[pathlib.Path], dict[str, Any]]:
    """:func:`write_report` for a summary already made (:func:`summarise`).

    Returns
    -------
    paths : list[pathlib.Path]
        Every file written, as :func:`write_report` returns them.
    summary : dict
        What ``summary.json`` holds: ``summary`` with the ``files`` written.
    """
    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"`out` must be a folder, but {str(out)!r} is a file.")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, figure in make_figures(result, corner_params).items():
        path = out / name
        figure.savefig(path, dpi=dpi)
        paths.append(path)
    paths += save_fit(result, out)
    summary = {**summary, "files": [p.name for p in paths] + ["summary.json", "report.md"]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "report.md").write_text(markdown(summary))
    return [*paths, out / "summary.json", out / "report.md"], summary
