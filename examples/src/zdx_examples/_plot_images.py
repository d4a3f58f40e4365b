"""Figures of the optics data: the images per filter and the residual z-scores.

Each function returns a ``matplotlib.figure.Figure``; save it with ``fig.savefig(path)``
(any backend, Agg included) or show it in a notebook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import numpy as onp
from matplotlib.figure import Figure

from ._fit import get_reduced_chi2, z_scores
from ._plots import _as_numpy

_z_scores = eqx.filter_jit(z_scores)
_chi2r = eqx.filter_jit(get_reduced_chi2)


def plot_data(observations: Sequence, optics: Any = None) -> Figure:
    """The data of each filter, ``log10`` of the photons (clipped at 1).

    Parameters
    ----------
    observations : list[Observation]
        Observations with data.
    optics : FilteredOpticalSystem, optional
        When given, each title shows the filter's wavelength range.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    n = len(observations)
    fig = Figure(figsize=(4.2 * n, 3.8), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, obs in zip(axes, observations):
        image = ax.imshow(
            onp.log10(onp.clip(_as_numpy(obs.data), 1.0, None)), origin="lower", cmap="inferno"
        )
        title = f"{obs.filter} filter"
        if optics is not None:
            wavels = _as_numpy(optics.filters[obs.filter])
            title += f" ({wavels.min():.2f}-{wavels.max():.2f} µm)"
        ax.set(title=title, xlabel="x (pixels)", ylabel="y (pixels)")
        fig.colorbar(image, ax=ax, label="log10 photons", shrink=0.85)
    fig.suptitle(f"Simulated data: the mean of the exposures, {n} filters")
    return fig


def plot_z_scores(rows: Mapping[str, dict], optics: Any, observations: Sequence) -> Figure:
    """Maps of the z-scores ``(data - model) / error`` for several sets of parameters.

    Parameters
    ----------
    rows : Mapping[str, dict]
        A label (``"start"``, ``"best fit"``) per parameter set; one row of panels each.
    optics : FilteredOpticalSystem
        The optical system.
    observations : list[Observation]
        Observations with data and error; one column each.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Each panel has its own symmetric colour scale; each row says its reduced
        chi-squared.
    """
    n_rows, n_cols = len(rows), len(observations)
    fig = Figure(figsize=(4.2 * n_cols, 3.5 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, (label, params) in enumerate(rows.items()):
        zs = _as_numpy(_z_scores(params, optics, list(observations)))  # (data - model) / error
        chi2r = float(_chi2r(params, optics, list(observations)))
        for c, obs in enumerate(observations):
            ax = axes[r, c]
            v = float(onp.nanmax(onp.abs(zs[c]))) or 1.0
            image = ax.imshow(zs[c], origin="lower", cmap="seismic", vmin=-v, vmax=v)
            ax.set_title(f"{label}: {obs.filter}")
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(image, ax=ax, label="z-score", shrink=0.85)
        axes[r, 0].set_ylabel(f"{label}\nχ²ᵣ = {chi2r:.4g}")
    fig.suptitle("Residuals (data − model) / error")
    return fig
