"""Figures of the optics fit, drawn on matplotlib ``Figure`` objects (no pyplot state).

Each function returns a ``matplotlib.figure.Figure``; save it with ``fig.savefig(path)``
(any backend, Agg included) or show it in a notebook.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import matplotlib
import numpy as onp
from matplotlib.colors import CenteredNorm
from matplotlib.figure import Figure

from ._fit import get_reduced_chi2, z_scores

_z_scores = eqx.filter_jit(z_scores)
_chi2r = eqx.filter_jit(get_reduced_chi2)


def _as_numpy(x: Any) -> onp.ndarray:
    return onp.asarray(x, dtype=float)


def group_of(name: str) -> str:
    """The top-level group of a scalar name: ``"position.blue[0]"`` -> ``"position"``.

    >>> group_of("position.blue[0]"), group_of("wfe[3]"), group_of("flux")
    ('position', 'wfe', 'flux')
    """
    return re.split(r"[.\[]", name, maxsplit=1)[0]


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


def plot_losses(
    ngd_losses: Any, lbfgs_losses: Any = None, reference: float | None = None
) -> Figure:
    """The loss along the natural-gradient steps and the L-BFGS evaluations.

    Parameters
    ----------
    ngd_losses : array_like
        The loss before each natural-gradient step.
    lbfgs_losses : array_like, optional
        The loss at each L-BFGS evaluation (line-search trials included); without it the
        figure has the natural-gradient panel only.
    reference : float, optional
        A loss to draw as a dashed line, e.g. the loss at the true parameters.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    panels = [(_as_numpy(ngd_losses), "Natural gradient descent", "step")]
    if lbfgs_losses is not None:
        panels.append((_as_numpy(lbfgs_losses), "Whitened L-BFGS", "loss evaluation"))
    fig = Figure(figsize=(5.5 * len(panels), 3.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (losses, title, xlabel) in zip(axes, panels):
        if losses.size:
            ax.plot(onp.arange(losses.size), losses, marker="." if losses.size < 60 else None)
        if reference is not None:
            ax.axhline(reference, color="k", linestyle="--", linewidth=1, label="loss at the truth")
            ax.legend()
        ax.set_yscale("log")
        ax.set(title=title, xlabel=xlabel, ylabel="loss (mean squared z-score per pixel)")
        ax.grid(alpha=0.3)
    return fig


def plot_parameter_history(history: Any, names: Sequence[str], truth: Any = None) -> Figure:
    """How each parameter moved from the start during the natural-gradient descent.

    Parameters
    ----------
    history : array_like
        ``(steps + 1, n)`` the flattened parameters at the start and after each step.
    names : Sequence[str]
        The ``n`` scalar names; one panel per top-level group (``position``, ``wfe``...).
    truth : array_like, optional
        ``(n,)`` the true values, drawn as dashed lines (as offsets from the start).

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    history = _as_numpy(history)
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(group_of(name), []).append(i)
    fig = Figure(figsize=(4.6 * len(groups), 3.9), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    steps = onp.arange(history.shape[0])
    for ax, (group, indices) in zip(axes, groups.items()):
        for j, i in enumerate(indices):
            colour = f"C{j % 10}"
            ax.plot(steps, history[:, i] - history[0, i], color=colour, label=names[i])
            if truth is not None:
                ax.axhline(
                    float(_as_numpy(truth)[i] - history[0, i]),
                    color=colour,
                    linestyle="--",
                    linewidth=0.8,
                )
        ax.set(title=group, xlabel="step", ylabel=f"{group} − start")
        ax.grid(alpha=0.3)
        if len(indices) <= 10:
            ax.legend(fontsize=7, ncol=2 if len(indices) > 5 else 1)
    suffix = " (dashed: truth)" if truth is not None else ""
    fig.suptitle("Parameters during the natural-gradient descent" + suffix)
    return fig


def _matrix_panel(fig, ax, matrix, names, title, label, **imshow):
    image = ax.imshow(matrix, **imshow)
    ticks = onp.arange(len(names))
    size = 7 if len(names) <= 20 else 5
    ax.set_xticks(ticks, names, rotation=90, fontsize=size)
    ax.set_yticks(ticks, names, fontsize=size)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=label, shrink=0.8)


def _log_abs(matrix: onp.ndarray, decades: float = 16.0) -> onp.ndarray:
    """``log10 |matrix|`` with exact zeros as NaN, floored ``decades`` below the largest."""
    magnitude = onp.abs(matrix)
    with onp.errstate(divide="ignore"):
        logs = onp.where(
            magnitude > 0, onp.log10(onp.where(magnitude > 0, magnitude, 1.0)), onp.nan
        )
    if onp.any(onp.isfinite(logs)):
        logs = onp.maximum(logs, onp.nanmax(logs) - decades)
    return logs


def plot_matrices(fisher: Any, covariance: Any, names: Sequence[str]) -> Figure:
    """The Fisher matrix, the covariance and the correlation matrix, with parameter names.

    Parameters
    ----------
    fisher : array_like
        ``(n, n)`` a Fisher matrix (e.g. of the loss at the start).
    covariance : array_like
        ``(n, n)`` the covariance (inverse Hessian at the best fit).
    names : Sequence[str]
        The ``n`` parameter names.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    fisher, covariance = _as_numpy(fisher), _as_numpy(covariance)
    sigma = onp.sqrt(onp.diag(covariance))
    correlation = covariance / onp.outer(sigma, sigma)
    fig = Figure(figsize=(17, 5.2), layout="constrained")
    axes = fig.subplots(1, 3)
    cmap = matplotlib.colormaps["inferno"].with_extremes(bad="0.75")
    _matrix_panel(
        fig,
        axes[0],
        _log_abs(fisher),
        names,
        "Fisher matrix of the loss at the start",
        "log10 |F| (grey: exactly 0)",
        cmap=cmap,
    )
    _matrix_panel(
        fig,
        axes[1],
        _log_abs(covariance),
        names,
        "Covariance at the best fit",
        "log10 |C|",
        cmap=cmap,
    )
    _matrix_panel(
        fig,
        axes[2],
        correlation,
        names,
        "Correlation at the best fit",
        "correlation",
        cmap="seismic",
        norm=CenteredNorm(halfrange=1.0),
    )
    return fig


def key_parameters(covariance: Any, k: int = 6) -> list[int]:
    """The ``k`` parameters most correlated with another one, in their original order.

    Parameters
    ----------
    covariance : array_like
        ``(n, n)`` covariance matrix.
    k : int
        How many to pick; all ``n`` when ``k <= 0`` or ``k >= n``.

    Returns
    -------
    indices : list[int]

    >>> import numpy as np
    >>> cov = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> key_parameters(cov, 2)
    [0, 1]
    """
    covariance = _as_numpy(covariance)
    n = covariance.shape[0]
    if k <= 0 or k >= n:
        return list(range(n))
    sigma = onp.sqrt(onp.diag(covariance))
    correlation = onp.abs(covariance / onp.outer(sigma, sigma))
    onp.fill_diagonal(correlation, 0.0)
    strongest = onp.argsort(-correlation.max(axis=1), kind="stable")[:k]
    return sorted(int(i) for i in strongest)


def _ellipse(correlation2: onp.ndarray, radius: float) -> tuple[onp.ndarray, onp.ndarray]:
    values, vectors = onp.linalg.eigh(correlation2)
    t = onp.linspace(0, 2 * onp.pi, 200)
    circle = onp.stack([onp.cos(t), onp.sin(t)])
    points = vectors @ (radius * onp.sqrt(onp.clip(values, 0, None))[:, None] * circle)
    return points[0], points[1]


def corner_plot(
    mean: Any,
    covariance: Any,
    names: Sequence[str],
    samples: Any = None,
    truth: Any = None,
    select: Sequence[int] | None = None,
) -> Figure:
    """A corner plot of posterior draws against the Hessian's Gaussian and the truth.

    Every axis is standardised by the Gaussian approximation: ``(value - mean) / sigma``
    with ``sigma = sqrt(diag(covariance))``, so the Gaussian is a unit normal on the
    diagonal and its 1- and 2-sigma ellipses (Mahalanobis radius 1 and 2) show the
    correlations off the diagonal; a draw or a truth at 3 is 3 sigma away from the fit.

    Parameters
    ----------
    mean : array_like
        ``(n,)`` centre of the Gaussian (the best fit).
    covariance : array_like
        ``(n, n)`` its covariance (the inverse Hessian).
    names : Sequence[str]
        The ``n`` parameter names.
    samples : array_like, optional
        ``(m, n)`` posterior draws, shown as points and histograms.
    truth : array_like, optional
        ``(n,)`` true values, shown as lines.
    select : Sequence[int], optional
        Which parameters to show (default all).

    Returns
    -------
    fig : matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If the shapes do not agree.
    """
    mean, covariance = _as_numpy(mean), _as_numpy(covariance)
    n = mean.shape[0]
    if covariance.shape != (n, n) or len(names) != n:
        raise ValueError(
            f"corner_plot: `mean` has {n} entries, `covariance` shape {covariance.shape} and "
            f"`names` {len(names)} entries; expected ({n},), ({n}, {n}) and {n}."
        )
    idx = list(range(n)) if select is None else [int(i) for i in select]
    sigma = onp.sqrt(onp.diag(covariance))
    corr = (covariance / onp.outer(sigma, sigma))[onp.ix_(idx, idx)]
    z_samples = None
    if samples is not None:
        samples = _as_numpy(samples)
        if samples.ndim != 2 or samples.shape[1] != n:
            raise ValueError(
                f"corner_plot: `samples` must have shape (m, {n}), got {samples.shape}."
            )
        z_samples = ((samples - mean) / sigma)[:, idx]
    z_truth = None if truth is None else ((_as_numpy(truth) - mean) / sigma)[idx]

    k = len(idx)
    limits = onp.full(k, 3.5)
    if z_samples is not None:
        limits = onp.maximum(limits, 1.05 * onp.max(onp.abs(z_samples), axis=0))
    if z_truth is not None:
        limits = onp.maximum(limits, 1.2 * onp.abs(z_truth))
    size = max(6.0, 1.9 * k)
    fig = Figure(figsize=(size, size), layout="constrained")
    axes = fig.subplots(k, k, squeeze=False)
    grid = onp.linspace(-limits.max(), limits.max(), 400)
    for row in range(k):
        for col in range(k):
            ax = axes[row, col]
            if col > row:
                ax.set_axis_off()
                continue
            ax.tick_params(labelsize=7)
            if row == col:
                if z_samples is not None:
                    ax.hist(z_samples[:, col], bins=30, density=True, color="C0", alpha=0.5)
                ax.plot(grid, onp.exp(-0.5 * grid**2) / onp.sqrt(2 * onp.pi), color="k")
                if z_truth is not None:
                    ax.axvline(z_truth[col], color="C3")
                ax.set_yticks([])
            else:
                if z_samples is not None:
                    ax.scatter(
                        z_samples[:, col],
                        z_samples[:, row],
                        s=2,
                        color="C0",
                        alpha=0.3,
                        rasterized=True,
                    )
                sub = corr[onp.ix_([col, row], [col, row])]
                for radius, style in ((1.0, "-"), (2.0, "--")):
                    ax.plot(*_ellipse(sub, radius), color="k", linestyle=style, linewidth=1)
                if z_truth is not None:
                    ax.axvline(z_truth[col], color="C3", linewidth=0.8)
                    ax.axhline(z_truth[row], color="C3", linewidth=0.8)
                    ax.plot(z_truth[col], z_truth[row], "s", color="C3", markersize=3)
                ax.set_ylim(-limits[row], limits[row])
            ax.set_xlim(-limits[col], limits[col])
            if row == k - 1:
                ax.set_xlabel(names[idx[col]], fontsize=8)
            else:
                ax.set_xticklabels([])
            if col == 0 and row > 0:
                ax.set_ylabel(names[idx[row]], fontsize=8)
            elif col != row:
                ax.set_yticklabels([])
    legend = [
        ("k", "-", "Hessian 1σ (Mahalanobis 1)"),
        ("k", "--", "Hessian 2σ"),
        ("C3", "-", "truth"),
    ]
    if z_samples is not None:
        legend.insert(0, ("C0", "", f"NUTS draws ({z_samples.shape[0]})"))
    handles = [
        axes[0, -1].plot([], [], color=c, linestyle=ls or "none", marker="o" if not ls else None)[0]
        for c, ls, _ in legend
    ]
    fig.legend(handles, [text for *_, text in legend], loc="upper right", fontsize=9, frameon=False)
    fig.suptitle("Posterior vs Hessian: axes are (value − best fit) / σ_Hessian")
    return fig


def plot_pulls(
    names: Sequence[str],
    fit: Any,
    sigma: Any,
    truth: Any,
    sample_mean: Any = None,
    sample_std: Any = None,
) -> Figure:
    """``(fit - truth) / sigma`` per parameter, with the NUTS mean and spread beside it.

    Parameters
    ----------
    names : Sequence[str]
        The ``n`` parameter names.
    fit, sigma, truth : array_like
        ``(n,)`` best fit, its one-sigma uncertainty (Hessian) and the true values.
    sample_mean, sample_std : array_like, optional
        ``(n,)`` the posterior mean and standard deviation from the draws.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    fit, sigma, truth = _as_numpy(fit), _as_numpy(sigma), _as_numpy(truth)
    x = onp.arange(len(names))
    fig = Figure(figsize=(max(7.0, 0.45 * len(names) + 2), 4.2), layout="constrained")
    ax = fig.subplots()
    ax.axhspan(-2, 2, color="0.92")
    ax.axhspan(-1, 1, color="0.82")
    ax.axhline(0, color="k", linewidth=0.8)
    ax.errorbar(
        x - 0.12, (fit - truth) / sigma, yerr=1.0, fmt="o", capsize=3, label="best fit ± Hessian σ"
    )
    if sample_mean is not None and sample_std is not None:
        mean, std = _as_numpy(sample_mean), _as_numpy(sample_std)
        ax.errorbar(
            x + 0.12,
            (mean - truth) / sigma,
            yerr=std / sigma,
            fmt="s",
            capsize=3,
            label="NUTS mean ± sd",
        )
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set(ylabel="(estimate − truth) / σ_Hessian", title="Pulls against the truth (bands: 1σ, 2σ)")
    ax.legend(fontsize=8)
    return fig


def plot_gaussians(xs: Any, data: Any, error: float, curves: Mapping[str, Any]) -> Figure:
    """The sum-of-Gaussians data with model curves over it, and the residuals of the last.

    Parameters
    ----------
    xs : array_like
        The grid.
    data : array_like
        The data on the grid.
    error : float
        Its one-sigma uncertainty.
    curves : Mapping[str, array_like]
        Label -> model on the grid (e.g. ``truth``, ``start``, ``best fit``); the last one's
        z-scores are drawn below.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    xs, data = _as_numpy(xs), _as_numpy(data)
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.scatter(xs, data, s=6, color="0.5", label="data")
    for i, (label, values) in enumerate(curves.items()):
        top.plot(xs, _as_numpy(values), color="k" if label == "truth" else f"C{i}", label=label)
    top.set(ylabel="f(x)", title="Sum of Gaussians")
    top.legend()
    last_label, last = list(curves.items())[-1]
    bottom.scatter(xs, (data - _as_numpy(last)) / float(error), s=4, color="C0")
    bottom.axhline(0, color="k", linewidth=0.8)
    bottom.set(xlabel="x", ylabel=f"z-score\n({last_label})")
    return fig
