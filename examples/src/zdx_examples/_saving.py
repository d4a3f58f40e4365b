"""The files an optics fit leaves behind: the fitted parameters, the data it was fitted to
(with the optical model), and the posterior draws, each loadable on its own."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

import zdx_base
import zdx_sample

FILES = {
    "fit_params.eqx": "the best-fit parameters (`zdx_base.save`; load with "
    "`zdx_base.load(path, like=params)`, e.g. `like=sim.true_params`)",
    "simulation.eqx": "the fitted data with the optical system and the truth "
    "(`zdx_base.load(path, like=sim)` with `sim` simulated at the same settings)",
    "posterior_draws.nc": "the NUTS draws as ArviZ netCDF (`arviz.from_netcdf(path)`), "
    "parameter names as coordinates",
}
"""File name -> what it holds and how to load it."""


def save_fit(result: Any, out: str | pathlib.Path) -> list[pathlib.Path]:
    """Write the fitted parameters, the data and the posterior draws of a fit into ``out``.

    Parameters
    ----------
    result : OpticsFit
        What :func:`zdx_examples.optics.fit` returned.
    out : str or Path
        An existing folder; files of the same names are replaced (as the report's are).

    Returns
    -------
    paths : list[pathlib.Path]
        ``fit_params.eqx``, ``simulation.eqx`` and, when NUTS ran, ``posterior_draws.nc``.
    """
    out = pathlib.Path(out)
    about = {"names": list(result.names), "chi2r": result.chi2r(), "method": result.best_method}
    paths = [
        zdx_base.save(out / "fit_params.eqx", result.params, overwrite=True, metadata=about),
        zdx_base.save(out / "simulation.eqx", result.simulation, overwrite=True),
    ]
    if result.samples is not None:
        draws = out / "posterior_draws.nc"
        paths.append(zdx_sample.save_netcdf(draws, result.samples, overwrite=True))
    return paths


def load_fit(out: str | pathlib.Path, like: Any) -> tuple[Any, Any]:
    """Load the fitted parameters and the data written by :func:`save_fit`.

    Parameters
    ----------
    out : str or Path
        The folder.
    like : OpticsSimulation
        A simulation at the settings of the fit (its values are not used), e.g.
        ``optics.simulate(optics.build_optics(...), n_images=...)``.

    Returns
    -------
    params, simulation
        The best fit and the data, so that
        ``optics.get_reduced_chi2(params, simulation.optics, simulation.observations)``
        is the reduced chi-squared of the fit.
    """
    out = pathlib.Path(out)
    params = zdx_base.load(out / "fit_params.eqx", like=like.true_params)
    simulation = zdx_base.load(out / "simulation.eqx", like=like)
    return params, simulation


def saved_files_section(summary: Mapping[str, Any]) -> list[str]:
    """Markdown lines that name the saved files of a report (none when none were saved)."""
    saved = [name for name in summary.get("files", []) if name in FILES]
    if not saved:
        return []
    return ["", "## Saved files", "", *(f"- `{name}`: {FILES[name]}." for name in saved)]
